"""relay/body_reader.py: an upstream body decoded straight from the socket, through the real send() path.

A raw loopback server writes each answer in scripted pieces (with pauses), so chunk framing arrives split
at every awkward place: inside a size line, between a chunk and its CRLF, with several chunks in one read.
"""

import gzip
import pathlib
import socket
import subprocess
import sys
import threading
import time

import pytest
import urllib3

from oneapi.relay.body_reader import BodyReader, BrokenBody
from oneapi.relay.upstream import UpstreamResponse, UpstreamTimeout, send
from tests.test_egress import make_certificate, server_tls
from tests.test_relay_streaming import read_request


class PieceServer:
    """Answers each request on a connection with the next script: a list of bytes (sent) and floats (pauses).
    Keeps the connection open for the next request unless the script ends with None (close)."""

    def __init__(self, tls=None):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.tls = tls
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.sock.getsockname()[1]}/v1/chat/completions"
        self.scripts = []
        self.heads = []  # every request's head, in order
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.tls:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except OSError:
                    continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            pending = b""
            while True:
                request = read_request(conn, pending, self.heads)
                if request is None:
                    return
                pending = request[1]
                script = self.scripts.pop(0)
                try:
                    for piece in script:
                        if piece is None:
                            return
                        if isinstance(piece, float):
                            time.sleep(piece)
                        else:
                            conn.sendall(piece)
                except OSError:
                    return

    def close(self):
        self.sock.close()


@pytest.fixture
def server():
    s = PieceServer()
    yield s
    s.close()


def head(framing, extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + framing + extra + b"\r\n"


def chunk(data):
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def open_body(server, idle=0):
    response = send(server.url, {"Content-Type": "application/json"}, b"{}", connect_timeout=2, idle_timeout=5)
    return BodyReader(response, idle)


def read_all(body, wait=2.0):
    out = []
    while True:
        data = body.read(wait)
        assert data is not None, "nothing arrived within the wait"
        if not data:
            return b"".join(out)
        out.append(data)


EVENTS = [f"data: {{\"n\": {i}}}\n\n".encode() for i in range(6)]
WHOLE = b"".join(EVENTS)


def test_chunks_split_everywhere_are_decoded_in_order(server):
    wire = b"".join(chunk(e) for e in EVENTS) + b"0\r\n\r\n"
    cuts = [3, 1, 17, 2, 30, 5, 1, 1, 40]  # inside size lines, data, CRLFs and the last chunk
    pieces, at = [], 0
    for cut in cuts:
        pieces += [wire[at: at + cut], 0.01]
        at += cut
    pieces.append(wire[at:])
    server.scripts.append([head(b"Transfer-Encoding: chunked\r\n")] + pieces)
    body = open_body(server)
    assert read_all(body) == WHOLE
    assert body.ended


def test_many_chunks_in_one_read_and_chunk_extensions_and_trailers(server):
    wire = b"".join(chunk(e) for e in EVENTS).replace(b"\r\n", b";name=value\r\n", 1)
    server.scripts.append([head(b"Transfer-Encoding: chunked\r\n") + wire + b"0\r\nX-Trailer: yes\r\n\r\n"])
    assert read_all(open_body(server)) == WHOLE


def test_a_clean_end_gives_the_connection_back_to_the_pool(server):
    for _ in range(3):
        server.scripts.append([head(b"Transfer-Encoding: chunked\r\n"), 0.01, chunk(EVENTS[0]), b"0\r\n\r\n"])
    for _ in range(3):
        body = open_body(server)
        assert read_all(body) == EVENTS[0]
        body.close()
    assert server.connections == 1


def test_an_unfinished_body_closes_its_connection(server):
    server.scripts.append([head(b"Transfer-Encoding: chunked\r\n"), chunk(EVENTS[0]), 0.5, chunk(EVENTS[1])])
    server.scripts.append([head(b"Content-Length: 3\r\n"), b"abc"])
    body = open_body(server)
    assert body.read(2) == EVENTS[0]
    body.close()  # the client left: the rest of this answer must never be read as the next one's
    second = open_body(server)
    assert read_all(second) == b"abc"
    assert server.connections == 2


def test_content_length_body(server):
    server.scripts.append([head(f"Content-Length: {len(WHOLE)}\r\n".encode()), WHOLE[:7], 0.01, WHOLE[7:]])
    body = open_body(server)
    assert read_all(body) == WHOLE
    body.close()
    server.scripts.append([head(b"Content-Length: 2\r\n"), b"ok"])
    assert read_all(open_body(server)) == b"ok"
    assert server.connections == 1


def test_an_empty_body_keeps_its_connection(server):
    server.scripts += [[head(b"Content-Length: 0\r\n")], [head(b"Content-Length: 2\r\n"), b"ok"]]
    body = open_body(server)
    assert read_all(body) == b""
    body.close()
    assert read_all(open_body(server)) == b"ok"
    assert server.connections == 1


def test_close_delimited_body(server):
    server.scripts.append([head(b"Connection: close\r\n"), WHOLE[:10], 0.01, WHOLE[10:], None])
    assert read_all(open_body(server)) == WHOLE


def test_gzip_body(server):
    packed = gzip.compress(WHOLE)
    server.scripts.append([head(b"Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n"),
                           chunk(packed[:9]), 0.01, chunk(packed[9:]), b"0\r\n\r\n"])
    assert read_all(open_body(server)) == WHOLE


@pytest.mark.parametrize("wire, reason", [
    (b"zz\r\nhello\r\n", "hexadecimal"),
    (b"5\r\nhelloXX\r\n", "CRLF"),
    (b"5\r\nhel", "middle of a chunked body"),
    (b"1" * 5000, "too long"),
])
def test_broken_chunked_framing_is_an_error(server, wire, reason):
    server.scripts.append([head(b"Transfer-Encoding: chunked\r\n") + wire, None])
    body = open_body(server)
    with pytest.raises(BrokenBody, match=reason):
        read_all(body)
    body.close()


def test_a_short_content_length_body_is_an_error(server):
    server.scripts.append([head(b"Content-Length: 10\r\n"), b"abc", None])
    with pytest.raises(BrokenBody, match="before the end"):
        read_all(open_body(server))


def test_a_wait_that_ends_returns_none_and_the_body_goes_on(server):
    server.scripts.append([head(b"Transfer-Encoding: chunked\r\n"), 0.4, chunk(EVENTS[0]), b"0\r\n\r\n"])
    body = open_body(server)
    started = time.monotonic()
    assert body.read(0.1) is None
    assert 0.08 < time.monotonic() - started < 0.35
    assert read_all(body) == EVENTS[0]


def test_a_wait_spans_a_read_that_brings_only_framing(server):
    # the size line arrives first, its data 0.3 s later: a 0.1 s wait must not last the whole 0.3 s
    server.scripts.append([head(b"Transfer-Encoding: chunked\r\n"), b"5\r\n", 0.3, b"hello\r\n0\r\n\r\n"])
    body = open_body(server)
    started = time.monotonic()
    assert body.read(0.1) is None
    assert time.monotonic() - started < 0.25
    assert read_all(body) == b"hello"


def test_silence_longer_than_the_idle_timeout_raises(server):
    server.scripts.append([head(b"Transfer-Encoding: chunked\r\n"), chunk(EVENTS[0]), 2.0, b"0\r\n\r\n"])
    body = open_body(server, idle=0.3)
    assert body.read(1) == EVENTS[0]
    started = time.monotonic()
    assert body.read(0.1) is None  # a short wait is not the upstream's silence
    with pytest.raises(UpstreamTimeout):
        body.read(None)
    assert time.monotonic() - started < 0.8
    body.close()


def test_first_bytes_already_buffered_with_the_headers_are_not_lost(server):
    # headers and the whole body in one segment: http.client's buffer holds the body when send() returns
    server.scripts.append([head(b"Transfer-Encoding: chunked\r\n") + chunk(WHOLE) + b"0\r\n\r\n"])
    response = send(server.url, {}, b"{}", connect_timeout=2, idle_timeout=5)
    time.sleep(0.05)
    assert read_all(BodyReader(response)) == WHOLE


def test_over_tls_split_records_waits_and_reuse(tmp_path):
    ca_file, cert_file, key_file = make_certificate(tmp_path, ["127.0.0.1"])
    server = PieceServer(tls=server_tls(cert_file, key_file))
    pool = urllib3.PoolManager(ca_certs=ca_file, cert_reqs="CERT_REQUIRED", retries=False)
    try:
        wire = b"".join(chunk(e) for e in EVENTS) + b"0\r\n\r\n"
        server.scripts.append([head(b"Transfer-Encoding: chunked\r\n"), 0.3, wire[:11], 0.01, wire[11:50], 0.01,
                               wire[50:]])
        server.scripts.append([head(b"Transfer-Encoding: chunked\r\n") + chunk(b"again") + b"0\r\n\r\n"])
        for expected in (WHOLE, b"again"):
            raw = pool.urlopen("POST", server.url, body=b"{}", preload_content=False, retries=False)
            body = BodyReader(UpstreamResponse(raw))
            if expected == WHOLE:
                assert body.read(0.1) is None  # TLS: a wait ends with a timeout, not an error
            assert read_all(body) == expected
            body.close()
        assert server.connections == 1
    finally:
        pool.clear()
        server.close()


def run_under_gevent(module, first, tests):
    """In a child process patched by gevent, as the server's workers are: `module`'s function `first` with a
    fresh temporary folder, then each of `tests` with a fresh PieceServer (whose threads are greenlets there)."""
    script = f"""
from gevent import monkey; monkey.patch_all()
import importlib, pathlib, tempfile
from tests.test_body_reader import PieceServer
module = importlib.import_module({module!r})
getattr(module, {first!r})(pathlib.Path(tempfile.mkdtemp()))
for name in {list(tests)!r}:
    server = PieceServer()
    try:
        getattr(module, name)(server)
    finally:
        server.close()
print("ok")
"""
    root = pathlib.Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_same_under_gevent_as_deployed():
    """The server's workers are gevent's: its sockets (plain and TLS) must time out and decode alike."""
    run_under_gevent("tests.test_body_reader", "test_over_tls_split_records_waits_and_reuse", [
        "test_chunks_split_everywhere_are_decoded_in_order", "test_a_wait_spans_a_read_that_brings_only_framing",
        "test_silence_longer_than_the_idle_timeout_raises", "test_a_clean_end_gives_the_connection_back_to_the_pool"])
