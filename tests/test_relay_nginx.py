"""The shipped nginx.conf in front of the real server (research §2.9): streamed chunks pass through at the
upstream's pace, not buffered into one burst at the end. nginx runs from Debian's package, as a
foreground process with the repository's server block copied verbatim (only the ports change)."""

import os
import shutil
import socket
import subprocess
import time

import pytest
import requests

from tests.conftest import ROOT, free_port
from tests.mock_upstream import Reply
from tests.test_relay_sdk import MESSAGES, Gateway, pool, sdk  # noqa: F401 (pool is a fixture)
from tests.test_relay_streaming import PACE, WORDS, assert_paced, post_stream, timed_lines

NGINX = "/usr/sbin/nginx"


def ensure_nginx():
    if os.path.exists(NGINX):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("nginx is not installed and cannot be installed here (apt-get install nginx needs root)")
    result = subprocess.run(["apt-get", "install", "-y", "nginx"], capture_output=True, timeout=600,
                            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if result.returncode != 0 or not os.path.exists(NGINX):
        pytest.skip(f"nginx could not be installed: {result.stderr.decode()[-500:]}")


def nginx_config(folder, listen_port, app_port):
    with open(os.path.join(ROOT, "nginx.conf")) as f:
        block = f.read()
    assert block.count("listen 80;") == 1 and block.count("server 127.0.0.1:3000;") == 1
    block = block.replace("listen 80;", f"listen 127.0.0.1:{listen_port};")
    block = block.replace("server 127.0.0.1:3000;", f"server 127.0.0.1:{app_port};")
    temp = "\n".join(f"    {name}_temp_path {folder}/{name}_temp;"
                     for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log {folder}/access.log;
{temp}
{block}
}}
"""


@pytest.fixture(scope="module")
def nginx(pool, upstream, tmp_path_factory):  # noqa: F811
    ensure_nginx()
    server = pool.server("app")
    gw = Gateway(server.url, upstream.url, models=["gpt-4o-mini"])
    folder = tmp_path_factory.mktemp("nginx")
    port = free_port()
    config = folder / "nginx.conf"
    config.write_text(nginx_config(folder, port, server.url.rsplit(":", 1)[1]))
    process = subprocess.Popen([NGINX, "-c", str(config), "-p", str(folder), "-e", str(folder / "error.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            pytest.fail(f"nginx exited with {process.returncode}: {process.stderr.read().decode()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("nginx did not start listening in 10 s")
            time.sleep(0.05)
    gw.front = f"http://127.0.0.1:{port}"
    yield gw
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture(autouse=True)
def fresh_upstream(upstream):
    upstream.reset()
    yield


@pytest.mark.parametrize("chunked", [True, False])
def test_paced_stream_through_nginx_keeps_its_pace(nginx, upstream, chunked):
    upstream.queue(Reply(pace=PACE, content=WORDS, chunked=chunked))
    with post_stream(nginx.front, nginx.key) as reply:
        assert reply.status_code == 200
        assert reply.headers["Content-Type"].startswith("text/event-stream")
        assert reply.headers.get("Content-Encoding") is None
        assert reply.headers["Server"].startswith("nginx")
        lines = timed_lines(reply)
    assert_paced(lines, WORDS)


def test_sdk_through_nginx(nginx):
    client = sdk(nginx.front, nginx.key)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content == (
        "Hello from the mock upstream.")
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from the mock upstream."


def test_the_rest_of_the_site_through_nginx(nginx):
    reply = requests.get(nginx.front + "/api/status", timeout=10, headers={"Accept-Encoding": "gzip"})
    assert reply.status_code == 200 and reply.json()["success"] is True
    assert reply.headers["Server"].startswith("nginx")
