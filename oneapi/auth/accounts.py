"""Registration, verification mail, password reset and email binding on /api (spec §1.3, §3.5, §3.6).
Each is rate limited by the critical limit and, where the original does, guarded by Turnstile."""

from flask import g, request

from oneapi.auth import bp, turnstile
from oneapi.auth.guards import caller, require_role
from oneapi.envelope import ApiError, field, json_object, ok
from oneapi.models.user import ROLE_COMMON
from oneapi.ratelimit import critical
from oneapi.services import options, signup


def public_base_url():
    """Where links in mail point: ServerAddress only. Never the request's Host header, which anyone can set:
    a reset mail for a victim's address would carry its token to the attacker's host."""
    return options.current().get("ServerAddress").strip()


def _signup(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except signup.SignupError as error:
        raise ApiError(str(error)) from None


@bp.post("/api/user/register")
@critical
def register():
    body = json_object()
    turnstile.check()
    _signup(signup.register, field(body, "username", str, default=""), field(body, "password", str, default=""),
            email=field(body, "email", str, default="") or "",
            code=field(body, "verification_code", str, default="") or "",
            aff_code=field(body, "aff_code", str, default="") or "")
    return ok()


@bp.get("/api/verification")
@critical
def send_verification():
    turnstile.check()
    _signup(signup.send_verification, request.args.get("email", ""))
    return ok(message="a verification code has been sent")


@bp.get("/api/reset_password")
@critical
def send_reset():
    turnstile.check()
    _signup(signup.send_reset_later, request.args.get("email", ""), public_base_url())
    # The same answer whether or not the address has an account: nobody learns who is registered here.
    return ok(message="if the address belongs to an account, a reset link has been sent to it")


@bp.post("/api/user/reset")
@critical
def reset_password():
    body = json_object()
    password = _signup(signup.reset_password, field(body, "email", str, default=""),
                       field(body, "token", str, default=""))
    return ok(password)


@bp.route("/api/oauth/email/bind", methods=["GET", "POST"])
@critical
@require_role(ROLE_COMMON)
def bind_email():
    """GET as in the original, but only with an access token: a cross-site link could otherwise bind the
    visitor's account to an address someone else controls (GHSA-26v7-h57m-gh9m). Pages POST JSON."""
    if request.method == "GET":
        if not g.get("access_token_used"):
            raise ApiError("binding an email changes the account: use POST with a JSON body from a session", 405)
        email, code = request.args.get("email", ""), request.args.get("code", "")
    else:
        body = json_object()
        email, code = field(body, "email", str, default=""), field(body, "code", str, default="")
    _signup(signup.bind_email, caller(), email, code)
    return ok()
