"""The side-by-side benchmark: direct to a mock upstream vs through the gateway, in one run, alternating.

The gateway (gunicorn + gevent, as deployed) is pinned to core 0; wrk, the stream driver and the mocks to
core 1. Writes a Markdown report (default bench/report.md). Loopback only; every run bounded in time.

    python bench/run.py              # full run, about 3 minutes
    python bench/run.py --quick      # shorter runs, for a smoke check
"""

import argparse
import asyncio
import json
import os
import re
import resource
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


def pids_of(parent):
    """The process and its children (gunicorn master and workers)."""
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
    return [parent] + [int(p) for p in out]


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError):
            pass
    return total


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
    if socket_errors:
        result["errors"] += sum(int(x) for x in socket_errors.groups())
    for label in ("50%", "99%"):
        match = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)\b", out)
        value, unit = float(match.group(1)), match.group(2)
        result[label] = value / 1000 if unit == "us" else value if unit == "ms" else value * 1000
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--report", default=os.path.join(HERE, "report.md"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    seconds = 5 if args.quick else 10
    streams = [200] if args.quick else [500, 2000]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    work = tempfile.mkdtemp(prefix="oneapi-bench-")
    processes = []
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
        env = {**os.environ, "DATA_DIR": work, "SQLITE_PATH": os.path.join(work, "bench.db"), "SQL_DSN": "",
               "INITIAL_ROOT_PASSWORD": "bench-password", "INITIAL_ROOT_ACCESS_TOKEN": ACCESS,
               "INITIAL_ROOT_TOKEN": KEY, "BIND": f"127.0.0.1:{gateway_port}", "WEB_CONCURRENCY": str(args.workers),
               "WORKER_CONNECTIONS": "4000", "ACCESS_LOG": "", "GRACEFUL_TIMEOUT": "5"}
        gateway = subprocess.Popen(["taskset", "-c", "0", os.path.join(os.path.dirname(sys.executable), "gunicorn"),
                                    "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                                   stdout=open(os.path.join(work, "gateway.log"), "w"), stderr=subprocess.STDOUT)
        processes.append(gateway)
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
        wrk(via_gateway, 8, 2, work)  # warm-up: caches, pools, tokenizer

        results = {"latency": {}, "throughput": {}, "streams": {}}
        results["latency"]["direct"] = wrk(direct_json, 1, seconds, work, auth=False)
        results["latency"]["gateway"] = wrk(via_gateway, 1, seconds, work)
        for connections in (32, 128):
            direct = wrk(direct_json, connections, seconds, work, auth=False)
            before = cpu_seconds(pids_of(gateway.pid))
            through = wrk(via_gateway, connections, seconds, work)
            through["cpu_s_per_1000"] = (cpu_seconds(pids_of(gateway.pid)) - before) / max(through["requests"], 1) * 1000
            results["throughput"][connections] = {"direct": direct, "gateway": through}
        for n in streams:
            # streams last 5 s (50 chunks × 100 ms); opening them over 4 s keeps all n open together at the peak
            direct = asyncio.run(stream_load.run(f"http://127.0.0.1:{sse_port}/v1/chat/completions", "x", n, 60, 4))
            sampler = RssSampler(pids_of(gateway.pid))
            sampler.start()
            through = asyncio.run(stream_load.run(via_gateway, "sk-" + KEY, n, 60, 4, model="stream-bench"))
            sampler.running = False
            sampler.join()
            through["peak_rss_mib"] = round(sampler.peak, 1)
            results["streams"][n] = {"direct": direct, "gateway": through}
        results["idle_rss_mib"] = round(rss_mib(pids_of(gateway.pid)), 1)
        write_report(args.report, results, args)
        print(json.dumps(results, indent=1, default=str))
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)


def write_report(path, r, args):
    lat, thr, st = r["latency"], r["throughput"], r["streams"]
    lines = [
        "# Benchmark report", "",
        f"`python bench/run.py{' --quick' if args.quick else ''}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"gateway = gunicorn + gevent, {args.workers} workers, pinned to core 0; wrk, the stream driver and the mocks "
        "on core 1; SQLite; billing and logging on.", "",
        "## Added latency, concurrency 1", "",
        "| | p50 ms | p99 ms |", "|---|---|---|",
        f"| direct | {lat['direct']['50%']:.2f} | {lat['direct']['99%']:.2f} |",
        f"| gateway | {lat['gateway']['50%']:.2f} | {lat['gateway']['99%']:.2f} |",
        f"| **added** | **{lat['gateway']['50%'] - lat['direct']['50%']:.2f}** | "
        f"**{lat['gateway']['99%'] - lat['direct']['99%']:.2f}** |", "",
        "## Non-streaming throughput", "",
        "| concurrency | direct req/s | gateway req/s | gateway errors | gateway CPU s / 1,000 req |", "|---|---|---|---|---|",
    ]
    for c, row in thr.items():
        lines.append(f"| {c} | {row['direct']['rps']:.0f} | {row['gateway']['rps']:.0f} | {row['gateway']['errors']} | "
                     f"{row['gateway']['cpu_s_per_1000']:.2f} |")
    lines += ["", "## Concurrent streams (50 chunks, 100 ms apart)", "",
              "| streams | | success | TTFB p50 ms | TTFB p99 ms | duration p50 s | duration p99 s | peak RSS MiB |",
              "|---|---|---|---|---|---|---|---|"]
    for n, row in st.items():
        for who in ("direct", "gateway"):
            x = row[who]
            lines.append(f"| {n} | {who} | {x['success_rate']:.1%} | {x['ttfb_p50_ms']} | {x['ttfb_p99_ms']} | "
                         f"{x['duration_p50_s']} | {x['duration_p99_s']} | {x.get('peak_rss_mib', '')} |")
        d, g = row["direct"], row["gateway"]
        if d["ttfb_p50_ms"] is not None and g["ttfb_p50_ms"] is not None:
            lines.append(f"| {n} | **added** | | **{g['ttfb_p50_ms'] - d['ttfb_p50_ms']:.1f}** | | "
                         f"**{(g['duration_p50_s'] / d['duration_p50_s'] - 1):.1%}** | | |")
        if g["errors"]:
            lines.append(f"\nGateway stream errors at {n}: `{json.dumps(g['errors'])}`\n")
    lines += ["", f"Gateway RSS after the run: {r['idle_rss_mib']} MiB.", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
