"""On SIGTERM a node stops taking new requests, lets running streams finish, settles them, then exits."""

import signal
import time

import requests

from tests.conftest import TEST_PASSWORD
from tests.mock_upstream import Reply
from tests.test_billing import consume_rows


def test_sigterm_lets_running_streams_finish_and_bills_them(live_server_factory, upstream):
    server = live_server_factory("gunicorn", GRACEFUL_TIMEOUT="30", WEB_CONCURRENCY="1")
    web = requests.Session()
    web.post(server.url + "/api/user/login", json={"username": "root", "password": "123456"})
    web.put(server.url + "/api/user/self", json={"password": TEST_PASSWORD})
    web.post(server.url + "/api/channel/", json={"name": "m", "type": 1, "key": "k", "base_url": upstream.url,
                                                 "models": "gpt-4o-mini"})
    key = web.post(server.url + "/api/token/", json={"name": "g", "unlimited_quota": True}).json()["data"]["key"]
    web.close()  # no idle keep-alive connection left to hold the shutdown
    upstream.queue(Reply(pace=0.25, content=" ".join(["word"] * 12)))
    stream = requests.post(server.url + "/v1/chat/completions", stream=True, timeout=30,
                           headers={"Authorization": f"Bearer {key}", "Connection": "close"},
                           json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    lines = stream.iter_lines()
    assert next(line for line in lines if line.startswith(b"data:"))
    server.process.send_signal(signal.SIGTERM)

    def refused():
        try:
            return requests.get(server.url + "/api/status", timeout=1).status_code != 200
        except requests.RequestException:
            return True

    deadline = time.monotonic() + 5
    while not refused() and time.monotonic() < deadline:  # the node stops taking new requests
        time.sleep(0.1)
    assert refused()
    rest = list(lines)
    assert b"data: [DONE]" in rest, "the running stream was cut by the restart"
    assert server.process.wait(20) == 0
    rows = consume_rows(server.app())
    assert len(rows) == 1 and rows[0].outcome == "done" and rows[0].completion_tokens == 7
