"""The egress guard: the one way to send a request to a URL that someone other than the operator's own
configuration chose (webhooks, image and file URLs, alert endpoints) — DESIGN.md, security rules.

A URL is checked, then fetched like this:
- http or https only, no user:password@, a host made of hostname characters;
- the host is resolved once (numeric spellings such as 2130706433, 0177.0.0.1 or 0x7f000001 are read the
  way the C resolver reads them, so they cannot slip past as "names"), and every address it resolves to
  must be public: private, loopback, link-local, 0.0.0.0/8, CGNAT, benchmark, documentation, multicast,
  reserved, IPv6 unique-local/link-local/site-local, and the IPv4 address inside IPv4-mapped, NAT64 and
  6to4 IPv6 forms are refused;
- the connection goes to that pinned address (no second lookup a DNS rebinding could answer differently),
  with the original Host header and, for https, the original name for SNI and certificate checks;
- redirects are never followed (a 3xx is refused: a redirect is a second URL nobody checked);
- connect and read timeouts and a total deadline bound the time, and a size cap bounds the body.

EGRESS_ALLOW_PRIVATE=true lifts the address check (tests, and deployments whose webhooks live on a private
network); everything else still applies.
"""

import ipaddress
import json as jsonlib
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import certifi
import urllib3
from flask import current_app, has_app_context
from urllib3.exceptions import HTTPError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

# Refused even where ipaddress's own flags would say "global" on some Python versions.
_BLOCKED = [ipaddress.ip_network(net) for net in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/96", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:db8::/32", "3fff::/20", "fc00::/7",
    "fe80::/10", "fec0::/10", "ff00::/8",
)]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_V4 = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?")
_NUMBER = re.compile(r"0x[0-9a-f]*|[0-9]+")
_HOST_CHARS = re.compile(r"[a-z0-9._:%-]+")
_getaddrinfo = socket.getaddrinfo  # tests replace this to play DNS


class EgressError(Exception):
    """The request was not made, or did not complete. The message is safe to log and to show to root."""


class EgressRefused(EgressError):
    """The URL (or where it led) is not allowed."""


class EgressFailed(EgressError):
    """An allowed URL could not be fetched: refused connection, timeout, too large, bad TLS."""


@dataclass
class Target:
    scheme: str
    hostname: str  # as written (IDNA-encoded), for SNI and certificate checks
    port: int
    ip: str  # the pinned address the connection goes to
    path: str  # path and query
    host_header: str


@dataclass
class Answer:
    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""

    def json(self):
        return jsonlib.loads(self.body)


def blocked(ip):
    """Whether an address is one the guard never connects to (unless private addresses are allowed)."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip)
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return blocked(embedded)
    return (any(ip in net for net in _BLOCKED if net.version == ip.version) or not ip.is_global
            or ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified)


def _literal(host):
    """The address a host names by itself, in any spelling the C resolver accepts, or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # As in the WHATWG URL standard: a host whose last label is a number is an IPv4 address, or invalid.
    if _NUMBER.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
        try:
            if not _NUMERIC_V4.fullmatch(host):
                raise OSError
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            raise EgressRefused("the host is neither a valid address nor a name") from None
    return None


def _resolve(host, port):
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = _getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise EgressFailed("the host name could not be resolved") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise EgressFailed("the host name could not be resolved")
    return addresses


def _allow_private_default():
    return bool(current_app.config.get("EGRESS_ALLOW_PRIVATE")) if has_app_context() else False


def check(url, allow_private=None):
    """Parse, resolve and vet `url`; the Target to connect to, or EgressRefused/EgressFailed."""
    if allow_private is None:
        allow_private = _allow_private_default()
    if not isinstance(url, str) or len(url) > 2048 or any(ch in url for ch in "\r\n\t\0 "):
        raise EgressRefused("the URL is malformed")
    try:
        parts = urlsplit(url)
        port = parts.port
        hostname = parts.hostname or ""
    except ValueError:
        raise EgressRefused("the URL is malformed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise EgressRefused("only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise EgressRefused("URLs with credentials are not allowed")
    if ":" not in hostname:  # names (not IPv6 literals) are IDNA-encoded
        try:
            hostname = hostname.encode("idna").decode("ascii").lower() if hostname else ""
        except UnicodeError:
            raise EgressRefused("the host name is malformed") from None
    if not hostname or not _HOST_CHARS.fullmatch(hostname):
        raise EgressRefused("the URL has no valid host")
    port = port or (443 if scheme == "https" else 80)
    addresses = _resolve(hostname, port)
    if not allow_private and any(blocked(address) for address in addresses):
        raise EgressRefused("the URL points to a private, local or reserved address")
    ip = addresses[0]
    shown = f"[{hostname}]" if ":" in hostname else hostname
    default_port = 443 if scheme == "https" else 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, hostname, port, str(ip), path,
                  shown if port == default_port else f"{shown}:{port}")


def tls_context():
    """Certificates are always verified (tests replace this to trust their own CA)."""
    return ssl.create_default_context(cafile=certifi.where())


def request(method, url, *, headers=None, body=None, json=None, connect_timeout=5.0, read_timeout=10.0,
            total_timeout=30.0, max_bytes=1 << 20, allow_private=None):
    """Send one request through the guard and return the whole Answer (at most `max_bytes` of body)."""
    target = check(url, allow_private)
    send_headers = {"Host": target.host_header, "User-Agent": "one-api", "Accept-Encoding": "identity"}
    if json is not None:
        body = jsonlib.dumps(json).encode()
        send_headers["Content-Type"] = "application/json"
    send_headers.update(headers or {})
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    options = {"timeout": timeout, "retries": False, "maxsize": 1, "block": False}
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(target.ip, target.port, server_hostname=target.hostname,
                                           assert_hostname=target.hostname, ssl_context=tls_context(),
                                           cert_reqs="CERT_REQUIRED", **options)
    else:
        pool = urllib3.HTTPConnectionPool(target.ip, target.port, **options)
    deadline = time.monotonic() + total_timeout
    try:
        response = pool.urlopen(method, target.path, body=body, headers=send_headers, redirect=False,
                                assert_same_host=False, preload_content=False, decode_content=False)
        try:
            if 300 <= response.status < 400:
                raise EgressRefused(f"the URL answered with a redirect ({response.status}), which is not followed")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise EgressFailed("the answer is larger than allowed")
            chunks, size = [], 0
            while True:
                chunk = response.read(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise EgressFailed("the answer is larger than allowed")
                if time.monotonic() > deadline:
                    raise EgressFailed("the answer took longer than allowed")
                chunks.append(chunk)
            return Answer(response.status, dict(response.headers), b"".join(chunks))
        finally:
            response.release_conn()
            response.close()
    except (TimeoutError, Urllib3Timeout):
        raise EgressFailed("the request timed out") from None
    except (HTTPError, OSError) as error:
        raise EgressFailed(f"the request failed ({type(error).__name__})") from None
    finally:
        pool.close()


def post_json(url, payload, **kwargs):
    return request("POST", url, json=payload, **kwargs)


def get(url, **kwargs):
    return request("GET", url, **kwargs)
