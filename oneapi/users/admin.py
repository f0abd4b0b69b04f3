"""Managing users (spec §1.3 /api/user, admin): an admin acts only on users below its role; only root
promotes, demotes or manages admins."""

from flask import request
from sqlalchemy import or_, select

from oneapi.auth.guards import caller, require_role
from oneapi.envelope import MAX_BALANCE, ApiError, field, json_object, keyword_id, ok, page, starts_with
from oneapi.extensions import db
from oneapi.models import User
from oneapi.models.user import ROLE_ADMIN, ROLE_COMMON, ROLE_ROOT, STATUS_DELETED, STATUS_DISABLED, STATUS_ENABLED
from oneapi.services import accounts, cache, options, routing
from oneapi.services import users as user_service
from oneapi.users import bp
from oneapi.users.routes import validate_password

MAX_SEARCH = 100
_ORDERS = {"quota": User.quota.desc(), "used_quota": User.used_quota.desc(), "request_count": User.request_count.desc()}


def _managed_user(user_id):
    user = db.session.get(User, user_id)
    if user is None or user.status == STATUS_DELETED:
        raise ApiError("user not found", 404)
    if not user_service.can_manage(caller(), user):
        raise ApiError("permission denied: that user's role is not below yours", 403)
    return user


def _user_error(error):
    return ApiError(str(error))


@bp.get("/api/user/")
@require_role(ROLE_ADMIN)
def list_users():
    offset, limit = page()
    order = _ORDERS.get(request.args.get("order", ""))
    query = select(User).where(User.status != STATUS_DELETED)
    query = query.order_by(*((order,) if order is not None else ()), User.id.desc()).offset(offset).limit(limit)
    return ok([u.to_dict() for u in db.session.scalars(query)])


@bp.get("/api/user/search")
@require_role(ROLE_ADMIN)
def search_users():
    keyword = request.args.get("keyword", "").strip()
    clauses = [starts_with(User.username, keyword), starts_with(User.email, keyword),
               starts_with(User.display_name, keyword)]
    if keyword_id(keyword) is not None:
        clauses.append(User.id == keyword_id(keyword))
    rows = db.session.scalars(select(User).where(User.status != STATUS_DELETED, or_(*clauses))
                              .order_by(User.id.desc()).limit(MAX_SEARCH))
    return ok([u.to_dict() for u in rows])


@bp.get("/api/user/<int:user_id>")
@require_role(ROLE_ADMIN)
def get_user(user_id):
    return ok(_managed_user(user_id).to_dict())


@bp.post("/api/user/")
@require_role(ROLE_ADMIN)
def create_user():
    body = json_object()
    role = field(body, "role", int, default=ROLE_COMMON)
    if role >= caller().role and caller().role != ROLE_ROOT:
        raise ApiError("you can only create users below your role", 403)
    password = field(body, "password", str, required=True)
    validate_password(password)
    display_name = field(body, "display_name", str, default="")
    if len(display_name) > user_service.DISPLAY_NAME_MAX:
        raise ApiError(f"display_name must be at most {user_service.DISPLAY_NAME_MAX} characters")
    try:
        user = user_service.create(field(body, "username", str, required=True), password, display_name=display_name)
    except user_service.UserError as error:
        raise _user_error(error) from None
    return ok(user.to_dict())


@bp.put("/api/user/")
@require_role(ROLE_ADMIN)
def update_user():
    body = json_object()
    user = _managed_user(field(body, "id", int, required=True))
    actor = caller()
    username = field(body, "username", str)
    if username is not None and username != user.username:
        try:
            username = user_service.validate_username(username)
        except user_service.UserError as error:
            raise _user_error(error) from None
        if user_service.username_taken(username, user.id):
            raise ApiError("that username is taken")
        user.username = username
    display_name = field(body, "display_name", str)
    if display_name is not None:
        if len(display_name) > user_service.DISPLAY_NAME_MAX:
            raise ApiError(f"display_name must be at most {user_service.DISPLAY_NAME_MAX} characters")
        user.display_name = display_name
    password = field(body, "password", str)
    if password:
        validate_password(password)
        user.set_password(password)
    email = field(body, "email", str)
    if email is not None:
        if len(email) > user_service.EMAIL_MAX:
            raise ApiError(f"email must be at most {user_service.EMAIL_MAX} characters")
        user.email = email
    group = field(body, "group", str)
    if group is not None:
        if not 1 <= len(group) <= 32:
            raise ApiError("group must be 1 to 32 characters")
        user.group = group
    role = field(body, "role", int)
    if role is not None and role != user.role:
        if actor.role != ROLE_ROOT:
            raise ApiError("only root changes roles", 403)
        if user.role == ROLE_ROOT:
            raise ApiError("root cannot be demoted")
        if role not in (ROLE_COMMON, ROLE_ADMIN):
            raise ApiError("role must be 1 (common) or 10 (admin)")
        if role != user.role:
            user.role = role
            user.end_sessions()  # a role change ends the sessions, and changing it back revives none
    status = field(body, "status", int)
    if status is not None and status != user.status:
        if status not in (STATUS_ENABLED, STATUS_DISABLED):
            raise ApiError("status must be 1 (enabled) or 2 (disabled)")
        if user.role == ROLE_ROOT:
            raise ApiError("root cannot be disabled")
        user.status = status
        if status == STATUS_DISABLED:
            user.end_sessions()
    quota = field(body, "quota", int)
    if quota is not None:
        if not 0 <= quota <= MAX_BALANCE:
            raise ApiError(f"quota must be from 0 to {MAX_BALANCE}")
        user_service.set_quota(user, quota, actor)
    cache.publish(accounts.user_topic(user.id))
    db.session.commit()
    db.session.refresh(user)
    return ok(user.to_dict())


@bp.post("/api/user/manage")
@require_role(ROLE_ADMIN)
def manage_user():
    body = json_object()
    username = field(body, "username", str, required=True)
    action = field(body, "action", str, required=True)
    user = db.session.scalar(select(User).where(User.username == username, User.status != STATUS_DELETED))
    if user is None:
        raise ApiError("user not found", 404)
    actor = caller()
    if not user_service.can_manage(actor, user):
        raise ApiError("permission denied: that user's role is not below yours", 403)
    if action in ("disable", "delete", "demote") and user.role == ROLE_ROOT:
        raise ApiError(f"root cannot be {action}d" if action != "demote" else "root cannot be demoted")
    if action in ("promote", "demote") and actor.role != ROLE_ROOT:
        raise ApiError("only root promotes and demotes", 403)
    if action == "disable":
        user.status = STATUS_DISABLED
        user.end_sessions()
    elif action == "enable":
        user.status = STATUS_ENABLED
    elif action == "delete":
        user_service.soft_delete(user)
    elif action == "promote":
        if user.role >= ROLE_ADMIN:
            raise ApiError("this user is already an admin")
        user.role = ROLE_ADMIN
        user.end_sessions()
    elif action == "demote":
        if user.role == ROLE_COMMON:
            raise ApiError("this user is already a common user")
        user.role = ROLE_COMMON
        user.end_sessions()
    else:
        raise ApiError("action must be disable, enable, delete, promote or demote")
    cache.publish(accounts.user_topic(user.id))
    db.session.commit()
    return ok({"role": user.role, "status": user.status})


@bp.delete("/api/user/<int:user_id>")
@require_role(ROLE_ADMIN)
def delete_user(user_id):
    user = _managed_user(user_id)
    if user.role == ROLE_ROOT:
        raise ApiError("root cannot be deleted")
    user_service.soft_delete(user)
    db.session.commit()
    return ok()


@bp.delete("/api/user/self")
@require_role(ROLE_COMMON)
def delete_self():
    user = caller()
    if user.role == ROLE_ROOT:
        raise ApiError("root cannot delete itself")
    user_service.soft_delete(user)
    db.session.commit()
    return ok()


@bp.get("/api/user/aff")
@require_role(ROLE_COMMON)
def invitation_code():
    user = caller()
    if not user.aff_code:
        for _ in range(5):
            code = user.new_aff_code()
            if not db.session.scalar(select(User.id).where(User.aff_code == code)):
                break
        db.session.commit()
    return ok(user.aff_code)


@bp.get("/api/user/available_models")
@require_role(ROLE_COMMON)
def available_models():
    return ok(routing.table().models(caller().group))


@bp.get("/api/group/")
@require_role(ROLE_ADMIN)
def groups():
    return ok(sorted(options.current().json("GroupRatio")))
