"""Logs (spec §1.3 /api/log, §9): lists with the original's filters, sums, the per-day dashboard."""

import time

from flask import request
from sqlalchemy import delete, func, or_, select

from oneapi.auth.guards import caller, require_role
from oneapi.envelope import ID_MAX, ApiError, keyword_id, ok, page, query_int, starts_with
from oneapi.extensions import db
from oneapi.logs import bp
from oneapi.models import Log, LogType
from oneapi.models.user import ROLE_ADMIN, ROLE_COMMON

MAX_SEARCH = 100
DAY = 86400


def _filters(own_user_id=None, with_type=True):
    """WHERE clauses from the query string; 0 or empty means no filter (the original's convention)."""
    clauses = []
    log_type = query_int("type", maximum=ID_MAX) if with_type else 0
    if log_type:
        clauses.append(Log.type == log_type)
    start, end = query_int("start_timestamp"), query_int("end_timestamp")
    if start:
        clauses.append(Log.created_at >= start)
    if end:
        clauses.append(Log.created_at <= end)
    for arg, column in (("token_name", Log.token_name), ("model_name", Log.model_name)):
        if request.args.get(arg):
            clauses.append(column == request.args[arg])
    if own_user_id is not None:
        clauses.append(Log.user_id == own_user_id)
    else:
        if request.args.get("username"):
            clauses.append(Log.username == request.args["username"])
        channel = query_int("channel", maximum=ID_MAX)
        if channel:
            clauses.append(Log.channel_id == channel)
    return clauses


def _page_of(clauses, hide_id=False):
    offset, limit = page()
    rows = db.session.scalars(select(Log).where(*clauses).order_by(Log.id.desc()).offset(offset).limit(limit))
    items = [row.to_dict() for row in rows]
    if hide_id:
        for item in items:
            item.pop("id")
    return ok(items)


@bp.get("/api/log/")
@require_role(ROLE_ADMIN)
def all_logs():
    return _page_of(_filters())


@bp.get("/api/log/self")
@bp.get("/api/log/self/")
@require_role(ROLE_COMMON)
def own_logs():
    return _page_of(_filters(caller().id), hide_id=True)


def _quota_sum(clauses):
    return int(db.session.scalar(select(func.coalesce(func.sum(Log.quota), 0))
                                 .where(Log.type == LogType.CONSUME, *clauses)) or 0)


@bp.get("/api/log/stat")
@require_role(ROLE_ADMIN)
def stat():
    return ok({"quota": _quota_sum(_filters(with_type=False))})


@bp.get("/api/log/self/stat")
@require_role(ROLE_COMMON)
def own_stat():
    return ok({"quota": _quota_sum(_filters(caller().id, with_type=False))})


def _search(extra):
    keyword = request.args.get("keyword", "")
    clauses = [starts_with(Log.content, keyword)]
    if keyword_id(keyword) is not None:
        clauses.append(Log.type == keyword_id(keyword))
    rows = db.session.scalars(select(Log).where(or_(*clauses), *extra).order_by(Log.id.desc()).limit(MAX_SEARCH))
    return ok([row.to_dict() for row in rows])


@bp.get("/api/log/search")
@require_role(ROLE_ADMIN)
def search():
    return _search([])


@bp.get("/api/log/self/search")
@require_role(ROLE_COMMON)
def own_search():
    return _search([Log.user_id == caller().id])


@bp.delete("/api/log/")
@require_role(ROLE_ADMIN)
def delete_before():
    target = query_int("target_timestamp")
    if target <= 0:
        raise ApiError("target_timestamp (unix seconds) is required", 400)
    deleted = db.session.execute(delete(Log).where(Log.created_at < target)).rowcount
    db.session.commit()
    return ok(deleted)


@bp.get("/api/user/dashboard")
@require_role(ROLE_COMMON)
def dashboard():
    """Consumption per UTC day and model over the last 7 days, with the original's PascalCase keys."""
    days = min(max(query_int("days") or 7, 1), 31)
    since = (int(time.time()) // DAY - (days - 1)) * DAY
    day = (Log.created_at // DAY).label("day")
    rows = db.session.execute(
        select(day, Log.model_name, func.count(Log.id), func.sum(Log.quota), func.sum(Log.prompt_tokens),
               func.sum(Log.completion_tokens))
        .where(Log.user_id == caller().id, Log.type == LogType.CONSUME, Log.created_at >= since)
        .group_by(day, Log.model_name).order_by(day, Log.model_name)
    ).all()
    return ok([{"Day": time.strftime("%Y-%m-%d", time.gmtime(int(r[0]) * DAY)), "ModelName": r[1],
                "RequestCount": int(r[2]), "Quota": int(r[3] or 0), "PromptTokens": int(r[4] or 0),
                "CompletionTokens": int(r[5] or 0)} for r in rows])
