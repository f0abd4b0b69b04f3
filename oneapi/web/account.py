"""Every user's pages: tokens, logs, top-up and personal settings. Lists are read here; every change goes
through the JSON API from the page's script, so the rules live in one place."""

import calendar
import time
import uuid
from urllib.parse import urlencode

from flask import abort, render_template, request
from flask_login import current_user
from sqlalchemy import func, select

from oneapi.auth.oauth import linked_accounts
from oneapi.extensions import db
from oneapi.logs.routes import _quota_sum
from oneapi.models import Log, LogType, Token
from oneapi.models.user import ROLE_ADMIN
from oneapi.services import options, routing
from oneapi.web import bp
from oneapi.web.site import page_number, page_role, safe_image_url

PAGE_SIZE = 20
LOG_TYPES = {int(t): t.name.title() for t in LogType if t}


@bp.get("/token")
@page_role()
def tokens():
    index = page_number()
    rows = db.session.scalars(select(Token).where(Token.user_id == current_user.id).order_by(Token.id.desc())
                              .offset(index * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    return render_template("web/tokens.html", tokens=rows[:PAGE_SIZE], page=index, more=len(rows) > PAGE_SIZE,
                           now=int(time.time()))


@bp.get("/token/add")
@bp.get("/token/edit/<int:token_id>")
@page_role()
def token_form(token_id=None):
    token = None
    if token_id is not None:
        token = db.session.get(Token, token_id)
        if token is None or token.user_id != current_user.id:
            abort(404, "No such token.")
    return render_template("web/token_form.html", token=token, models=routing.table().models(current_user.group))


def _day(name, end=False):
    """A yyyy-mm-dd query argument as unix seconds (UTC), the whole day when `end`; 0 when absent or bad."""
    try:
        start = calendar.timegm(time.strptime(request.args.get(name, ""), "%Y-%m-%d"))
    except ValueError:
        return 0
    return start + 86399 if end else start


def _log_filters(all_users):
    args = request.args
    clauses = [] if all_users else [Log.user_id == current_user.id]
    if _day("start"):
        clauses.append(Log.created_at >= _day("start"))
    if _day("end"):
        clauses.append(Log.created_at <= _day("end", end=True))
    for name, column in (("model_name", Log.model_name), ("token_name", Log.token_name)):
        if args.get(name):
            clauses.append(column == args[name].strip())
    if all_users:
        if args.get("username"):
            clauses.append(Log.username == args["username"].strip())
        if args.get("channel", "").isdigit():
            clauses.append(Log.channel_id == int(args["channel"]))
    return clauses


@bp.get("/log")
@page_role()
def logs():
    all_users = current_user.role >= ROLE_ADMIN
    clauses = _log_filters(all_users)
    total = _quota_sum(clauses)  # consumption under the same filters, whatever type is listed
    if request.args.get("type", "").isdigit() and int(request.args["type"]):
        clauses.append(Log.type == int(request.args["type"]))
    index = page_number()
    rows = db.session.scalars(select(Log).where(*clauses).order_by(Log.id.desc())
                              .offset(index * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    count = db.session.scalar(select(func.count(Log.id)).where(*clauses))
    return render_template("web/logs.html", logs=rows[:PAGE_SIZE], page=index, more=len(rows) > PAGE_SIZE,
                           all_users=all_users, types=LOG_TYPES, count=count, total=total,
                           args=request.args)


@bp.get("/topup")
@page_role()
def topup():
    link = options.current().get("TopUpLink")
    if link.startswith(("https://", "http://")):
        query = urlencode({"username": current_user.username, "user_id": current_user.id,
                           "transaction_id": str(uuid.uuid4())})
        link += ("&" if "?" in link else "?") + query
    else:
        link = ""
    return render_template("web/topup.html", top_up_link=link)


@bp.get("/setting")
@page_role()
def personal_settings():
    return render_template("web/setting.html", tab="personal", linked=linked_accounts(current_user),
                           wechat_qrcode=safe_image_url(options.current().get("WeChatAccountQRCodeImageURL")))
