"""relay/connect.py: the relay's upstream connections. An IP address is never looked up; a host name is looked up
once per CACHE_SECONDS; a refused address is looked up afresh; failures keep urllib3's (and so the relay's) errors."""

import socket

import pytest

from oneapi.relay import connect, upstream
from oneapi.relay.body_reader import BodyReader
from oneapi.relay.upstream import UpstreamTimeout, UpstreamUnreachable, send
from tests.test_body_reader import PieceServer, head, read_all


@pytest.fixture
def lookups(monkeypatch):
    """Every name lookup the relay makes, by host (the real lookup still answers)."""
    seen = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        seen.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(connect.socket, "getaddrinfo", counting)
    connect._cache.clear()
    yield seen
    connect._cache.clear()


def closing_answer(text):
    return [head(f"Content-Length: {len(text)}\r\nConnection: close\r\n".encode()) + text, None]


def fetch(url):
    response = send(url, {}, b"{}", connect_timeout=2, idle_timeout=5)
    body = BodyReader(response)
    try:
        return read_all(body)
    finally:
        body.close()


def test_an_ip_address_is_never_looked_up(lookups):
    server = PieceServer()
    try:
        server.scripts += [closing_answer(b"one"), closing_answer(b"two")]
        assert fetch(server.url) == b"one"
        assert fetch(server.url) == b"two"
        assert server.connections == 2  # two new connections...
        assert lookups == []  # ...and not one lookup
    finally:
        server.close()


def test_a_name_is_looked_up_once_while_fresh_then_again(lookups, monkeypatch):
    server = PieceServer()
    try:
        url = server.url.replace("127.0.0.1", "localhost")
        server.scripts += [closing_answer(b"a"), closing_answer(b"b"), closing_answer(b"c")]
        assert fetch(url) == b"a"
        assert fetch(url) == b"b"
        assert lookups == ["localhost"]
        now = connect.time.monotonic()
        monkeypatch.setattr(connect.time, "monotonic", lambda: now + connect.CACHE_SECONDS + 1)
        assert fetch(url) == b"c"
        assert lookups == ["localhost", "localhost"]
    finally:
        server.close()


def test_a_refused_address_is_forgotten_and_reported_as_unreachable(lookups):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe closes
    url = f"http://localhost:{port}/v1/chat/completions"
    for _ in range(2):
        with pytest.raises(UpstreamUnreachable):
            send(url, {}, b"{}", connect_timeout=2, idle_timeout=5)
    assert lookups == ["localhost", "localhost"]  # the refused answer was not kept


def test_an_unknown_name_is_unreachable(lookups):
    with pytest.raises(UpstreamUnreachable):
        send("http://no-such-host.invalid/v1/chat/completions", {}, b"{}", connect_timeout=2, idle_timeout=5)


def test_a_connect_timeout_is_a_timeout(monkeypatch):
    def slow_connect(self, address):
        raise TimeoutError("timed out")

    monkeypatch.setattr(connect.socket.socket, "connect", slow_connect)
    with pytest.raises(UpstreamTimeout):
        send("http://127.0.0.1:9/v1/chat/completions", {}, b"{}", connect_timeout=0.2, idle_timeout=5)


def test_the_relay_pools_use_these_connections():
    pool = upstream._pool("")
    assert pool.connection_from_url("http://127.0.0.1:1/").ConnectionCls is connect.Connection
    assert pool.connection_from_url("https://127.0.0.1:1/").ConnectionCls is connect.TLSConnection
