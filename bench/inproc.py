"""CPU per relayed request inside one process, without a server: the Flask test client against the nginx
mock. Isolates the gateway's own work (auth, routing, reservation, upstream call, settlement, log row).

    python bench/inproc.py            # prints ms per request (best of 3 × 300)
    python bench/inproc.py --profile  # and the top functions by cumulative time (PROFILE_SORT=tottime: own time)
"""

import argparse
import cProfile
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from run import free_port, wait_port  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="oneapi-inproc-")
    port = free_port()
    with open(os.path.join(HERE, "mock_nginx.conf")) as f:
        conf = f.read().replace("__PORT__", str(port))
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(conf)
    nginx = subprocess.Popen(["nginx", "-p", work, "-c", "nginx.conf"], stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        os.environ.update(DATA_DIR=work, SQLITE_PATH=os.path.join(work, "x.db"), SQL_DSN="",
                          INITIAL_ROOT_PASSWORD="inproc-password", INITIAL_ROOT_TOKEN="c" * 48)
        from oneapi import bootstrap, create_app
        from oneapi.extensions import db
        from oneapi.models import Channel

        app = create_app()
        with app.app_context():
            bootstrap.prepare()
            channel = Channel(name="n", type=1, key="k", base_url=f"http://127.0.0.1:{port}", models="gpt-4o-mini")
            db.session.add(channel)
            db.session.flush()
            db.session.add_all(channel.abilities())
            db.session.commit()
        client = app.test_client()
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
        headers = {"Authorization": "Bearer sk-" + "c" * 48}
        for _ in range(100):
            assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 200
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(300):
                client.post("/v1/chat/completions", json=body, headers=headers)
            runs.append((time.perf_counter() - started) / 300 * 1000)
        print(f"{min(runs):.2f} ms per request (best of 3 runs of 300)")
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(300):
                client.post("/v1/chat/completions", json=body, headers=headers)
            profile.disable()
            order = os.environ.get("PROFILE_SORT", "cumulative")  # or tottime: each function's own time
            pstats.Stats(profile).sort_stats(order).print_stats(int(os.environ.get("PROFILE_LINES", "30")))
    finally:
        nginx.send_signal(signal.SIGTERM)
        nginx.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
