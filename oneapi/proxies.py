"""The client's address and scheme, believing forwarded headers only from proxies we were told to trust.

The original (Gin's defaults) takes `X-Forwarded-For` and `X-Real-IP` from anyone, so a client could pick
its own address: escape the per-IP rate limits and pass a token's subnet allow-list (spec §12.4). Here a
WSGI middleware rewrites REMOTE_ADDR and the URL scheme before Flask sees the request, and only when the
connection comes from TRUSTED_PROXIES (IPs or CIDRs, comma-separated; default the loopback addresses,
where the shipped nginx.conf runs). The client is the right-most address of `X-Forwarded-For` that is not
itself a trusted proxy: everything left of the proxies' own entries was written by the client.
"""

import ipaddress


def parse_networks(value):
    """TRUSTED_PROXIES as a tuple of networks (the token subnet parser); a bad entry stops the start."""
    from oneapi.services.accounts import parse_subnets

    try:
        return parse_subnets(value or "")
    except ValueError as error:
        raise SystemExit(f"configuration error: TRUSTED_PROXIES: {error}") from None


def _address(text):
    """An address from a forwarded header: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.ipv4_mapped or address if address.version == 6 else address


class TrustedProxies:
    def __init__(self, wsgi_app, networks):
        self.wsgi_app = wsgi_app
        self.networks = networks

    def trusted(self, address):
        return address is not None and any(address in network for network in self.networks)

    def __call__(self, environ, start_response):
        if self.networks and self.trusted(_address(environ.get("REMOTE_ADDR", ""))):
            self.rewrite(environ)
        return self.wsgi_app(environ, start_response)

    def rewrite(self, environ):
        hops = [hop for hop in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        client = None
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # garbage written by someone: stop at the last address a trusted proxy vouched for
            client = address
            if not self.trusted(address):
                break
        if client is None and not hops:
            client = _address(environ.get("HTTP_X_REAL_IP", ""))
        if client is not None:
            environ["REMOTE_ADDR"] = str(client)
        proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()  # the nearest proxy's
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto
