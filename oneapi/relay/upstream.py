"""Outbound HTTP for the relay: one urllib3 connection pool per worker process (and per proxy), inert
between requests: no environment proxies, no .netrc, no cookies carried from one answer to another.

The relay path talks to urllib3 directly rather than through requests: requests' per-call session
merging and preparation cost about a millisecond of CPU per request, a third of the gateway's whole
budget (docs/performance.md). Balance queries and other slow paths keep using `session()`.
"""

import os
from http.cookiejar import DefaultCookiePolicy

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from oneapi.relay import connect

_POOL_ARGS = {"num_pools": 64, "maxsize": 512, "block": False, "retries": False}
_state = {"pid": None, "pools": {}, "session": None}


class UpstreamTimeout(Exception):
    pass


class UpstreamUnreachable(Exception):
    pass


class UpstreamResponse:
    """What the relay needs of an answer: status, headers, the raw body stream (read1), close."""

    __slots__ = ("raw",)

    def __init__(self, raw):
        self.raw = raw

    @property
    def status_code(self):
        return self.raw.status

    @property
    def headers(self):
        return self.raw.headers

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
    `idle_timeout` bounds every wait for bytes, the first one included; 0 means no limit."""
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
    return UpstreamResponse(raw)


def read_body(response, limit):
    """The whole body, or None when it is larger than `limit` bytes."""
    chunks, size = [], 0
    while True:
        chunk = response.raw.read1(65536, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
