"""Cloudflare Turnstile (spec §3.8) on registration, verification mail and reset mail, when
TurnstileCheckEnabled. The token comes as `?turnstile=` (the original's SPA) or as the widget's form field
`cf-turnstile-response` (our pages); it is checked with Cloudflare's siteverify (TURNSTILE_VERIFY_URL,
overridable for tests), and a session that passed once is not asked again."""

import logging

import requests
from flask import current_app, request, session

from oneapi.envelope import ApiError
from oneapi.services import options

log = logging.getLogger(__name__)
PASSED = "turnstile"
TIMEOUT = 5


def token_from_request():
    return (request.args.get("turnstile") or request.form.get("cf-turnstile-response")
            or request.form.get("turnstile") or "").strip()


def check():
    """Raise ApiError unless Turnstile is off, already passed in this session, or passes now."""
    snapshot = options.current()
    if not snapshot.bool("TurnstileCheckEnabled") or session.get(PASSED):
        return
    token = token_from_request()
    if not token:
        raise ApiError("the Turnstile check is missing: complete the challenge and try again")
    if len(token) > 2048 or not _verify(snapshot.get("TurnstileSecretKey"), token):
        raise ApiError("the Turnstile check failed: refresh the page and try again")
    session[PASSED] = True


def _verify(secret, token):
    try:
        reply = requests.post(current_app.config["TURNSTILE_VERIFY_URL"], timeout=TIMEOUT,
                              data={"secret": secret, "response": token, "remoteip": request.remote_addr or ""})
        return reply.status_code == 200 and reply.json().get("success") is True
    except (requests.RequestException, ValueError, AttributeError) as error:
        log.warning("Turnstile verification could not be completed: %s", type(error).__name__)
        return False
