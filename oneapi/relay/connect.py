"""Opening connections to upstreams: the relay pools' urllib3 connection classes.

Under gevent every `getaddrinfo` goes to a thread pool, even for an address that needs no lookup: at a
burst of new streams (each a new upstream connection) handing those lookups to threads and back took a
fifth of the gateway's core (docs/performance.md). Here an IP address is used as it is, and a host name's
addresses are kept for CACHE_SECONDS; an address that refuses a connection is looked up afresh next time.
Everything else (timeouts, socket options, errors) is urllib3's.
"""

import _socket  # the C module: gevent patches `socket`, and a numeric lookup never blocks
import socket
import sys
import time

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

CACHE_SECONDS = 30.0
_CACHE_SIZE = 1024
_cache = {}  # (host, port, family): (expires, addresses)


def addresses(host, port):
    """getaddrinfo's answers for a TCP connection to host:port, from the cache while they are fresh."""
    family = allowed_gai_family()
    try:
        return _socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass  # a name: look it up
    key = (host, port, family)
    hit = _cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    found = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()
    _cache[key] = (time.monotonic() + CACHE_SECONDS, found)
    return found


def forget(host, port):
    for key in [k for k in _cache if k[:2] == (host, port)]:
        _cache.pop(key, None)


def create_connection(host, port, timeout, source_address=None, socket_options=None):
    """urllib3's create_connection, with the addresses from `addresses`."""
    host = host.strip("[]")
    error = None
    for family, kind, proto, _name, address in addresses(host, port):
        sock = None
        try:
            sock = socket.socket(family, kind, proto)
            for option in socket_options or ():
                sock.setsockopt(*option)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(address)
            return sock
        except OSError as failed:
            error = failed
            if sock is not None:
                sock.close()
    forget(host, port)
    raise error if error is not None else OSError("getaddrinfo returned an empty list")


class _Dialing:
    def _new_conn(self):
        try:
            sock = create_connection(self._dns_host, self.port, self.timeout, self.source_address, self.socket_options)
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e
        except TimeoutError as e:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from e
        except OSError as e:
            raise NewConnectionError(self, f"Failed to establish a new connection: {e}") from e
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class Connection(_Dialing, HTTPConnection):
    pass


class TLSConnection(_Dialing, HTTPSConnection):
    pass


class Pool(HTTPConnectionPool):
    ConnectionCls = Connection


class TLSPool(HTTPSConnectionPool):
    ConnectionCls = TLSConnection


POOL_CLASSES = {"http": Pool, "https": TLSPool}
