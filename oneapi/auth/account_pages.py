"""Register, forgot-password and reset pages: plain forms posted with the CSRF field, handled by the same
service functions as /api (services/signup.py), with the same limits and Turnstile."""

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from oneapi.auth import bp, turnstile
from oneapi.auth.accounts import public_base_url
from oneapi.auth.routes import start_session
from oneapi.envelope import ApiError
from oneapi.ratelimit import critical_posts
from oneapi.services import options, signup


@bp.app_template_global()
def signup_links():
    """What the login page offers: registration (when open) and password reset (when mail can be sent)."""
    o = options.current()
    mail_ready = bool(o.get("SMTPServer").strip())
    return {"register": o.bool("RegisterEnabled") and o.bool("PasswordRegisterEnabled"), "mail": mail_ready,
            "reset": mail_ready and bool(o.get("ServerAddress").strip())}


def _turnstile_key():
    o = options.current()
    return o.get("TurnstileSiteKey") if o.bool("TurnstileCheckEnabled") else ""


def _form(name):
    return request.form.get(name, "").strip()


@bp.route("/register", methods=["GET", "POST"])
@critical_posts
def register_page():
    if current_user.is_authenticated:
        return redirect(url_for("web.home"))
    o = options.current()
    context = {"verify_email": o.bool("EmailVerificationEnabled"), "turnstile_key": _turnstile_key(),
               "open": o.bool("RegisterEnabled") and o.bool("PasswordRegisterEnabled"),
               "aff": request.values.get("aff", "")[:32]}
    if request.method == "GET":
        return render_template("auth/register.html", form={}, **context)
    return _register(context)


def _register(context):
    form = request.form
    try:
        if form.get("password", "") != form.get("password2", ""):
            raise ApiError("the two passwords differ")
        turnstile.check()
        user = signup.register(_form("username"), form.get("password", ""), email=_form("email"),
                               code=_form("verification_code"), aff_code=_form("aff_code"))
    except (ApiError, signup.SignupError) as error:
        flash(getattr(error, "message", str(error)), "error")
        return render_template("auth/register.html", form=form, **context), 400
    start_session(user)
    flash(f"Welcome, {user.username}! Your account is ready.", "ok")
    return redirect(url_for("web.dashboard"))


@bp.route("/reset", methods=["GET", "POST"])
@critical_posts
def forgot_page():
    context = {"turnstile_key": _turnstile_key(), "can_mail": signup_links()["reset"]}
    if request.method == "GET":
        return render_template("auth/forgot.html", **context)
    return _forgot(context)


def _forgot(context):
    try:
        turnstile.check()
        signup.send_reset_later(_form("email"), public_base_url())
    except (ApiError, signup.SignupError) as error:
        flash(getattr(error, "message", str(error)), "error")
        return render_template("auth/forgot.html", **context), 400
    flash("If the address belongs to an account, a reset link is on its way. It is valid for 10 minutes.", "ok")
    return redirect(url_for("auth.login_page"))


@bp.route("/user/reset", methods=["GET", "POST"])
@critical_posts
def reset_page():
    """The link from the mail. GET only shows a button: mail scanners open links, and must not use them up."""
    email, token = request.values.get("email", "")[:64], request.values.get("token", "")[:64]
    if request.method == "GET":
        return render_template("auth/reset.html", email=email, token=token, password=None)
    return _reset(email, token)


def _reset(email, token):
    try:
        password = signup.reset_password(email, token)
    except signup.SignupError as error:
        flash(str(error), "error")
        return render_template("auth/reset.html", email=email, token=token, password=None), 400
    page = make_response(render_template("auth/reset.html", email=email, token=token, password=password))
    page.headers["Cache-Control"] = "no-store"  # the new password is in it
    return page
