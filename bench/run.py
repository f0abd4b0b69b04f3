"""The side-by-side benchmark: direct to a mock upstream vs through the gateway, in one run, alternating;
optionally LiteLLM's proxy as a third target, measured the same way in the same run.

The gateway (gunicorn + gevent, as deployed) is pinned to core 0; wrk, the stream driver and the mocks to
core 1. LiteLLM, when asked for, is pinned to core 0 too and measured right after the gateway in every step.
Writes a Markdown report (default bench/report.md). Loopback only; every run bounded in count and time.

    python bench/run.py                                  # full run, about 3 minutes
    python bench/run.py --litellm /path/to/litellm-venv  # and LiteLLM's proxy side by side, 6-8 minutes
    python bench/run.py --quick                          # shorter runs, for a smoke check
"""

import argparse
import asyncio
import json
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import stream_load  # noqa: E402

KEY = "b" * 48
ACCESS = "benchaccesstoken" + "0" * 16
BODY = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'
STREAM_DEADLINE = 60  # seconds; no stream is waited on longer
STREAM_RAMP = 4  # seconds over which the streams are opened
COMPROMISED_LITELLM = {"1.82.7", "1.82.8"}  # never run these


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def wait_port(port, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def start_gateway(work, port, workers, root=ROOT):
    """The gateway as deployed (gunicorn + gevent, `workers` workers) pinned to core 0, on SQLite in `work`,
    serving the checkout at `root`, with root's key and access token set for the benchmark."""
    env = {**os.environ, "DATA_DIR": work, "SQLITE_PATH": os.path.join(work, "bench.db"), "SQL_DSN": "",
           "INITIAL_ROOT_PASSWORD": "bench-password", "INITIAL_ROOT_ACCESS_TOKEN": ACCESS,
           "INITIAL_ROOT_TOKEN": KEY, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers),
           "WORKER_CONNECTIONS": "4000", "ACCESS_LOG": "", "GRACEFUL_TIMEOUT": "5"}
    return subprocess.Popen(["taskset", "-c", "0", os.path.join(os.path.dirname(sys.executable), "gunicorn"),
                             "-c", "gunicorn.conf.py", "wsgi:app"], cwd=root, env=env,
                            stdout=open(os.path.join(work, "gateway.log"), "w"), stderr=subprocess.STDOUT)


def pids_of(parent):
    """The process and all its descendants (gunicorn master and workers; uvicorn and any worker processes)."""
    pids, queue = [], [parent]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        queue += [int(p) for p in out]
    return pids


def user_system_seconds(pids):
    """CPU seconds the processes spent in user space and in the kernel (from /proc)."""
    user = system = 0.0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) / os.sysconf("SC_CLK_TCK")
        system += int(fields[12]) / os.sysconf("SC_CLK_TCK")
    return user, system


def cpu_seconds(pids):
    return sum(user_system_seconds(pids))


def stop(processes):
    """SIGTERM to each, then wait up to 15 s for each; kill what is left."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def rss_mib(pids):
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class RssSampler(threading.Thread):
    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak, self.running = pids, 0.0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_mib(self.pids))
            time.sleep(0.2)


def wrk(url, connections, seconds, workdir, auth=True):
    script = os.path.join(workdir, f"post-{auth}.lua")
    with open(script, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.body = \'{BODY}\'\nwrk.headers["Content-Type"] = "application/json"\n')
        if auth:
            f.write(f'wrk.headers["Authorization"] = "Bearer sk-{KEY}"\n')
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", script, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
              "requests": int(re.search(r"(\d+) requests in", out).group(1)),
              "errors": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0}
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["non_2xx"] = result["errors"]
    if socket_errors:
        kinds = ("connect", "read", "write", "timeout")
        result["socket_errors"] = dict(zip(kinds, map(int, socket_errors.groups()), strict=True))
        result["errors"] += sum(int(x) for x in socket_errors.groups())
    for label in ("50%", "99%"):
        match = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)\b", out)
        value, unit = float(match.group(1)), match.group(2)
        result[label] = value / 1000 if unit == "us" else value if unit == "ms" else value * 1000
    return result


def measure_cpu(pids_source, fn):
    """Run fn (a wrk call) and add the CPU seconds the target spent per 1,000 of its requests."""
    before = cpu_seconds(pids_of(pids_source))
    result = fn()
    result["cpu_s_per_1000"] = (cpu_seconds(pids_of(pids_source)) - before) / max(result["requests"], 1) * 1000
    return result


def measure_streams(url, pid, n, model):
    """The stream step, with the target's peak RSS and CPU: CPU per stream varies far less between runs on a
    shared VM than durations do, which swing with every stall of the core."""
    pids = pids_of(pid)
    sampler = RssSampler(pids)
    sampler.start()
    before = cpu_seconds(pids)
    try:
        result = asyncio.run(stream_load.run(url, "sk-" + KEY, n, STREAM_DEADLINE, STREAM_RAMP, model=model))
    finally:
        sampler.running = False
        sampler.join()
    result["peak_rss_mib"] = round(sampler.peak, 1)
    result["cpu_ms_per_stream"] = round((cpu_seconds(pids) - before) / max(n, 1) * 1000, 2)
    return result


class LiteLLM:
    """The optional third target: LiteLLM's proxy, from its own virtualenv (never the repo's), started with a
    generated config whose models point at the same loopback mocks. No database, no master key, telemetry off.
    Any failure is recorded (self.error) and ends only this target; the rest of the run goes on."""

    def __init__(self, path, workers, timeout, work, json_port, sse_port):
        self.path, self.workers, self.timeout, self.work = path, workers, timeout, work
        self.json_port, self.sse_port = json_port, sse_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        self.process, self.error, self.version, self.notes = None, None, None, []
        self.log_path = os.path.join(work, "litellm.log")
        self.config_path = os.path.join(work, "litellm.yaml")
        self.log_config_path = os.path.join(work, "litellm-logging.json")
        self.binary = os.path.join(path, "bin", "litellm") if os.path.isdir(path) else path
        self.command = []

    def _version(self):
        python = os.path.join(os.path.dirname(self.binary), "python")
        if not os.path.exists(python):
            return None
        out = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip() or None

    def _write_config(self):
        # JSON is YAML: no YAML library needed here. openai/<model> with api_base = the mock's /v1 URL.
        models = [
            {"model_name": "gpt-4o-mini",
             "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": f"http://127.0.0.1:{self.json_port}/v1",
                                "api_key": "sk-bench-dummy"}},
            {"model_name": "stream-bench",
             "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": f"http://127.0.0.1:{self.sse_port}/v1",
                                "api_key": "sk-bench-dummy"}},
        ]
        with open(self.config_path, "w") as f:
            json.dump({"model_list": models, "litellm_settings": {"telemetry": False}}, f, indent=1)
        # uvicorn's access log off, as the gateway's is (ACCESS_LOG=""); errors still go to litellm.log
        logging_config = {
            "version": 1, "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                                   "stream": "ext://sys.stderr"}},
            "loggers": {"uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
                        "uvicorn.error": {"level": "INFO"},
                        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False}},
        }
        with open(self.log_config_path, "w") as f:
            json.dump(logging_config, f)

    def start(self):
        """Start the process (does not wait). False, with self.error set, if it cannot even be started."""
        try:
            if not os.access(self.binary, os.X_OK):
                raise RuntimeError(f"{self.binary} is not an executable (pass the virtualenv or its bin/litellm)")
            self.version = self._version()
            if self.version in COMPROMISED_LITELLM:
                raise RuntimeError(f"litellm {self.version} is a compromised release; refusing to run it")
            self._write_config()
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("LITELLM_", "DATABASE_", "VIRTUAL_ENV", "PYTHON"))
                   and k not in ("DIRECT_URL", "REDIS_HOST", "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")}
            env.update(LITELLM_TELEMETRY="False", LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_MODE="PRODUCTION",
                       NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
                       HF_HUB_OFFLINE="1", DO_NOT_TRACK="1")
            self.command = ["taskset", "-c", "0", self.binary, "--config", self.config_path, "--host", "127.0.0.1",
                            "--port", str(self.port), "--num_workers", str(self.workers), "--telemetry", "False",
                            "--log_config", self.log_config_path]
            self.process = subprocess.Popen(self.command, cwd=self.work, env=env, stdin=subprocess.DEVNULL,
                                            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
                                            start_new_session=True)
            return True
        except Exception as e:  # noqa: BLE001 - any failure only ends this target
            self.fail(f"could not start: {type(e).__name__}: {e}")
            return False

    def wait_ready(self):
        """Wait for /health/liveliness, then check one JSON and one streamed completion through it."""
        if self.error:
            return False
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                return self.fail(f"exited with code {self.process.returncode} while starting")
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/health/liveliness", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                return self.fail(f"not ready after {self.timeout} s")
            time.sleep(0.5)
        try:
            headers = {"Authorization": f"Bearer sk-{KEY}"}
            answer = requests.post(self.url, data=BODY, headers={**headers, "Content-Type": "application/json"},
                                   timeout=30)
            if answer.status_code != 200 or "Hello from the benchmark upstream" not in answer.text:
                return self.fail(f"check request: HTTP {answer.status_code}: {answer.text[:300]}")
            check = asyncio.run(stream_load.run(self.url, "sk-" + KEY, 1, 30, 0, model="stream-bench"))
            if check["succeeded"] != 1:
                return self.fail(f"check stream failed: {json.dumps(check['errors'])}")
        except Exception as e:  # noqa: BLE001
            return self.fail(f"check request: {type(e).__name__}: {e}")
        return True

    def alive(self, step="the run"):
        if self.error:
            return False
        if self.process is None or self.process.poll() is not None:
            self.fail(f"exited with code {self.process.returncode if self.process else '?'} during {step}")
            return False
        return True

    def measure(self, what, fn):
        """fn() if LiteLLM is still up; None (and a note) if it is not or the measurement fails."""
        if not self.alive(f"the step before: {what}"):
            return None
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001
            self.notes.append(f"{what}: {type(e).__name__}: {e}")
            result = None
        return result if self.alive(what) else None

    def fail(self, reason):
        self.error = self.error or reason
        self.stop()
        return False

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
            except ProcessLookupError:
                pass

    def log_tail(self, lines=25):
        try:
            with open(self.log_path, errors="replace") as f:
                text = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
            return "\n".join(text.strip().splitlines()[-lines:])
        except OSError:
            return ""

    def summary(self):
        return {"version": self.version, "workers": self.workers, "command": shlex.join(self.command),
                "error": self.error, "notes": self.notes, "log_tail": self.log_tail() if self.error else ""}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s per wrk run and 200 streams (smoke check)")
    parser.add_argument("--seconds", type=int, help="seconds per wrk run (default 10, 5 with --quick)")
    parser.add_argument("--streams", help="comma-separated stream counts (default 500,2000; 200 with --quick)")
    parser.add_argument("--report", default=os.path.join(HERE, "report.md"))
    parser.add_argument("--workers", type=int, default=2, help="gateway gunicorn workers")
    parser.add_argument("--keep-work", action="store_true", help="keep the work folder (gateway.log, bench.db)")
    parser.add_argument("--litellm", metavar="VENV",
                        help="also measure LiteLLM's proxy from this virtualenv (or its bin/litellm)")
    parser.add_argument("--litellm-workers", type=int, default=1, help="litellm --num_workers (default 1)")
    parser.add_argument("--litellm-timeout", type=int, default=180, help="seconds to wait for LiteLLM to be ready")
    args = parser.parse_args()
    seconds = args.seconds or (5 if args.quick else 10)
    streams = [int(n) for n in args.streams.split(",")] if args.streams else [200] if args.quick else [500, 2000]
    if not 1 <= seconds <= 120 or not all(1 <= n <= 5000 for n in streams):
        parser.error("--seconds must be 1..120 and each stream count 1..5000")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    work = tempfile.mkdtemp(prefix="oneapi-bench-")
    processes = []
    litellm = None
    try:
        json_port, sse_port, gateway_port = free_port(), free_port(), free_port()
        with open(os.path.join(HERE, "mock_nginx.conf")) as f:
            conf = f.read().replace("__PORT__", str(json_port))
        with open(os.path.join(work, "nginx.conf"), "w") as f:
            f.write(conf)
        processes.append(subprocess.Popen(["taskset", "-c", "1", "nginx", "-p", work, "-c", "nginx.conf"],
                                          stderr=subprocess.DEVNULL))
        processes.append(subprocess.Popen(["taskset", "-c", "1", sys.executable, os.path.join(HERE, "sse_mock.py"),
                                           "--port", str(sse_port), "--chunks", "50", "--interval", "0.1"]))
        gateway = start_gateway(work, gateway_port, args.workers)
        processes.append(gateway)
        if args.litellm:
            litellm = LiteLLM(args.litellm, args.litellm_workers, args.litellm_timeout, work, json_port, sse_port)
            litellm.start()  # starts alongside the gateway; waited for below
        base = f"http://127.0.0.1:{gateway_port}"
        wait(base + "/api/status")
        wait_port(json_port)
        wait_port(sse_port)
        admin = {"Authorization": ACCESS}
        for channel in ({"name": "json", "type": 1, "key": "k", "base_url": f"http://127.0.0.1:{json_port}",
                         "models": "gpt-4o-mini"},
                        {"name": "sse", "type": 1, "key": "k", "base_url": f"http://127.0.0.1:{sse_port}",
                         "models": "stream-bench", "model_mapping": '{"stream-bench": "gpt-4o-mini"}'}):
            assert requests.post(base + "/api/channel/", json=channel, headers=admin).json()["success"]
        direct_json = f"http://127.0.0.1:{json_port}/v1/chat/completions"
        via_gateway = base + "/v1/chat/completions"
        if litellm and litellm.wait_ready():
            print(f"LiteLLM {litellm.version} ready on port {litellm.port}", file=sys.stderr)
        elif litellm:
            print(f"LiteLLM left out: {litellm.error}", file=sys.stderr)
        wrk(via_gateway, 8, 2, work)  # warm-up: caches, pools, tokenizer
        if litellm:
            litellm.measure("warm-up", lambda: wrk(litellm.url, 8, 2, work))

        # Each step: direct, then the gateway, then LiteLLM, back to back (the idle one waits on its core).
        results = {"latency": {}, "throughput": {}, "streams": {}}
        results["latency"]["direct"] = wrk(direct_json, 1, seconds, work, auth=False)
        results["latency"]["gateway"] = wrk(via_gateway, 1, seconds, work)
        if litellm:
            results["latency"]["litellm"] = litellm.measure("latency", lambda: wrk(litellm.url, 1, seconds, work))
        for connections in (32, 128):
            row = {"direct": wrk(direct_json, connections, seconds, work, auth=False),
                   "gateway": measure_cpu(gateway.pid, lambda c=connections: wrk(via_gateway, c, seconds, work))}
            if litellm:
                row["litellm"] = litellm.measure(
                    f"throughput at {connections}",
                    lambda c=connections: measure_cpu(litellm.process.pid, lambda: wrk(litellm.url, c, seconds, work)))
            results["throughput"][connections] = row
        for n in streams:
            # streams last 5 s (50 chunks × 100 ms); opening them over 4 s keeps all n open together at the peak
            row = {"direct": asyncio.run(stream_load.run(f"http://127.0.0.1:{sse_port}/v1/chat/completions", "x", n,
                                                         STREAM_DEADLINE, STREAM_RAMP)),
                   "gateway": measure_streams(via_gateway, gateway.pid, n, "stream-bench")}
            if litellm:
                row["litellm"] = litellm.measure(
                    f"{n} streams", lambda n=n: measure_streams(litellm.url, litellm.process.pid, n, "stream-bench"))
            results["streams"][n] = row
        results["idle_rss_mib"] = round(rss_mib(pids_of(gateway.pid)), 1)
        if litellm:
            if litellm.alive():
                results["litellm_idle_rss_mib"] = round(rss_mib(pids_of(litellm.process.pid)), 1)
            results["litellm"] = litellm.summary()
        write_report(args.report, results, args, seconds)
        print(json.dumps(results, indent=1, default=str))
    finally:
        if litellm:
            litellm.stop()
        stop(processes)
        if args.keep_work:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def ms(x, key):
    return f"{x[key]:.2f}" if x else "—"


def added_ms(x, base, key):
    return f"**{x[key] - base[key]:.2f}**" if x else "—"


def write_report(path, r, args, seconds):
    lat, thr, st = r["latency"], r["throughput"], r["streams"]
    info = r.get("litellm")
    who = ["gateway"] + (["litellm"] if info else [])
    name = {"direct": "direct", "gateway": "gateway", "litellm": "LiteLLM"}
    command = shlex.join(["python", "bench/run.py"] + sys.argv[1:])
    lines = [
        "# Benchmark report", "",
        f"`{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"gateway = gunicorn + gevent, {args.workers} workers, pinned to core 0; wrk, the stream driver and the mocks "
        f"on core 1; SQLite; billing and logging on. wrk runs of {seconds} s.", "",
    ]
    if info:
        lines += [
            f"LiteLLM = LiteLLM {info['version'] or '(version unknown)'} proxy (`litellm --num_workers "
            f"{info['workers']}`, uvicorn), from its own virtualenv, pinned to core 0 like the gateway and measured "
            "right after it in every step, against the same mocks (`openai/gpt-4o-mini` with `api_base` = the "
            "mock's /v1). No database and no master key, so LiteLLM checks no key and records no spend, while the "
            "gateway checks the key and bills and logs every request in SQLite; telemetry off, access log off "
            "(as the gateway's).", "",
        ]
        if info["error"]:
            lines += ["## LiteLLM: left out", "",
                      f"LiteLLM was not measured (or not fully): **{info['error']}**. Its cells below are `—`.", ""]
            if info["command"]:
                lines += [f"Command: `{info['command']}`", ""]
            if info["log_tail"]:
                lines += ["Last lines of its log:", "", "```", info["log_tail"], "```", ""]
        if info["notes"]:
            lines += ["LiteLLM measurements that failed: " + "; ".join(f"`{n}`" for n in info["notes"]), ""]
    lines += ["## Added latency, concurrency 1", "", "| | p50 ms | p99 ms | errors |", "|---|---|---|---|"]
    for target in ["direct"] + who:
        x = lat.get(target)
        lines.append(f"| {name[target]} | {ms(x, '50%')} | {ms(x, '99%')} | {x['errors'] if x else '—'} |")
    for target in who:
        x = lat.get(target)
        lines.append(f"| **added, {name[target]}** | {added_ms(x, lat['direct'], '50%')} | "
                     f"{added_ms(x, lat['direct'], '99%')} | |")
    header = "| concurrency | direct req/s |"
    for target in who:
        header += f" {name[target]} req/s | {name[target]} errors | {name[target]} CPU s / 1,000 req |"
    lines += ["", "## Non-streaming throughput", "", header, "|---|---|" + "---|---|---|" * len(who)]
    for c, row in thr.items():
        line = f"| {c} | {row['direct']['rps']:.0f} |"
        for target in who:
            x = row.get(target)
            line += (f" {x['rps']:.0f} | {x['errors']} | {x['cpu_s_per_1000']:.2f} |" if x else " — | — | — |")
        lines.append(line)
    lines += ["", "## Concurrent streams (50 chunks, 100 ms apart)", "",
              "| streams | | success | TTFB p50 ms | TTFB p99 ms | duration p50 s | duration p99 s | peak RSS MiB "
              "| CPU ms / stream |",
              "|---|---|---|---|---|---|---|---|---|"]
    for n, row in st.items():
        for target in ["direct"] + who:
            x = row.get(target)
            if x is None:
                lines.append(f"| {n} | {name[target]} | — | — | — | — | — | — | — |")
                continue
            lines.append(f"| {n} | {name[target]} | {x['success_rate']:.1%} | {x['ttfb_p50_ms']} | {x['ttfb_p99_ms']} | "
                         f"{x['duration_p50_s']} | {x['duration_p99_s']} | {x.get('peak_rss_mib', '')} | "
                         f"{x.get('cpu_ms_per_stream', '')} |")
        d = row["direct"]
        for target in who:
            x = row.get(target)
            if x and d["ttfb_p50_ms"] is not None and x["ttfb_p50_ms"] is not None:
                lines.append(f"| {n} | **added, {name[target]}** | | **{x['ttfb_p50_ms'] - d['ttfb_p50_ms']:.1f}** | | "
                             f"**{(x['duration_p50_s'] / d['duration_p50_s'] - 1):.1%}** | | | |")
        for target in who:
            x = row.get(target)
            if x and x["errors"]:
                lines.append(f"\n{name[target]} stream errors at {n}: `{json.dumps(x['errors'])}`\n")
    lines += ["", f"Gateway RSS after the run: {r['idle_rss_mib']} MiB."]
    if info:
        lines.append(f"LiteLLM RSS after the run: {r.get('litellm_idle_rss_mib', '—')} MiB.")
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
