"""CPU per stream through the gateway, split into its set-up and its chunks: N streams against an upstream
that sends 1 chunk, then N against one that sends 50 (100 ms apart), alternating, each opened over 4 s.
The 1-chunk figure is the request's own cost (auth, reservation, upstream call, settlement, log row); the
difference, over 49, is the cost of one more chunk. Prints one line per step; --root serves another checkout
(a git worktree) with this runner, for alternating A/B pairs.

    python bench/stream_cost.py                      # 500 streams, two rounds
    python bench/stream_cost.py -n 2000 --only 50    # the 2,000-stream step alone, as in run.py
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402
import stream_load  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=500, help="streams per step (1-5000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the steps (1-10)")
    parser.add_argument("--only", choices=["1", "50"], help="only the streams of 1 or of 50 chunks")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", default=os.path.dirname(HERE), help="the checkout to serve (default: this one)")
    args = parser.parse_args()
    if not 1 <= args.n <= 5000 or not 1 <= args.rounds <= 10:
        parser.error("-n must be 1..5000 and --rounds 1..10")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    work = tempfile.mkdtemp(prefix="oneapi-stream-cost-")
    processes = []
    try:
        ports = {chunks: run.free_port() for chunks in (1, 50)}
        for chunks, port in ports.items():
            processes.append(subprocess.Popen(["taskset", "-c", "1", sys.executable, os.path.join(HERE, "sse_mock.py"),
                                               "--port", str(port), "--chunks", str(chunks), "--interval", "0.1"]))
        gateway_port = run.free_port()
        gateway = run.start_gateway(work, gateway_port, args.workers, root=args.root)
        processes.append(gateway)
        base = f"http://127.0.0.1:{gateway_port}"
        run.wait(base + "/api/status")
        for chunks, port in ports.items():
            run.wait_port(port)
            model = f"chunks-{chunks}"
            channel = {"name": model, "type": 1, "key": "k", "base_url": f"http://127.0.0.1:{port}", "models": model,
                       "model_mapping": json.dumps({model: "gpt-4o-mini"})}
            assert requests.post(base + "/api/channel/", json=channel, headers={"Authorization": run.ACCESS}).json()["success"]
        url = base + "/v1/chat/completions"
        asyncio.run(stream_load.run(url, "sk-" + run.KEY, 50, 30, 1, model="chunks-1"))  # warm-up
        steps = [args.only] if args.only else ["1", "50"]
        for _ in range(args.rounds):
            for chunks in steps:
                pids = run.pids_of(gateway.pid)
                user, system = run.user_system_seconds(pids)
                result = asyncio.run(stream_load.run(url, "sk-" + run.KEY, args.n, run.STREAM_DEADLINE, run.STREAM_RAMP,
                                                     model=f"chunks-{chunks}"))
                user_after, system_after = run.user_system_seconds(pids)
                print(f"{args.n} streams of {chunks:>2} chunks: CPU {(user_after - user) / args.n * 1000:.2f} user + "
                      f"{(system_after - system) / args.n * 1000:.2f} system ms per stream; success "
                      f"{result['success_rate']:.1%}; TTFB p50 {result['ttfb_p50_ms']} ms; duration p50 "
                      f"{result['duration_p50_s']} s", flush=True)
    finally:
        run.stop(processes)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
