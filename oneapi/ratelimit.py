"""Rate limits (spec §8.1) with Flask-Limiter, in memory or in Redis (REDIS_CONN_STRING) for several workers
and nodes, counted per client address (proxies.py decides which one that is).

- Global API: GLOBAL_API_RATE_LIMIT requests per 180 s over /api, one bucket per address. (/v1 and
  /dashboard, the API-key routes of the relay blueprint, have no per-address limit.)
- Global web: GLOBAL_WEB_RATE_LIMIT per 180 s over the pages and static files.
- Critical: CRITICAL_RATE_LIMIT (20) per CRITICAL_RATE_LIMIT_DURATION (1200 s) over login, registration,
  verification and reset mail, and every /api/oauth route, shared between them.
- Per token (ours): a token's `rpm_limit` requests per minute on /v1, answered in OpenAI's 429 shape.

A limit of 0 turns it off; DEBUG turns the three global ones off, as in the original. The sliding-log
algorithm of the original is Flask-Limiter's moving window. Breaches answer 429 with `Retry-After` and
the body each audience expects ({"success":false,...} on /api; an OpenAI error on /v1; a page elsewhere).
"""

import ipaddress
import logging
import time
from functools import partial, wraps

from flask import current_app, render_template, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from limits import RateLimitItemPerMinute

log = logging.getLogger(__name__)

_API = ("/api/",)
_NOT_WEB = ("/api/", "/dashboard/", "/v1/", "/healthz")
_KEY_ROUTES = ("/v1/", "/dashboard/")


def client_address():
    """The bucket of a client: its IPv4 address, or its IPv6 /64 (one subscriber owns a whole /64, and would
    otherwise get a fresh allowance from each of its 2^64 addresses)."""
    address = request.remote_addr or "unknown"
    if ":" in address:
        try:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        except ValueError:
            return address
    return address


def _setting(name):
    config = current_app.config
    return 0 if config.get("DEBUG") else config.get(name, 0)


def _api_limit():
    return f"{max(_setting('GLOBAL_API_RATE_LIMIT'), 1)} per 180 seconds"


def _web_limit():
    return f"{max(_setting('GLOBAL_WEB_RATE_LIMIT'), 1)} per 180 seconds"


def _critical_limit():
    config = current_app.config
    return f"{max(_setting('CRITICAL_RATE_LIMIT'), 1)} per {max(config['CRITICAL_RATE_LIMIT_DURATION'], 1)} seconds"


def _not_api():
    return _setting("GLOBAL_API_RATE_LIMIT") <= 0 or not request.path.startswith(_API)


def _not_web():
    return _setting("GLOBAL_WEB_RATE_LIMIT") <= 0 or request.path.startswith(_NOT_WEB)


limiter = Limiter(
    client_address,
    application_limits=[
        ApplicationLimit(limit_provider=_api_limit, scope="GA", exempt_when=_not_api),
        ApplicationLimit(limit_provider=_web_limit, scope="GW", exempt_when=_not_web),
    ],
    strategy="moving-window",
    headers_enabled=True,
    retry_after="delta-seconds",
    key_prefix="oneapi-rl",
)

@limiter.request_filter
def _api_key_routes():
    """/v1 and /dashboard have no per-address limit: skip Flask-Limiter's bookkeeping for them altogether
    (~0.15 ms of a relay request's ~1.5 ms, even with the relay blueprint exempt). Token limits are separate."""
    return request.path.startswith(_KEY_ROUTES)


# The original's CriticalRateLimit: one bucket per address across every route it decorates.
critical = limiter.shared_limit(_critical_limit, scope="CT",
                                exempt_when=lambda: _setting("CRITICAL_RATE_LIMIT") <= 0)
# The same bucket for pages, counting only the posted forms (showing a form is not an attempt).
critical_posts = limiter.shared_limit(_critical_limit, scope="CT", methods=["POST"],
                                      exempt_when=lambda: _setting("CRITICAL_RATE_LIMIT") <= 0)


def init_app(app):
    config = app.config
    config.setdefault("RATELIMIT_STORAGE_URI", _storage_uri(config))
    config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_timeout": 2, "socket_connect_timeout": 2}
                      if config["RATELIMIT_STORAGE_URI"].startswith("redis") else {})
    # A Redis outage must not take the gateway down: count in memory until it is back.
    config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    limiter.init_app(app)
    _skip_on_key_routes(app)
    app.register_error_handler(RateLimitExceeded, _too_many)


def _skip_on_key_routes(app):
    """Flask-Limiter's three request hooks have nothing to do on /v1 and /dashboard (`_api_key_routes`), yet
    cost ~2 % of a relay request to find that out: there they are not called at all. A hook this does not
    recognise (another Flask-Limiter release) is left as it is, and only costs that time again."""

    def ours(hook):
        return getattr(hook, "__self__", None) is limiter or (isinstance(hook, partial) and limiter in hook.args)

    def skipping(hook, passed):
        @wraps(hook)
        def hook_unless_key_route(*args):
            return passed(*args) if request.path.startswith(_KEY_ROUTES) else hook(*args)
        return hook_unless_key_route

    for hooks, passed in ((app.before_request_funcs, lambda: None),
                          (app.after_request_funcs, lambda response: response),
                          (app.teardown_request_funcs, lambda error=None: None)):
        hooks[None] = [skipping(hook, passed) if ours(hook) else hook for hook in hooks.get(None, [])]


def _too_many(error):
    """429 in the shape each audience reads; Flask-Limiter adds Retry-After and X-RateLimit-* after this."""
    from oneapi.envelope import fail

    message = f"too many requests from your address ({error.limit.limit}); wait a little and try again"
    if request.path.startswith(_API):
        return fail(message, 429)
    return render_template("error.html", code=429, message=message[0].upper() + message[1:] + "."), 429


def _storage_uri(config):
    url = config.get("REDIS_CONN_STRING", "")
    return url if url.startswith(("redis://", "rediss://", "redis+unix://")) else "memory://"


_outage = {"checked": 0.0}
RECHECK_SECONDS = 30


def _token_limiter():
    """Flask-Limiter's strategy: the storage's, or its in-memory fallback while the storage is away. A worker
    that only serves /v1 never runs Flask-Limiter's own recovery check, so look again every 30 s here."""
    if limiter._storage_dead and time.monotonic() - _outage["checked"] > RECHECK_SECONDS:
        _outage["checked"] = time.monotonic()
        try:
            if limiter.storage.check():
                limiter._storage_dead = False
                log.info("rate-limit storage reachable again")
        except Exception:
            pass
    return limiter.limiter


def token_allowed(key_hash, per_minute):
    """Take one request from a token's per-minute allowance; False when it is used up. The bucket is named
    by the key's hash, not the row id, so a new key always starts a new bucket. If the storage (Redis) is
    unreachable, this process counts in memory until it answers again."""
    if per_minute <= 0:
        return True
    item = RateLimitItemPerMinute(per_minute)
    try:
        return _token_limiter().hit(item, "oneapi-rpm", key_hash[:32])
    except Exception as error:  # the storage's own errors (redis.ConnectionError, timeouts, ...)
        log.warning("rate-limit storage unreachable (%s): counting in memory for now", type(error).__name__)
        limiter._storage_dead = True
        _outage["checked"] = time.monotonic()
        return limiter.limiter.hit(item, "oneapi-rpm", key_hash[:32])


def token_retry_after(key_hash, per_minute):
    """Seconds until the token's oldest request in the window leaves it."""
    try:
        reset, _ = _token_limiter().get_window_stats(RateLimitItemPerMinute(per_minute), "oneapi-rpm", key_hash[:32])
    except Exception:
        return 60
    return max(1, int(reset - time.time() + 0.999))
