"""A stream's events written straight to the client's socket, under gunicorn.

Through WSGI, every event a stream yields passes werkzeug's two response iterators, gunicorn's
`Response.write` (its checks and byte counting), gunicorn's chunk framing, and gevent's `sendall`, which
asks the kernel for the send-buffer size on every call. At 2,000 streams that is 20,000 events a second,
and those layers were a large share of the gateway's core (docs/performance.md).

Here the first event still goes through gunicorn, which sends the headers with it. Every later event is
framed as an HTTP/1.1 chunk and sent by us on the same socket, and when the stream ends gunicorn writes
the last chunk and keeps or closes the connection as always. The client receives the same bytes.

Used only where those are exactly the bytes gunicorn would have written:
- gunicorn speaking HTTP to the client (`gunicorn.conf.py` says so in each worker; uWSGI framing differs);
- an HTTP/1.1 request (gunicorn answers HTTP/1.0 without chunks);
- a plain gevent socket (when gunicorn terminates TLS itself, the bytes must go through its TLS socket).
Anywhere else (`python app.py`, the test client, another server) events go through WSGI as before.
"""

import os

from gevent import socket as gevent_socket

ENV = "ONEAPI_GUNICORN_HTTP"  # set to "1" by gunicorn.conf.py's post_fork, in each worker


def writer_for(environ):
    """A callable that sends one event as a chunk, or None when events must go through the server."""
    if os.environ.get(ENV) != "1" or environ.get("SERVER_PROTOCOL") != "HTTP/1.1":
        return None
    sock = environ.get("gunicorn.socket")
    if type(sock) is not gevent_socket.socket:  # noqa: E721 (a subclass, such as gevent's TLS socket, is not ours to bypass)
        return None
    raw = getattr(sock, "_sock", None)  # the non-blocking OS socket under gevent's
    if raw is None:
        return None
    return ChunkWriter(sock, raw)


class ChunkWriter:
    def __init__(self, sock, raw):
        self._sock, self._raw = sock, raw

    def __call__(self, data):
        if not data:  # an empty chunk would end the body
            return
        frame = b"%X\r\n%b\r\n" % (len(data), data)
        try:
            sent = self._raw.send(frame)
        except BlockingIOError:
            sent = 0
        if sent < len(frame):  # a slow client: gevent waits for room, within the socket's timeout
            self._sock.sendall(frame[sent:])
