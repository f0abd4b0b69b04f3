"""Outbound HTTP for the relay: one urllib3 connection pool per worker process (and per proxy), inert
between requests: no environment proxies, no .netrc, no cookies carried from one answer to another.

The relay path talks to urllib3 directly rather than through requests: requests' per-call session
merging and preparation cost about a millisecond of CPU per request, a third of the gateway's whole
budget (docs/performance.md). Without a proxy, upstream calls skip urllib3 too (`plain_http`, a third of
its CPU per call). Balance queries and other slow paths keep using `session()`.
"""

import os
from http.cookiejar import DefaultCookiePolicy

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from oneapi.relay import connect, plain_http

_POOL_ARGS = {"num_pools": 64, "maxsize": 512, "block": False, "retries": False}
_state = {"pid": None, "pools": {}, "session": None}


class UpstreamTimeout(Exception):
    pass


class UpstreamUnreachable(Exception):
    pass


class UpstreamResponse:
    """urllib3's answer with the surface the relay reads (shared with `plain_http.Answer`): status, headers,
    and what `BodyReader` needs to read the body from the socket itself."""

    __slots__ = ("raw", "idle_timeout")

    def __init__(self, raw, idle_timeout=0):
        self.raw = raw
        self.idle_timeout = idle_timeout

    @property
    def status_code(self):
        return self.raw.status

    @property
    def headers(self):
        return self.raw.headers

    @property
    def sock(self):
        """The answer's socket: the connection's, or, when http.client handed the socket to the answer
        (`Connection: close`), the one under the answer's file."""
        fp = getattr(self.raw._fp, "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
        if sock is None and self.raw.connection is not None:
            sock = self.raw.connection.sock
        return sock

    @property
    def chunked(self):
        return bool(getattr(self.raw._fp, "chunked", False))

    @property
    def length(self):
        return getattr(self.raw._fp, "length", None)  # body bytes due (Content-Length); None: chunked or until close

    def first_read(self, size):
        """The body's first bytes: http.client's buffer may already hold some (or a raw read when it is empty);
        afterwards the buffer is never read again."""
        fp = self.raw._fp.fp
        return fp.read1(size) if fp is not None else self.sock.recv(size)

    def finish(self, clean):
        """Give the connection back to the pool when the body was read exactly to its end, or close it."""
        try:
            if clean and not getattr(self.raw._fp, "will_close", True):
                self.raw._fp.close()  # http.client's side of this answer only; the socket stays with the pool
                self.raw.release_conn()
            else:
                self.raw.close()
        except (OSError, AttributeError):
            pass

    def close(self):
        self.raw.release_conn() if self.raw.isclosed() else self.raw.close()


def _fresh():
    if _state["pid"] != os.getpid():  # after a fork, never share sockets with the parent
        _state.update(pid=os.getpid(), pools={}, session=None)


def _pool(proxy):
    _fresh()
    pool = _state["pools"].get(proxy)
    if pool is None:
        pool = urllib3.ProxyManager(proxy, **_POOL_ARGS) if proxy else urllib3.PoolManager(**_POOL_ARGS)
        pool.pool_classes_by_scheme = connect.POOL_CLASSES  # addresses without a thread per lookup
        _state["pools"][proxy] = pool
    return pool


def session():
    """A requests session for the slow paths (balance queries)."""
    _fresh()
    if _state["session"] is None:
        s = requests.Session()
        s.trust_env = False
        s.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        adapter = HTTPAdapter(pool_connections=16, pool_maxsize=64, max_retries=0)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        _state["session"] = s
    return _state["session"]


def send(url, headers, body, *, connect_timeout, idle_timeout, proxy=""):
    """POST and return as soon as the upstream's headers arrive (the body is read by the caller).
    `idle_timeout` bounds every wait for bytes, the first one included; 0 means no limit. Calls without a
    proxy go through `plain_http`; proxied calls, and the rare URL or header it leaves, go through urllib3."""
    if not proxy:
        try:
            answer = plain_http.post(url, headers, body, connect_timeout, idle_timeout)
        except TimeoutError as error:  # connecting, sending or waiting for the head
            raise UpstreamTimeout(type(error).__name__) from None
        except (OSError, plain_http.ProtocolError) as error:  # refused, unresolvable, reset, not HTTP
            raise UpstreamUnreachable(type(error).__name__) from None
        if answer is not None:
            return answer
    timeout = urllib3.Timeout(connect=connect_timeout or None, read=idle_timeout or None)
    try:
        raw = _pool(proxy).urlopen("POST", url, body=body, headers=headers, preload_content=False, redirect=False,
                                   retries=False, timeout=timeout, decode_content=True)
    except NewConnectionError as error:  # refused, unresolvable: caught first, it subclasses a timeout error
        raise UpstreamUnreachable(type(error).__name__) from None
    except (TimeoutError, Urllib3Timeout) as error:
        raise UpstreamTimeout(type(error).__name__) from None
    except (HTTPError, OSError) as error:
        raise UpstreamUnreachable(type(error).__name__) from None
    except ValueError as error:  # http.client refusing a header (a line break, or not Latin-1, in a channel's key)
        raise UpstreamUnreachable(type(error).__name__) from None
    return UpstreamResponse(raw, idle_timeout)
