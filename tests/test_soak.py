"""Memory stays flat: after a warm-up, a few thousand requests and streams through one gunicorn worker
grow its RSS by less than 30 MB (bounded in count and time)."""

import subprocess
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.conftest import TEST_PASSWORD
from tests.mock_upstream import Reply

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello " * 50}]}


def worker_rss_mib(master_pid):
    children = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout.split()
    total = 0
    for pid in children:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def test_rss_is_flat_over_many_requests_and_streams(live_server_factory, upstream):
    server = live_server_factory("gunicorn", WEB_CONCURRENCY="1")
    web = requests.Session()
    web.post(server.url + "/api/user/login", json={"username": "root", "password": "123456"})
    web.put(server.url + "/api/user/self", json={"password": TEST_PASSWORD})
    web.post(server.url + "/api/channel/", json={"name": "m", "type": 1, "key": "k", "base_url": upstream.url,
                                                 "models": "gpt-4o-mini"})
    key = web.post(server.url + "/api/token/", json={"name": "soak", "unlimited_quota": True}).json()["data"]["key"]
    headers = {"Authorization": f"Bearer {key}"}
    upstream.default = Reply(content="one two three four five six seven eight nine ten")
    session = requests.Session()

    def one(number):
        stream = number % 4 == 0
        reply = session.post(server.url + "/v1/chat/completions", json={**CHAT, "stream": stream}, headers=headers,
                             timeout=30)
        return reply.status_code

    def batch(count):
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(one, range(count)))
        assert statuses.count(200) == count, set(statuses)

    batch(400)  # warm-up: caches, pools, allocator arenas, the tokenizer if it is ever needed
    before = worker_rss_mib(server.process.pid)
    batch(2400)
    after = worker_rss_mib(server.process.pid)
    assert after - before < 30, f"RSS grew from {before:.1f} to {after:.1f} MiB"
