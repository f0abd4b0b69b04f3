"""One pooled HTTP client per worker process for every upstream call, inert between requests:
no environment proxies, no .netrc, no cookies carried from one channel's answer to another request."""

import os
from http.cookiejar import DefaultCookiePolicy

import requests
from requests.adapters import HTTPAdapter

_session = None
_pid = None


def session():
    global _session, _pid
    if _session is None or _pid != os.getpid():
        s = requests.Session()
        s.trust_env = False
        s.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        adapter = HTTPAdapter(pool_connections=64, pool_maxsize=512, max_retries=0)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        _session, _pid = s, os.getpid()
    return _session


def send(url, headers, body, *, connect_timeout, idle_timeout, proxy=""):
    """POST and return as soon as the upstream's headers arrive (the body is read by the caller)."""
    return session().post(
        url, data=body, headers=headers, stream=True, allow_redirects=False,
        timeout=(connect_timeout, idle_timeout or None),
        proxies={"http": proxy, "https": proxy} if proxy else None,
    )


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
