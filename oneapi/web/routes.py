"""Public pages (home, about), the dashboard, and the password page that the default-password lock opens."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from oneapi.auth.guards import renew_session
from oneapi.envelope import ApiError
from oneapi.extensions import db, login_manager
from oneapi.services import accounts, cache, options
from oneapi.users.routes import validate_password
from oneapi.web import bp
from oneapi.web.site import page_role, rich

login_manager.login_view = "auth.login_page"


@bp.get("/")
def home():
    return render_template("web/home.html", content=rich(options.current().get("HomePageContent")))


@bp.get("/about")
def about():
    return render_template("web/about.html", content=rich(options.current().get("About")))


@bp.get("/chat")
@page_role()
def chat():
    link = options.current().get("ChatLink")
    if not link.startswith(("https://", "http://")):
        return redirect(url_for("web.dashboard"))
    return redirect(link)


@bp.get("/dashboard")
@page_role()
def dashboard():
    return render_template("web/dashboard.html")


@bp.route("/user/password", methods=["GET", "POST"])
@login_required
def password():
    if request.method == "POST":
        new, again = request.form.get("password", ""), request.form.get("password2", "")
        try:
            if new != again:
                raise ApiError("the two passwords differ")
            if current_user.has_password and not current_user.check_password(request.form.get("current", "")):
                raise ApiError("the current password is wrong")
            validate_password(new)
        except ApiError as error:
            flash(error.message, "error")
            return render_template("web/password.html"), 400
        current_user.set_password(new)
        current_user.must_change_password = False
        renew_session(current_user)
        cache.publish(accounts.user_topic(current_user.id))
        db.session.commit()
        flash("Password changed.", "ok")
        return redirect(url_for("web.dashboard"))
    return render_template("web/password.html")
