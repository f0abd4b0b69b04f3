"""relay/plain_http.py: POSTs to http:// upstreams without urllib3, through the real `upstream.send`.

What goes on the wire is compared with what urllib3 sends for the same call; answers are played byte by byte
by a raw loopback server, so every way a head can arrive or be wrong is covered; connections are reused
only when that is safe. A relayed answer that breaks off mid-body is a channel failure that moves on.
"""

import os
import socket
import time

import pytest
import urllib3
from urllib3.exceptions import SSLError

from oneapi.extensions import db
from oneapi.models import Log
from oneapi.models.log import LogType
from oneapi.relay import plain_http
from oneapi.relay.body_reader import BodyReader, read_body
from oneapi.relay.upstream import UpstreamResponse, UpstreamTimeout, UpstreamUnreachable, send
from tests.conftest import add_channel, add_token
from tests.test_body_reader import PieceServer, chunk, head, read_all, run_under_gevent
from tests.test_egress import make_certificate, server_tls
from tests.test_fault_matrix import money

HEADERS = {"Accept": "application/json", "Accept-Encoding": "identity", "Authorization": "Bearer sk-plain",
           "Content-Type": "application/json"}
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
OK = head(b"Content-Length: 2\r\n") + b"ok"


@pytest.fixture
def server():
    s = PieceServer()
    yield s
    s.close()


def call(url, headers=None, body=BODY, idle=5):
    response = send(url, HEADERS if headers is None else headers, body, connect_timeout=2, idle_timeout=idle)
    return response, read_body(response, 1 << 20)


def parsed(request_head):
    line, *fields = request_head.decode("latin-1").split("\r\n")
    return line, sorted((name.lower(), value) for name, value in (f.split(": ", 1) for f in fields))


# --- the request -----------------------------------------------------------------------------------


def test_the_request_is_what_urllib3_sends(server):
    server.scripts += [[OK], [OK]]
    url = server.url + "?api-version=2024-10-21"
    response, data = call(url)
    assert isinstance(response, plain_http.Answer) and data == b"ok"
    pool = urllib3.PoolManager(retries=False)
    try:
        raw = pool.urlopen("POST", url, body=BODY, headers=HEADERS, retries=False)
        assert raw.data == b"ok"
    finally:
        pool.clear()
    ours, theirs = (parsed(h) for h in server.heads)
    assert ours == theirs
    assert ours[0] == "POST /v1/chat/completions?api-version=2024-10-21 HTTP/1.1"
    assert ("host", f"127.0.0.1:{server.sock.getsockname()[1]}") in ours[1]
    assert ("content-length", str(len(BODY))) in ours[1]


def test_defaults_only_where_the_adaptor_set_nothing(server):
    server.scripts += [[OK], [OK]]
    call(server.url, headers={})
    call(server.url, headers={"user-agent": "mine/1", "accept-encoding": "gzip"})
    bare, own = (dict(parsed(h)[1]) for h in server.heads)
    assert bare["accept-encoding"] == "identity" and bare["user-agent"].startswith("python-urllib3/")
    assert own["accept-encoding"] == "gzip" and own["user-agent"] == "mine/1"


def test_a_large_body_arrives_whole(server):
    body = b"x" * (3 * 1024 * 1024)
    server.scripts.append([OK])
    assert call(server.url, body=body)[1] == b"ok"
    assert dict(parsed(server.heads[0])[1])["content-length"] == str(len(body))


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8080", (False, "127.0.0.1", 8080, "/", "127.0.0.1:8080")),
    ("http://Example.COM/v1?x=1#frag", (False, "example.com", 80, "/v1?x=1", "example.com")),
    ("HTTP://example.com:80/a%20b", (False, "example.com", 80, "/a%20b", "example.com")),
    ("http://[::1]:9000/v1/chat", (False, "::1", 9000, "/v1/chat", "[::1]:9000")),
    ("http://example.com?q=1", (False, "example.com", 80, "/?q=1", "example.com")),
    ("https://api.openai.com/v1/chat/completions", (True, "api.openai.com", 443, "/v1/chat/completions",
                                                    "api.openai.com")),
    ("https://example.com:443/v1", (True, "example.com", 443, "/v1", "example.com")),
    ("https://example.com:8443/v1", (True, "example.com", 8443, "/v1", "example.com:8443")),
])
def test_urls_it_sends_itself(url, expected):
    assert plain_http._split(url) == expected


@pytest.mark.parametrize("url", [
    "ftp://127.0.0.1/v1",
    "http://user:secret@127.0.0.1/v1",  # user info
    "http://127.0.0.1/a b",  # needs encoding
    "http://127.0.0.1/v1/ünï",
    "http://127.0.0.1/v1/../admin",  # dot segments: urllib3 removes them
    "http://bücher.example/v1",  # IDNA
    "http://127.0.0.1:99999/v1",
    "http://127.0.0.1:8a/v1",
    "http:///v1",
    "http://[::1/v1",
])
def test_urls_it_leaves_to_urllib3(url):
    assert plain_http.post(url, HEADERS, BODY, 1, 1) is None


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer sk-a\r\nX-Injected: yes"},
    {"Authorization": "Bearer sk-a\nX-Injected: yes"},
    {"Bad Name": "x"},
    {"X-Null": "a\0b"},
    {"Host": "elsewhere.example"},
    {"Content-Length": "5"},
    {"Transfer-Encoding": "chunked"},
    {"X-Number": 5},
    {"Authorization": "Bearer 鍵"},  # not Latin-1: http.client refuses it as well
])
def test_headers_it_leaves_to_urllib3(headers):
    assert plain_http.post("http://127.0.0.1:9/v1", headers, BODY, 1, 1) is None


@pytest.mark.parametrize("key", ["sk-a\r\nX-Injected: yes", "sk-鍵"])
def test_a_key_no_header_can_carry_never_reaches_the_upstream(server, key):
    """A channel key with a line break or beyond Latin-1: the call fails as unreachable (urllib3 refuses it
    too) and the upstream never sees a request, let alone an injected header."""
    with pytest.raises(UpstreamUnreachable):
        send(server.url, {"Authorization": f"Bearer {key}"}, BODY, connect_timeout=2, idle_timeout=2)
    assert server.heads == []


# --- the answer's head -----------------------------------------------------------------------------


def test_headers_are_case_insensitive_and_repeats_are_joined(server):
    server.scripts.append([b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nX-Many: a\r\nx-many: b\r\n"
                           b"X-Folded: one\r\n  two\r\nContent-Length: 2\r\n\r\nok"])
    response, data = call(server.url)
    assert response.status_code == 200 and data == b"ok"
    assert response.headers.get("Content-Type") == "application/json"
    assert response.headers["X-MANY"] == "a, b" and "x-folded" in response.headers
    assert response.headers.get("X-Folded") == "one two" and response.headers.get("missing", "d") == "d"


def test_a_head_arriving_byte_by_byte_with_bare_line_feeds(server):
    wire = b"HTTP/1.1 201 Created\nContent-Type: text/plain\nContent-Length: 5\n\nhello"
    pieces = []
    for byte in wire[:60]:
        pieces += [bytes([byte]), 0.001]
    server.scripts.append(pieces + [wire[60:]])
    response, data = call(server.url)
    assert (response.status_code, data) == (201, b"hello")
    assert response.headers.get("content-type") == "text/plain"


def test_interim_answers_are_skipped(server):
    server.scripts.append([b"HTTP/1.1 100 Continue\r\n\r\n", 0.01,
                           b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + OK])
    response, data = call(server.url)
    assert (response.status_code, data) == (200, b"ok")
    assert "link" not in response.headers


def test_no_body_after_204_and_the_connection_is_kept(server):
    server.scripts += [[b"HTTP/1.1 204 No Content\r\n\r\n"], [OK]]
    assert call(server.url)[1] == b""
    assert call(server.url)[1] == b"ok"
    assert server.connections == 1


@pytest.mark.parametrize("wire, reason", [
    (b"HTTP/2 200 OK\r\n\r\n", "not HTTP/1.x"),
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not HTTP/1.x"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "not HTTP/1.x"),
    (b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", "malformed header"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header"),
    (b"HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\n\r\n", "bare CR"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n", "too many"),
    (b"HTTP/1.1 200 OK\r\nX-Long: " + b"v" * 70000, "too long"),
    (b"HTTP/1.1 200 OK\r\nX-Half: ", "middle of its headers"),
    (b"", "before answering"),
])
def test_heads_that_are_not_http_are_unreachable(server, wire, reason):
    server.scripts.append([wire, None])
    with pytest.raises(plain_http.ProtocolError, match=reason):
        plain_http.post(server.url, HEADERS, BODY, 2, 2)
    server.scripts.append([wire, None])
    with pytest.raises(UpstreamUnreachable):
        call(server.url)


def test_silence_before_the_head_is_a_timeout(server):
    server.scripts.append([2.0, OK])
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        call(server.url, idle=0.3)
    assert time.monotonic() - started < 1.5


def test_a_refused_connection_is_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UpstreamUnreachable):
        call(f"http://127.0.0.1:{port}/v1/chat/completions")


# --- connections -----------------------------------------------------------------------------------


def test_keep_alive_answers_share_one_connection(server):
    server.scripts += [[OK], [head(b"Transfer-Encoding: chunked\r\n") + chunk(b"hi") + b"0\r\n\r\n"], [OK]]
    assert [call(server.url)[1] for _ in range(3)] == [b"ok", b"hi", b"ok"]
    assert server.connections == 1


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",  # bytes after the body
    # a Content-Length beside chunked framing: the body is the chunks, the connection is not trusted again
    b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
])
def test_answers_whose_connection_is_not_reused(server, answer):
    server.scripts += [[answer], [OK]]
    assert call(server.url)[1] == b"ok"
    assert call(server.url)[1] == b"ok"
    assert server.connections == 2


def test_a_body_delimited_by_the_close(server):
    server.scripts.append([b"HTTP/1.1 200 OK\r\n\r\nall of ", 0.01, b"it", None])
    assert call(server.url)[1] == b"all of it"


def test_an_idle_connection_the_upstream_closed_is_not_used(server):
    server.scripts += [[OK, 0.05, None], [OK]]  # answers, then closes the idle connection
    assert call(server.url)[1] == b"ok"
    time.sleep(0.2)
    assert call(server.url)[1] == b"ok"  # a fresh connection, no error
    assert server.connections == 2


def test_an_unread_body_closes_its_connection(server):
    server.scripts += [[head(b"Content-Length: 10\r\n") + b"01234", 0.3, b"56789"], [OK]]
    response = send(server.url, HEADERS, BODY, connect_timeout=2, idle_timeout=2)
    response.close()
    assert call(server.url)[1] == b"ok"
    assert server.connections == 2


def test_a_forked_process_never_uses_the_parents_connections(server, monkeypatch):
    server.scripts += [[OK], [OK]]
    call(server.url)
    assert sum(len(v) for v in plain_http._state["idle"].values()) >= 1
    child = os.getpid() + 1
    monkeypatch.setattr(plain_http.os, "getpid", lambda: child)
    call(server.url)
    assert server.connections == 2


def test_only_plain_http_without_a_proxy_skips_urllib3(server):
    server.scripts += [[OK], [OK]]
    assert isinstance(call(server.url)[0], plain_http.Answer)
    proxied = send(server.url, HEADERS, BODY, connect_timeout=2, idle_timeout=2, proxy=server.url.split("/v1")[0])
    assert isinstance(proxied, UpstreamResponse)  # the proxy (here the server itself) gets an absolute URL
    assert read_body(proxied, 100) == b"ok"
    assert server.heads[1].startswith(b"POST http://127.0.0.1:")


def test_the_same_under_gevent_as_deployed():
    """gevent's sockets (plain and TLS) wrap a real one: the idle check peeks at that without waiting, and
    nothing blocks the loop (the servers here are greenlets too)."""
    run_under_gevent("tests.test_plain_http", "https_round_trips", [
        "test_keep_alive_answers_share_one_connection", "test_an_idle_connection_the_upstream_closed_is_not_used",
        "test_a_head_arriving_byte_by_byte_with_bare_line_feeds", "test_silence_before_the_head_is_a_timeout",
        "test_an_unread_body_closes_its_connection"])


# --- TLS: urllib3's defaults, without urllib3 --------------------------------------------------------


def tls_server(folder, names):
    """A TLS PieceServer with a certificate for `names` from a new CA; returns (server, CA file)."""
    ca_file, cert_file, key_file = make_certificate(folder, names)
    return PieceServer(tls=server_tls(cert_file, key_file)), ca_file


def trusting(ca_file):
    """The process trusts `ca_file` (as SSL_CERT_FILE does for a deployment) from the next TLS context on."""
    os.environ["SSL_CERT_FILE"] = ca_file
    plain_http._state["tls"] = None


@pytest.fixture
def trust(monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", os.devnull)  # restored afterwards, with the context made before
    monkeypatch.setitem(plain_http._state, "tls", None)
    return trusting


def https_round_trips(folder):
    """Two calls over TLS share one connection; the request is HTTP/1.1 with the name and port as Host."""
    server, ca_file = tls_server(folder, ["localhost", "127.0.0.1"])
    trusting(ca_file)
    try:
        server.scripts += [[OK], [head(b"Transfer-Encoding: chunked\r\n"), 0.01, chunk(b"hi") + b"0\r\n\r\n"]]
        url = server.url.replace("127.0.0.1", "localhost")
        first, data = call(url)
        assert isinstance(first, plain_http.Answer) and data == b"ok"
        assert call(url)[1] == b"hi"
        assert server.connections == 1
        assert dict(parsed(server.heads[0])[1])["host"] == f"localhost:{server.sock.getsockname()[1]}"
    finally:
        server.close()


def test_https_round_trips(tmp_path, trust):
    https_round_trips(tmp_path)


def urllib3_outcome(url):
    pool = urllib3.PoolManager(retries=False)  # the relay's own urllib3 pools check certificates this way
    try:
        return pool.urlopen("POST", url, body=BODY, headers=HEADERS, retries=False).data
    except SSLError:
        return "refused"
    finally:
        pool.clear()


def plain_outcome(url):
    try:
        return call(url)[1]
    except UpstreamUnreachable:
        return "refused"


@pytest.mark.parametrize("names, host, trusted, expected", [
    (["127.0.0.1"], "127.0.0.1", True, b"ok"),  # an IP address in the certificate
    (["localhost"], "localhost", True, b"ok"),
    (["other.example"], "localhost", True, "refused"),  # a certificate for another name
    (["localhost"], "127.0.0.1", True, "refused"),  # a name's certificate does not cover its address
    (["localhost"], "localhost", False, "refused"),  # a CA nobody trusts
])
def test_certificates_are_checked_as_urllib3_checks_them(tmp_path, trust, names, host, trusted, expected):
    server, ca_file = tls_server(tmp_path, names)
    try:
        if trusted:
            trust(ca_file)
        url = server.url.replace("127.0.0.1", host)
        server.scripts += [[OK], [OK]]
        assert plain_outcome(url) == expected
        assert urllib3_outcome(url) == expected
        if expected == "refused":
            assert server.heads == []  # no request, no key, ever went to an unchecked server
    finally:
        server.close()


def test_an_idle_tls_connection_the_upstream_closed_is_not_used(tmp_path, trust):
    server, ca_file = tls_server(tmp_path, ["127.0.0.1"])
    trust(ca_file)
    try:
        server.scripts += [[OK, 0.05, None], [OK]]
        assert call(server.url)[1] == b"ok"
        time.sleep(0.2)
        assert call(server.url)[1] == b"ok"
        assert server.connections == 2
    finally:
        server.close()


# --- through the gateway: an answer that breaks off before the client saw anything ------------------


def base_url(server):
    return f"http://127.0.0.1:{server.sock.getsockname()[1]}"


def relay(client, key):
    return client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user",
                       "content": "Hi"}]}, headers={"Authorization": f"Bearer {key}"})


def consumes(app):
    with app.app_context():
        rows = db.session.scalars(db.select(Log).where(Log.type == LogType.CONSUME)).all()
        return [(row.channel_id, row.quota > 0) for row in rows]


@pytest.mark.parametrize("script, status, code", [
    ([head(b"Content-Length: 100\r\n") + b'{"id":"cut', None], 502, "bad_upstream_response"),
    ([head(b"Content-Length: 100\r\n") + b'{"id":"slow', 3.0], 504, "upstream_timeout"),
])
def test_a_body_cut_or_stalled_is_a_channel_failure(app, root, server, script, status, code):
    app.config.update(RELAY_IDLE_TIMEOUT=0.4)
    root.put("/api/option/", json={"key": "RetryTimes", "value": "0"})
    add_channel(root, base_url(server), name="cut")
    key = add_token(root, unlimited_quota=False, remain_quota=500_000)["key"]
    server.scripts.append(script)
    before = money(app)
    answer = relay(root, key)
    assert answer.status_code == status, answer.data
    assert answer.get_json()["error"]["code"] == code
    assert money(app) == before  # refunded in full: no charge, no consume row, no reservation left


def test_a_cut_body_moves_to_the_next_channel_and_bills_once(app, root, server, upstream):
    root.put("/api/option/", json={"key": "RetryTimes", "value": "1"})
    add_channel(root, base_url(server), name="cut", priority=10)
    (good,) = add_channel(root, upstream.url, name="good", priority=0)
    key = add_token(root)["key"]
    server.scripts.append([head(b"Content-Length: 100\r\n") + b'{"id":"cut', None])
    answer = relay(root, key)
    assert answer.status_code == 200, answer.data
    assert answer.get_json()["choices"][0]["message"]["content"] == "Hello from the mock upstream."
    assert len(server.heads) == 1 and consumes(app) == [(good, True)]  # tried first, billed nothing


def test_a_stream_body_read_through_the_answer(server):
    """BodyReader reads a plain_http answer's first bytes from what came with the head."""
    server.scripts.append([head(b"Transfer-Encoding: chunked\r\n") + chunk(b"data: 1\n\n"), 0.05,
                           chunk(b"data: 2\n\n") + b"0\r\n\r\n"])
    response = send(server.url, HEADERS, BODY, connect_timeout=2, idle_timeout=2)
    body = BodyReader(response)
    assert read_all(body) == b"data: 1\n\ndata: 2\n\n"
    body.close()
