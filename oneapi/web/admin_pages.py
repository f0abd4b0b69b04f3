"""Admin pages: channels, users and redemption codes. Reads happen here; changes go through /api."""

import json

from flask import abort, render_template, request
from flask_login import current_user
from sqlalchemy import or_, select

from oneapi.envelope import keyword_id, starts_with
from oneapi.extensions import db
from oneapi.models import Channel, Redemption, User
from oneapi.models.user import ROLE_ADMIN, STATUS_DELETED
from oneapi.relay import channel_types, model_lists
from oneapi.services import options
from oneapi.services import users as user_service
from oneapi.web import bp
from oneapi.web.site import page_number, page_role

PAGE_SIZE = 20


def _listing(model, keyword_columns, order):
    """One page of `model`, or up to 100 rows whose columns start with ?keyword= (or whose id it is)."""
    keyword = request.args.get("keyword", "").strip()
    query = select(model)
    if model is User:
        query = query.where(User.status != STATUS_DELETED)
    if keyword:
        clauses = [starts_with(column, keyword) for column in keyword_columns]
        if keyword_id(keyword) is not None:
            clauses.append(model.id == keyword_id(keyword))
        rows = db.session.scalars(query.where(or_(*clauses)).order_by(order).limit(100)).all()
        return rows, 0, False, keyword
    index = page_number()
    rows = db.session.scalars(query.order_by(order).offset(index * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    return rows[:PAGE_SIZE], index, len(rows) > PAGE_SIZE, keyword


@bp.get("/channel")
@page_role(ROLE_ADMIN)
def channels():
    rows, index, more, keyword = _listing(Channel, [Channel.name], Channel.id.desc())
    return render_template("admin/channels.html", channels=rows, page=index, more=more, keyword=keyword,
                           types=channel_types.TYPES)


@bp.get("/channel/add")
@bp.get("/channel/edit/<int:channel_id>")
@page_role(ROLE_ADMIN)
def channel_form(channel_id=None):
    channel = None
    if channel_id is not None:
        channel = db.session.get(Channel, channel_id)
        if channel is None:
            abort(404, "No such channel.")
    types = [t for t in channel_types.TYPES.values() if t.id]
    return render_template("admin/channel_form.html", channel=channel, types=types,
                           models_by_type=model_lists.all_types(),
                           groups=sorted(options.current().json("GroupRatio")))


@bp.get("/user")
@page_role(ROLE_ADMIN)
def users():
    rows, index, more, keyword = _listing(User, [User.username, User.email, User.display_name], User.id.desc())
    return render_template("admin/users.html", users=rows, page=index, more=more, keyword=keyword,
                           can_manage=lambda u: user_service.can_manage(current_user, u))


@bp.get("/user/add")
@bp.get("/user/edit/<int:user_id>")
@page_role(ROLE_ADMIN)
def user_form(user_id=None):
    user = None
    if user_id is not None:
        user = db.session.get(User, user_id)
        if user is None or user.status == STATUS_DELETED:
            abort(404, "No such user.")
        if not user_service.can_manage(current_user, user):
            abort(403, "That user's role is not below yours.")
    return render_template("admin/user_form.html", user=user, groups=sorted(options.current().json("GroupRatio")))


@bp.get("/redemption")
@page_role(ROLE_ADMIN)
def redemptions():
    rows, index, more, keyword = _listing(Redemption, [Redemption.name], Redemption.id.desc())
    return render_template("admin/redemptions.html", codes=rows, page=index, more=more, keyword=keyword)


@bp.app_template_filter("pretty_json")
def _pretty_json(text):
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False) if text else ""
    except ValueError:
        return text
