"""oneapi/relay/client_writer.py: when a stream may write to the client's socket itself, and what it writes.
Through gunicorn end to end: tests/test_relay_streaming.py (chunk framing, keep-alive, HTTP/1.0)."""

import gevent
import gevent.socket
import gevent.ssl
import gunicorn.util
import pytest

from oneapi.relay import client_writer


@pytest.fixture
def pair():
    a, b = gevent.socket.socketpair()
    yield a, b
    a.close()
    b.close()


def environ(sock, protocol="HTTP/1.1"):
    return {"SERVER_PROTOCOL": protocol, "gunicorn.socket": sock}


def test_only_under_gunicorns_http_on_a_plain_gevent_socket(pair, monkeypatch):
    sock = pair[0]
    monkeypatch.delenv(client_writer.ENV, raising=False)
    assert client_writer.writer_for(environ(sock)) is None  # not started by gunicorn.conf.py's post_fork
    monkeypatch.setenv(client_writer.ENV, "")
    assert client_writer.writer_for(environ(sock)) is None  # a worker speaking uWSGI or TLS
    monkeypatch.setenv(client_writer.ENV, "1")
    assert isinstance(client_writer.writer_for(environ(sock)), client_writer.ChunkWriter)
    assert client_writer.writer_for(environ(sock, "HTTP/1.0")) is None  # gunicorn does not chunk HTTP/1.0
    assert client_writer.writer_for({"SERVER_PROTOCOL": "HTTP/1.1"}) is None  # another server

    class Wrapped(gevent.socket.socket):  # as gevent's TLS socket is: the bytes must go through it
        pass

    assert issubclass(gevent.ssl.SSLSocket, gevent.socket.socket)
    wrapped = Wrapped(fileno=sock.dup().detach())
    try:
        assert client_writer.writer_for(environ(wrapped)) is None
    finally:
        wrapped.close()


def read_all(sock, size, pause=0.0):
    received = b""
    while len(received) < size:
        data = sock.recv(4096)
        if not data:
            break
        received += data
        if pause:
            gevent.sleep(pause)
    return received


def test_each_event_is_one_chunk_and_an_empty_one_is_never_sent(pair):
    a, b = pair
    write = client_writer.ChunkWriter(a, a._sock)
    write(b"data: {}\n\n")
    write(b"")  # an empty chunk would end the body
    write(b": keepalive\n\n")
    expected = b"A\r\ndata: {}\n\n\r\nD\r\n: keepalive\n\n\r\n"
    assert read_all(b, len(expected)) == expected


def test_a_slow_client_gets_every_byte_of_a_large_event(pair):
    """The OS buffer takes part of a 4 MB event; the rest waits (cooperatively) until the client reads."""
    a, b = pair
    a.setsockopt(gevent.socket.SOL_SOCKET, gevent.socket.SO_SNDBUF, 16384)
    event = bytes(range(256)) * (4 * 4096)
    frame = b"%X\r\n%b\r\n" % (len(event), event)
    reader = gevent.spawn(read_all, b, len(frame), 0.0005)
    with gevent.Timeout(30):
        client_writer.ChunkWriter(a, a._sock)(event)
        assert reader.get() == frame


def test_a_client_that_left_is_an_error_for_the_stream_to_see(pair):
    a, b = pair
    b.close()
    write = client_writer.ChunkWriter(a, a._sock)
    with pytest.raises(OSError):
        for _ in range(100):  # the first sends may still land in the buffer
            write(b"data: {}\n\n")


def test_gunicorn_conf_turns_it_on_only_for_plain_http_workers(monkeypatch):
    import os
    import runpy
    from types import SimpleNamespace

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    post_fork = runpy.run_path(os.path.join(here, "gunicorn.conf.py"))["post_fork"]
    monkeypatch.delenv(client_writer.ENV, raising=False)  # restored after the test
    monkeypatch.setattr(gunicorn.util, "http_date", gunicorn.util.http_date)  # restored too
    for protocol, is_ssl, expected in (("http", False, "1"), ("uwsgi", False, ""), ("http", True, "")):
        post_fork(SimpleNamespace(cfg=SimpleNamespace(protocol=protocol, is_ssl=is_ssl)), None)
        assert os.environ[client_writer.ENV] == expected, (protocol, is_ssl)


def test_gunicorn_conf_formats_the_date_header_once_a_second(monkeypatch):
    import email.utils
    import os
    import runpy
    import time
    from types import SimpleNamespace

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    conf = runpy.run_path(os.path.join(here, "gunicorn.conf.py"))
    real = gunicorn.util.http_date
    monkeypatch.setattr(gunicorn.util, "http_date", real)  # restored after the test
    conf["post_fork"](SimpleNamespace(cfg=SimpleNamespace(protocol="http", is_ssl=False)), None)
    patched = gunicorn.util.http_date
    assert patched is not real and conf["_per_second"](patched) is patched  # wrapped once, however often forked
    assert patched() == email.utils.formatdate(int(time.time()), usegmt=True) or patched() == real()

    formatted = []
    per_second = conf["_per_second"](lambda timestamp: formatted.append(timestamp) or real(timestamp))
    now = [1_764_900_000.1]
    monkeypatch.setattr(time, "time", lambda: now[0])
    first = per_second()
    now[0] = 1_764_900_000.9
    assert per_second() is first and formatted == [1_764_900_000]
    now[0] = 1_764_900_001.0
    assert per_second() == "Fri, 05 Dec 2025 02:00:01 GMT" != first and formatted == [1_764_900_000, 1_764_900_001]
    assert per_second(0) == "Thu, 01 Jan 1970 00:00:00 GMT"  # an explicit time is formatted as asked
