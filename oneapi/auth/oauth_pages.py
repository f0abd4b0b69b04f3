"""Third-party login as pages, with no script: a start link that makes the state and goes to the provider,
the callback page that finishes the flow server-side, and the WeChat code forms (posted with the CSRF field)."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from oneapi.auth import bp
from oneapi.auth.oauth import REDIRECT_PROVIDERS, complete, new_state, redirect_uri, switched_on, take_state
from oneapi.auth.providers import PROVIDERS, ProviderError, authorize_url, enabled
from oneapi.envelope import ApiError
from oneapi.ratelimit import critical, critical_posts
from oneapi.services import options
from oneapi.web.site import page_role, safe_image_url


@bp.app_template_global()
def oauth_buttons():
    """The enabled providers, for the login page: [{name, label, url}]."""
    o = options.current()
    return [{"name": name, "label": PROVIDERS[name].label,
             "url": url_for("auth.oauth_wechat_page") if name == "wechat" else url_for("auth.oauth_start", name=name)}
            for name in (*REDIRECT_PROVIDERS, "wechat") if enabled(name, o)]


def wechat_qrcode():
    return safe_image_url(options.current().get("WeChatAccountQRCodeImageURL"))


def _refused(message, status=400):
    return render_template("auth/oauth.html", message=message), status


@bp.get("/oauth/<any(github, oidc, lark):name>/start")
def oauth_start(name):
    try:
        o = switched_on(name)
        return redirect(authorize_url(name, o, redirect_uri(name), new_state()))
    except (ApiError, ProviderError) as error:
        return _refused(getattr(error, "message", str(error)))


@bp.get("/oauth/<any(github, oidc, lark):name>")
@critical
def oauth_callback_page(name):
    label = PROVIDERS[name].label
    if request.args.get("error"):
        take_state(request.args.get("state"))
        return _refused(f"{label} did not authorize the login ({request.args['error'][:100]}).")
    if not take_state(request.args.get("state")):
        return _refused("This login link has expired or was not started here. Start the login again.", 403)
    try:
        outcome, _ = complete(name, request.args.get("code", ""))
    except ApiError as error:
        return _refused(error.message, error.status if error.status >= 400 else 400)
    if outcome == "bind":
        flash(f"Your {label} account is now bound.", "ok")
        return redirect(url_for("web.personal_settings"))
    return redirect(url_for("web.home"))


@bp.route("/oauth/wechat", methods=["GET", "POST"])
@critical_posts
def oauth_wechat_page():
    if not enabled("wechat", options.current()):
        return _refused("Login through WeChat is not enabled.", 404)
    if request.method == "POST":
        try:
            complete("wechat", request.form.get("code", ""), mode="login")
        except ApiError as error:
            flash(error.message, "error")
            return render_template("auth/wechat.html", qrcode=wechat_qrcode()), 400
        return redirect(url_for("web.home"))
    if current_user.is_authenticated:
        return redirect(url_for("web.home"))
    return render_template("auth/wechat.html", qrcode=wechat_qrcode())


@bp.post("/oauth/wechat/bind")
@critical
@page_role()
def oauth_wechat_bind_page():
    try:
        complete("wechat", request.form.get("code", ""), mode="bind")
        flash("Your WeChat account is now bound.", "ok")
    except ApiError as error:
        flash(error.message, "error")
    return redirect(url_for("web.personal_settings"))
