"""Third-party login and binding (spec §3.7): the state, what an Identity does to accounts, and the JSON API.

With a user logged in, an identity is bound to that user; otherwise it logs in the user who has it, or makes
a new user when registration is open. Bindings change an account, so no cross-site GET can trigger one:
GitHub, OIDC and Lark need the state this session was given (single use, 10 minutes); the WeChat routes need
that state or a header a cross-site page cannot send without a CORS preflight, which /api never grants.
"""

import hmac
import secrets
import string
import time

from flask import request, session, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from oneapi.auth import bp
from oneapi.auth.guards import caller, require_role
from oneapi.auth.providers import PROVIDERS, ProviderError, enabled, identify, wechat_identify
from oneapi.auth.routes import start_session
from oneapi.envelope import ApiError, ok
from oneapi.extensions import db
from oneapi.models import User
from oneapi.models.user import ROLE_COMMON, STATUS_DELETED, STATUS_ENABLED
from oneapi.ratelimit import critical
from oneapi.services import accounts, cache, options, signup, users

STATE_KEY, STATE_TIME_KEY, STATE_SECONDS = "oauth_state", "oauth_state_time", 600
BAD_STATE = "state is empty or not the same as this session's: start the login again"
PROOF_HEADERS = ("X-Requested-With", "Authorization")
REDIRECT_PROVIDERS = ("github", "oidc", "lark")  # the WeChat flow is a code typed on our page


def new_state():
    state = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(12))
    session[STATE_KEY], session[STATE_TIME_KEY] = state, int(time.time())
    return state


def take_state(sent):
    """Whether `sent` is the state this session was given in the last 10 minutes. Any attempt uses it up."""
    expected, made = session.pop(STATE_KEY, None), session.pop(STATE_TIME_KEY, 0)
    return (isinstance(sent, str) and isinstance(expected, str) and bool(sent)
            and hmac.compare_digest(sent.encode(), expected.encode()) and time.time() - made <= STATE_SECONDS)


def check_state(sent):
    if not take_state(sent):
        raise ApiError(BAD_STATE, 403)


def require_same_site():
    """For the WeChat routes, which the original left without a state: the state, or a non-simple header."""
    if any(request.headers.get(name) for name in PROOF_HEADERS):
        return
    if not take_state(request.args.get("state")):
        raise ApiError("send the state from GET /api/oauth/state, or the header X-Requested-With", 400)


def linked_accounts(user):
    """For the settings page: each provider that is enabled or bound to `user`, with the id bound."""
    o = options.current()
    rows = []
    for provider in PROVIDERS.values():
        bound, on = getattr(user, provider.column) or "", enabled(provider.name, o)
        if on or bound:
            start = url_for("auth.oauth_start", name=provider.name) if provider.name in REDIRECT_PROVIDERS else ""
            rows.append({"name": provider.name, "label": provider.label, "bound": bound, "enabled": on,
                         "url": start})
    return rows


def redirect_uri(name):
    """{ServerAddress}/oauth/<name>, as registered at the provider (this request's origin if it is unset)."""
    base = options.current().get("ServerAddress") or request.host_url
    return base.rstrip("/") + f"/oauth/{name}"


def switched_on(name):
    o = options.current()
    if not enabled(name, o):
        raise ApiError(f"the administrator has not enabled login and registration through {PROVIDERS[name].label}")
    return o


LEGACY_LOGIN = ("an account imported from the original One API is linked to this GitHub login, which its owner "
                "may have renamed and someone else taken: log in to it with its password (or reset the password "
                "by mail), then bind GitHub again under Settings")


def _owner(identity):
    """The living user who has this identity. A row of the original that holds a GitHub *login* is never
    matched by it: logins can be renamed and registered again by someone else, who would take the account
    over. Such a login refuses the sign-in (no duplicate account is made) until the owner binds again."""
    column = getattr(User, identity.provider.column)
    living = select(User).where(User.status != STATUS_DELETED).order_by(User.id)
    user = db.session.scalar(living.where(column == identity.id))
    if user is None and identity.legacy_id and not identity.legacy_id.isdigit() and current_user.is_anonymous:
        if db.session.scalar(select(User.id).where(User.status != STATUS_DELETED, column == identity.legacy_id)):
            raise ApiError(LEGACY_LOGIN)
    return user


def _free_email(email):
    """The provider's address, kept only when it looks like one and no other account uses it."""
    email = signup.verification.normalise(email)
    if "@" not in email or len(email) > users.EMAIL_MAX or signup.email_taken(email):
        return ""
    return email


def _register(identity):
    """A new common user named as the original names them (github_<n>, OIDC's preferred_username...)."""
    provider = identity.provider
    display_name = (identity.display_name or provider.default_display_name)[:users.DISPLAY_NAME_MAX]
    wished = identity.username if len(identity.username) <= users.USERNAME_MAX else ""
    for attempt in range(-1 if wished else 0, 5):
        username = wished if attempt < 0 else \
            f"{provider.name}_{(db.session.scalar(select(func.max(User.id))) or 0) + 1 + attempt}"
        try:
            return users.create(username, None, display_name=display_name, email=_free_email(identity.email),
                                identity={provider.column: identity.id}, max_username=64)
        except users.UserError:
            continue
        except IntegrityError:  # another sign-up took the name or the invitation code meanwhile
            db.session.rollback()
    raise ApiError("could not find a free username; try again")


def sign_in(identity, mode="auto"):
    """Bind (a user is logged in and mode is not "login"), log in, or register and log in.
    Returns ("bind" | "login", user)."""
    provider = identity.provider
    owner = _owner(identity)
    if mode == "bind" or (mode == "auto" and current_user.is_authenticated):
        me = caller()
        if owner is not None and owner.id != me.id:
            raise ApiError(f"this {provider.label} account is already bound to another user")
        setattr(me, provider.column, identity.id)
        cache.publish(accounts.user_topic(me.id))
        db.session.commit()
        return "bind", me
    if owner is None:
        if not options.current().bool("RegisterEnabled"):
            raise ApiError("the administrator has turned off registration of new users")
        owner = _register(identity)
    if owner.status != STATUS_ENABLED:
        raise ApiError("this user is disabled")
    start_session(owner)
    return "login", owner


def complete(name, code, mode="auto"):
    """The code a provider sent back → bind, log in or register. ProviderErrors become ApiErrors."""
    o = switched_on(name)
    try:
        identity = wechat_identify(o, code) if name == "wechat" else identify(name, o, code, redirect_uri(name))
    except ProviderError as error:
        raise ApiError(str(error)) from None
    return sign_in(identity, mode)


def answer(outcome, user):
    if outcome == "bind":
        return ok(message="bind")  # the original's SPA looks for this message
    return ok({"id": user.id, "username": user.username, "display_name": user.display_name,
               "role": user.role, "status": user.status})


@bp.get("/api/oauth/state")
@critical
def oauth_state():
    return ok(new_state())


def _api_callback(name):
    check_state(request.args.get("state"))
    return answer(*complete(name, request.args.get("code", "")))


@bp.get("/api/oauth/github")
@critical
def oauth_github():
    return _api_callback("github")


@bp.get("/api/oauth/oidc")
@critical
def oauth_oidc():
    return _api_callback("oidc")


@bp.get("/api/oauth/lark")
@critical
def oauth_lark():
    return _api_callback("lark")


@bp.get("/api/oauth/wechat")
@critical
def oauth_wechat():
    require_same_site()
    return answer(*complete("wechat", request.args.get("code", ""), mode="login"))


@bp.get("/api/oauth/wechat/bind")
@critical
@require_role(ROLE_COMMON)
def oauth_wechat_bind():
    require_same_site()
    complete("wechat", request.args.get("code", ""), mode="bind")
    return ok()
