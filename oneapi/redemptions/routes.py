"""Redemption codes (spec §1.3 /api/redemption) and redeeming them (POST /api/user/topup), and the
admin top-up used by payment sites (POST /api/topup)."""

import csv
import io
import uuid

from flask import Response, request
from sqlalchemy import or_, select

from oneapi.auth.guards import caller, require_role
from oneapi.envelope import MAX_BALANCE, ApiError, field, found, json_object, keyword_id, ok, page, starts_with
from oneapi.extensions import db
from oneapi.models import Redemption, User
from oneapi.models.user import ROLE_ADMIN, ROLE_COMMON, ROLE_ROOT
from oneapi.redemptions import bp
from oneapi.services import ledger

MAX_BATCH = 100


@bp.get("/api/redemption/")
@require_role(ROLE_ADMIN)
def list_redemptions():
    offset, limit = page()
    rows = db.session.scalars(select(Redemption).order_by(Redemption.id.desc()).offset(offset).limit(limit))
    return ok([r.to_dict() for r in rows])


@bp.get("/api/redemption/search")
@require_role(ROLE_ADMIN)
def search_redemptions():
    keyword = request.args.get("keyword", "").strip()
    clauses = [starts_with(Redemption.name, keyword)]
    if keyword_id(keyword) is not None:
        clauses.append(Redemption.id == keyword_id(keyword))
    rows = db.session.scalars(select(Redemption).where(or_(*clauses)).order_by(Redemption.id.desc()).limit(100))
    return ok([r.to_dict() for r in rows])


@bp.get("/api/redemption/<int:redemption_id>")
@require_role(ROLE_ADMIN)
def get_redemption(redemption_id):
    row = found(db.session.get(Redemption, redemption_id), "redemption code")
    return ok(row.to_dict())


@bp.post("/api/redemption/")
@require_role(ROLE_ADMIN)
def create_redemptions():
    """A batch of `count` codes worth `quota` each; `data` is the list of keys."""
    body = json_object()
    name = field(body, "name", str, default="")
    count = field(body, "count", int, default=1)
    quota = field(body, "quota", int, default=100)
    if not 1 <= len(name) <= 20:
        raise ApiError("name must be 1 to 20 characters")
    if not 1 <= count <= MAX_BATCH:
        raise ApiError(f"count must be from 1 to {MAX_BATCH}")
    if not 0 < quota <= MAX_BALANCE:
        raise ApiError(f"quota must be from 1 to {MAX_BALANCE}")
    keys = [uuid.uuid4().hex for _ in range(count)]
    db.session.add_all(Redemption(user_id=caller().id, key=key, name=name, quota=quota) for key in keys)
    db.session.commit()
    return ok(keys)


@bp.get("/api/redemption/export")
@require_role(ROLE_ADMIN)
def export_redemptions():
    """CSV of the codes with a given name (a batch), or of every unused code."""
    query = select(Redemption).order_by(Redemption.id)
    if request.args.get("name"):
        query = query.where(Redemption.name == request.args["name"])
    else:
        query = query.where(Redemption.status == 1)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "name", "key", "quota", "status", "created_time", "redeemed_time"])
    for row in db.session.scalars(query):
        writer.writerow([row.id, row.name, row.key, row.quota, row.status, row.created_time, row.redeemed_time])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=redemptions.csv"})


@bp.put("/api/redemption/")
@require_role(ROLE_ADMIN)
def update_redemption():
    body = json_object()
    row = found(db.session.get(Redemption, field(body, "id", int, required=True)), "redemption code")
    status = field(body, "status", int)
    if status is not None:
        if status not in (1, 2):
            raise ApiError("status must be 1 (enabled) or 2 (disabled)")
        if row.status == 3:
            raise ApiError("this code has been used")
        row.status = status
    if not request.args.get("status_only"):
        name = field(body, "name", str)
        quota = field(body, "quota", int)
        if name is not None:
            if not 1 <= len(name) <= 20:
                raise ApiError("name must be 1 to 20 characters")
            row.name = name
        if quota is not None:
            if not 0 < quota <= MAX_BALANCE:
                raise ApiError(f"quota must be from 1 to {MAX_BALANCE}")
            row.quota = quota
    db.session.commit()
    return ok(row.to_dict())


@bp.delete("/api/redemption/<int:redemption_id>")
@require_role(ROLE_ADMIN)
def delete_redemption(redemption_id):
    row = found(db.session.get(Redemption, redemption_id), "redemption code")
    db.session.delete(row)
    db.session.commit()
    return ok()


@bp.post("/api/user/topup")
@require_role(ROLE_COMMON)
def redeem():
    key = (field(json_object(), "key", str, default="") or "").strip()
    if not key:
        raise ApiError("key is required")
    try:
        return ok(ledger.redeem(caller().id, key))
    except ledger.LedgerError as error:
        raise ApiError(str(error)) from None


@bp.post("/api/topup")
@require_role(ROLE_ADMIN)
def admin_top_up():
    body = json_object()
    user_id = field(body, "user_id", int, required=True)
    quota = field(body, "quota", int, required=True)
    remark = field(body, "remark", str, default="") or f"top-up through the API: {quota}"
    if not 0 < quota <= MAX_BALANCE:
        raise ApiError(f"quota must be from 1 to {MAX_BALANCE}")
    target = db.session.get(User, user_id)
    if target is None:
        raise ApiError("user not found", 404)
    if caller().role != ROLE_ROOT and target.role >= caller().role:
        raise ApiError("permission denied: the user's role is not below yours", 403)
    try:
        if not ledger.top_up(user_id, quota, remark):
            raise ApiError("user not found", 404)
    except ledger.LedgerError as error:
        raise ApiError(str(error)) from None
    return ok()
