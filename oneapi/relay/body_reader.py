"""An upstream answer's body, read straight from its socket.

urllib3 or `plain_http` parses the status line and headers; the body is ours. `http.client` decodes a chunked body one
chunk at a time (a `readline` for the size, a read for the data, another for its CRLF), and an SSE
upstream sends one chunk per event: at thousands of concurrent streams those layers were a fifth of the
gateway's core (docs/performance.md). Here each `recv` is decoded in one pass, whatever it holds.

Reads wait at most `wait` seconds and return None when nothing came, so the caller can send keep-alive
comments without a second greenlet and a queue between it and the socket. The upstream's silence is
bounded separately: after `idle_timeout` seconds without a byte, `UpstreamTimeout`.

A body read to its end leaves the connection clean for the pool; anything else closes it.
"""

import time
import zlib

from oneapi.relay.upstream import UpstreamTimeout

_RECV = 65536
_SIZE_LINE_LIMIT = 4096  # a chunk-size line with extensions; longer is not HTTP
_TRAILER_LIMIT = 65536


class BrokenBody(Exception):
    """The body ended early or its framing is not HTTP."""


class BodyReader:
    """`response`: `upstream.UpstreamResponse` or `plain_http.Answer`. `idle_timeout`: seconds of upstream
    silence allowed (0: no limit; None: the response's own, given to `upstream.send`)."""

    def __init__(self, response, idle_timeout=None):
        self._response = response
        self._sock = response.sock
        idle = response.idle_timeout if idle_timeout is None else idle_timeout
        self._idle = idle or None
        self._last = time.monotonic()
        self._buffered = True  # the first read takes what came with the headers (or the socket's next bytes)
        self._chunked = response.chunked
        self._left = None if self._chunked else response.length  # body bytes still due; None: until close
        self._state = "size"  # chunked: size, data, crlf, trailer
        self._chunk_left = 0
        self._pending = b""  # chunked framing bytes not decoded yet
        self._ended = False
        self._clean = False  # ended exactly at the end of the body: the connection may be reused
        encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in ("gzip", "x-gzip", "deflate") else None

    @property
    def ended(self):
        return self._ended

    def read(self, wait=None):
        """Body bytes (decoded), b"" at the end of the body, or None when nothing came within `wait` seconds
        (None: no limit but the idle timeout)."""
        until = None if wait is None else time.monotonic() + wait
        while not self._ended:
            data = self._recv(None if until is None else until - time.monotonic())
            if data is None:
                return None
            out = self._decode(data)
            if out or self._ended:
                return out
        return b""

    def _recv(self, wait):
        timeout = wait
        if self._idle is not None:
            idle_left = self._idle - (time.monotonic() - self._last)
            timeout = idle_left if timeout is None else min(timeout, idle_left)
        if not self._chunked and self._left == 0:
            return b""
        if self._sock is None:
            raise BrokenBody("the connection is gone")
        try:
            # never 0: a non-blocking socket raises its own errors (and TLS others again) instead of a timeout
            self._sock.settimeout(None if timeout is None else max(timeout, 0.001))
            if self._buffered:
                self._buffered = False
                data = self._response.first_read(_RECV)
            else:
                data = self._sock.recv(_RECV)
        except TimeoutError:  # gevent raises the same on plain and TLS sockets
            if self._idle is not None and time.monotonic() - self._last >= self._idle:
                raise UpstreamTimeout("the upstream went silent") from None
            return None
        if data:
            self._last = time.monotonic()
        return data

    def _decode(self, data):
        if not self._chunked:
            if not data:
                if self._left:
                    raise BrokenBody("the upstream closed the connection before the end of the body")
                self._ended = True
                self._clean = self._left == 0  # an empty body (Content-Length: 0); not one delimited by the close
                return self._inflated(b"", final=True)
            if self._left is not None:
                extra = len(data) > self._left  # bytes after the body: the connection is not reused
                data = data[: self._left]
                self._left -= len(data)
                if self._left == 0:
                    self._ended, self._clean = True, not extra
            return self._inflated(data, final=self._ended)
        if not data:
            raise BrokenBody("the upstream closed the connection in the middle of a chunked body")
        return self._inflated(self._dechunk(data), final=self._ended)

    def _dechunk(self, data):
        buf = self._pending + data if self._pending else data
        out, at, size = [], 0, len(buf)
        while at < size:
            state = self._state
            if state == "data":
                take = min(self._chunk_left, size - at)
                out.append(buf[at: at + take])
                at += take
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._state = "crlf"
                continue
            end = buf.find(b"\n", at)
            if end < 0:
                if size - at > (_TRAILER_LIMIT if state == "trailer" else _SIZE_LINE_LIMIT):
                    raise BrokenBody("a chunk-size or trailer line is too long")
                break
            line = buf[at:end].rstrip(b"\r")
            at = end + 1
            if state == "crlf":
                if line:
                    raise BrokenBody("a chunk does not end with CRLF")
                self._state = "size"
            elif state == "size":
                try:
                    self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BrokenBody("a chunk size is not a hexadecimal number") from None
                if self._chunk_left < 0:
                    raise BrokenBody("a chunk size is negative")
                self._state = "data" if self._chunk_left else "trailer"
            elif not line:  # the empty line after the last chunk (and any trailers)
                self._ended = True
                self._clean = at == size  # bytes after the body: the connection is not reused
                self._pending = b""
                return b"".join(out)
        self._pending = buf[at:] if at < size else b""
        return b"".join(out)

    def _inflated(self, data, final):
        if self._inflate is None:
            return data
        try:
            out = self._inflate.decompress(data)
            return out + self._inflate.flush() if final else out
        except zlib.error:
            raise BrokenBody("the body is not the encoding its Content-Encoding names") from None

    def close(self):
        """Give the connection back to the pool when the body was read to its end, or close it."""
        self._response.finish(self._clean)


def read_body(response, limit):
    """The whole body (decoded), or None when it is larger than `limit` bytes. The connection goes back to
    the pool when the body was read to its end. Raises `BrokenBody` or `UpstreamTimeout` as `read` does."""
    body = BodyReader(response)
    chunks, size = [], 0
    try:
        while True:
            chunk = body.read()
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    finally:
        body.close()
