"""POSTs to upstreams over HTTP/1.1 (plain or TLS), without urllib3 and http.client.

Through urllib3 and http.client a relayed call cost 0.4-0.5 ms of CPU on loopback: the pool's queue,
Timeout objects, per-header checks, the `email` header parser and two answer objects. Here it is one
`sendall` of the request, one `recv` for the answer's head in the common case, and a split of that head:
0.11-0.15 ms with the body read, plain or TLS (docs/performance.md). The body is read by
`body_reader.BodyReader`, as for urllib3's answers.

Only what this does exactly as urllib3 would comes here: an `http://` or `https://` URL whose host is a name
or an IP address, without user info, whose path and query need no encoding, and headers free of CR, LF and
NUL. `post` returns None for anything else, and the caller uses urllib3 (which also does proxies).

TLS is urllib3's own default: its context (`create_urllib3_context`: TLS 1.2 or newer, certificate and host
name verified by the `ssl` module), the system's CA certificates (`SSL_CERT_FILE` and `SSL_CERT_DIR` are
honoured), ALPN `http/1.1`, SNI for names and none for IP addresses.

Connections are kept per (scheme, host, port) and per process; an idle connection the upstream closed is noticed
before it is used (one non-blocking peek), as urllib3 does. Errors are the socket's (`TimeoutError`, other
`OSError`) or `ProtocolError`; `upstream.send` turns them into the relay's.
"""

import _socket
import os
import re
import socket
import ssl

from urllib3 import __version__ as _urllib3_version
from urllib3.util.ssl_ import ALPN_PROTOCOLS, create_urllib3_context

from oneapi.relay import connect

MAX_HEAD = 65536  # the answer's status line and headers; http.client allows 65,536 per line
MAX_HEADERS = 100  # as http.client
MAX_IDLE = 512  # idle connections kept per upstream (urllib3's pools here keep as many)
_RECV = 65536
_USER_AGENT = f"python-urllib3/{_urllib3_version}"  # what urllib3 sends when the adaptor sets none

_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")
_PORT = re.compile(r"[0-9]{1,5}")
_TARGET = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")  # RFC 3986 characters: nothing to encode
_FIELD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token
_VALUE = re.compile(r"[^\r\n\0]*")
_NO_BODY = frozenset((101, 204, 304))

_state = {"pid": None, "idle": {}, "tls": None}


class ProtocolError(Exception):
    """The upstream's answer is not HTTP/1.x, or it closed the connection before answering."""


class Headers:
    """An answer's headers: case-insensitive lookups; a repeated header's values joined with ", "."""

    __slots__ = ("_fields",)

    def __init__(self, fields):
        self._fields = fields  # lower-case name: value

    def get(self, name, default=None):
        return self._fields.get(name.lower(), default)

    def __getitem__(self, name):
        return self._fields[name.lower()]

    def __contains__(self, name):
        return name.lower() in self._fields


class Answer:
    """An upstream's answer as the relay reads it (the same surface as `upstream.UpstreamResponse`): status,
    headers, and what `BodyReader` needs to read the body from the socket."""

    __slots__ = ("status_code", "headers", "idle_timeout", "sock", "chunked", "length", "will_close", "_key",
                 "_buffered")

    def __init__(self, status, headers, sock, buffered, key, idle_timeout, chunked, length, will_close):
        self.status_code = status
        self.headers = headers
        self.idle_timeout = idle_timeout
        self.sock = sock
        self.chunked = chunked
        self.length = length  # body bytes due by Content-Length; None: chunked, or until the upstream closes
        self.will_close = will_close
        self._key = key
        self._buffered = buffered  # body bytes that came with the head

    def first_read(self, size):
        """The body's first bytes: those that came with the head, or the socket's next."""
        if self._buffered:
            data, self._buffered = self._buffered, b""
            return data
        return self.sock.recv(size)

    def finish(self, clean):
        """Keep the connection for the next call when the body was read exactly to its end; else close it."""
        sock, self.sock = self.sock, None
        if sock is None:
            return
        if clean and not self.will_close and not self._buffered:
            _keep(self._key, sock)
        else:
            sock.close()

    def close(self):
        """The caller is done with the answer, body read or not: an unread body closes the connection."""
        self.finish(self.length == 0 and not self.chunked)


def post(url, headers, body, connect_timeout, idle_timeout):
    """Send the POST and return its Answer once the head has arrived, or None when `url` or `headers` are
    not for this client (see the module's docstring)."""
    target = _split(url)
    if target is None:
        return None
    tls, host, port, path, host_header = target
    head = _request_head(path, host_header, headers, len(body))
    if head is None:
        return None
    key = (tls, host, port)
    sock = _idle_connection(key)
    if sock is None:
        sock = _connect(tls, host, port, connect_timeout)
    try:
        sock.settimeout(idle_timeout or None)
        sock.sendall(head + body if len(body) < _RECV else head)
        if len(body) >= _RECV:
            sock.sendall(body)
        return _read_answer(sock, key, idle_timeout)
    except BaseException:
        sock.close()
        raise


def _connect(tls, host, port, connect_timeout):
    sock = connect.create_connection(host, port, connect_timeout or None,
                                     socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))
    if not tls:
        return sock
    try:  # the handshake is bounded by the connect timeout, as in urllib3
        return _tls_context().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def _tls_context():
    context = _state["tls"]
    if context is None:  # made at the first TLS call: after gevent's patching, with the environment of then
        context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
        context.load_default_certs()
        context.set_alpn_protocols(ALPN_PROTOCOLS)
        _state["tls"] = context
    return context


def _split(url):
    """(TLS?, host, port, request target, Host header) of an http:// or https:// URL, or None."""
    scheme = url[:8].lower()
    if scheme.startswith("http://"):
        tls, rest, default_port = False, url[7:], 80
    elif scheme == "https://":
        tls, rest, default_port = True, url[8:], 443
    else:
        return None
    cut = len(rest)
    for mark in "/?#":
        at = rest.find(mark)
        if 0 <= at < cut:
            cut = at
    authority, path = rest[:cut], rest[cut:].split("#", 1)[0]
    if not path.startswith("/"):
        path = "/" + path
    host, port = authority, default_port
    if authority.startswith("["):
        end = authority.find("]")
        host, after = authority[: end + 1], authority[end + 1:]
        if after and after[:1] != ":":
            return None
        port_text = after[1:]
    else:
        host, _, port_text = authority.partition(":")
    if port_text:
        if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    if not host or not _HOST.fullmatch(host) or not _TARGET.fullmatch(path) or "/." in path:
        return None  # "/." may be a dot segment, which urllib3 removes
    host_header = host.lower() if port == default_port else f"{host.lower()}:{port}"
    return tls, host.strip("[]").lower(), port, path, host_header


def _request_head(path, host_header, headers, length):
    lines = [f"POST {path} HTTP/1.1\r\n"]
    names = set()
    for name, value in headers.items():
        if not isinstance(value, str) or not _FIELD.fullmatch(name) or not _VALUE.fullmatch(value):
            return None
        names.add(name.lower())
        lines.append(f"{name}: {value}\r\n")
    if names & {"host", "content-length", "transfer-encoding", "connection"}:
        return None  # framing the adaptor chose: urllib3 knows what to do with it
    lines.insert(1, f"Host: {host_header}\r\n")
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: identity\r\n")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {_USER_AGENT}\r\n")
    lines.append(f"Content-Length: {length}\r\n\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError:  # http.client refuses such a value too: urllib3 gives the error
        return None


def _read_answer(sock, key, idle_timeout):
    buf = b""
    while True:
        data = sock.recv(_RECV)
        if not data:
            raise ProtocolError("the upstream closed the connection before answering" if not buf
                                else "the upstream closed the connection in the middle of its headers")
        buf += data
        while True:  # interim answers (100 Continue, 103 Early Hints) come before the real one
            end, skip = _head_end(buf)
            if end < 0:
                break
            answer = _parse(buf[:end], buf[end + skip:], sock, key, idle_timeout)
            if answer is not None:
                return answer
            buf = buf[end + skip:]
        if len(buf) > MAX_HEAD:
            raise ProtocolError("the upstream's headers are too long")


def _head_end(buf):
    """Where the head ends (before the newline of its last line) and how long the empty line after it is;
    lines may end with CRLF or a bare LF, as http.client accepts."""
    crlf, lf = buf.find(b"\n\r\n"), buf.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 3
    return lf, 2


def _parse(head, rest, sock, key, idle_timeout):
    text = head.decode("latin-1").replace("\r\n", "\n").removesuffix("\r")
    if "\r" in text:
        raise ProtocolError("the upstream sent a bare CR in its headers")
    lines = text.split("\n")
    version, _, status_reason = lines[0].partition(" ")
    status_text = status_reason[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not status_text.isdigit() or status_reason[3:4] not in ("", " "):
        raise ProtocolError("the upstream's answer is not HTTP/1.x")
    status = int(status_text)
    if 100 <= status < 200 and status != 101:
        return None
    if len(lines) > MAX_HEADERS + 1:
        raise ProtocolError("the upstream's answer has too many headers")
    fields, last = {}, None
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and last is not None:  # an obsolete folded line continues the last header
            fields[last] = f"{fields[last]} {line.strip()}"
            continue
        name, colon, value = line.partition(":")
        if not colon or not _FIELD.fullmatch(name):
            raise ProtocolError("the upstream sent a malformed header line")
        last = name.lower()
        value = value.strip(" \t")
        fields[last] = f"{fields[last]}, {value}" if last in fields else value
    return _answer(status, version, fields, rest, sock, key, idle_timeout)


def _answer(status, version, fields, rest, sock, key, idle_timeout):
    connection = fields.get("connection", "").lower()
    will_close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
    coding = fields.get("transfer-encoding")
    chunked, length = False, None
    if status in _NO_BODY:
        length = 0
    elif coding is not None:
        chunked = coding.rsplit(",", 1)[-1].strip().lower() == "chunked"
        # a Content-Length beside a Transfer-Encoding is ignored, and the connection not reused after it
        will_close = will_close or "content-length" in fields or not chunked
    elif "content-length" in fields:
        values = {v.strip() for v in fields["content-length"].split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise ProtocolError("the upstream sent an invalid Content-Length")
        length = int(values.pop())
    else:
        will_close = True  # the body ends when the upstream closes the connection
    return Answer(status, Headers(fields), sock, rest, key, idle_timeout, chunked, length, will_close)


def _fresh():
    if _state["pid"] != os.getpid():  # after a fork, never share sockets with the parent
        _state.update(pid=os.getpid(), idle={}, tls=None)
    return _state["idle"]


def _idle_connection(key):
    idle = _fresh().get(key)
    while idle:
        sock = idle.pop()
        if _usable(sock):
            return sock
        sock.close()
    return None


def _usable(sock):
    """An idle connection is usable while the upstream has neither closed it nor sent anything on it."""
    raw = getattr(sock, "_sock", None)  # gevent's socket (plain or TLS) wraps a real one that never waits
    if raw is None:
        raw = sock
        sock.settimeout(0)  # the caller sets the call's timeout afterwards
    try:
        # the TCP bytes, under any TLS: closed (b"") or something unasked for; either way not usable
        _socket.socket.recv(raw, 1, socket.MSG_PEEK)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def _keep(key, sock):
    idle = _fresh().setdefault(key, [])
    if len(idle) < MAX_IDLE:
        idle.append(sock)
    else:
        sock.close()
