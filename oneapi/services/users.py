"""Creating, changing and removing users, shared by the admin API, registration and OAuth sign-ups."""

import time
import uuid

from sqlalchemy import select, update

from oneapi.extensions import db
from oneapi.models import Log, LogType, Token, User
from oneapi.models.token import generate_key
from oneapi.models.user import ROLE_COMMON, ROLE_ROOT, STATUS_DELETED
from oneapi.services import accounts, cache, options

USERNAME_MAX, DISPLAY_NAME_MAX, EMAIL_MAX = 12, 20, 50
UNUSABLE_PASSWORD = "!"  # not a bcrypt hash: no password matches it


class UserError(Exception):
    pass


def can_manage(actor, target):
    """Root manages anyone; otherwise only users of a lower role (spec §1.3)."""
    return actor.role == ROLE_ROOT or actor.role > target.role


def validate_username(username, max_length=USERNAME_MAX):
    if not isinstance(username, str) or not 1 <= len(username.strip()) <= max_length:
        raise UserError(f"username must be 1 to {max_length} characters")
    if username.startswith("deleted_"):
        raise UserError("usernames starting with deleted_ are reserved")
    return username.strip()


def username_taken(username, except_id=None):
    query = select(User.id).where(User.username == username)
    if except_id is not None:
        query = query.where(User.id != except_id)
    return db.session.scalar(query) is not None


def create(username, password, *, display_name="", role=ROLE_COMMON, email="", inviter_id=0, identity=None,
           max_username=USERNAME_MAX):
    """A new user with the new-user quota and a default token, as the original does; committed.

    Third-party sign-ups pass `identity` ({"github_id": ...}) and no password: the account then has an
    unusable password until its owner sets one. Their generated names (github_<id>) may exceed 12 characters."""
    username = validate_username(username, max_username)
    if username_taken(username):
        raise UserError("that username is taken")
    user = User(username=username, display_name=display_name or username, role=role, email=email,
                inviter_id=inviter_id, quota=0, **(identity or {}))
    if password is None:
        user.password = UNUSABLE_PASSWORD
    else:
        user.set_password(password)
    for _ in range(5):  # the invitation code, made now so reading it later (GET /api/user/aff) changes nothing
        if not db.session.scalar(select(User.id).where(User.aff_code == user.new_aff_code())):
            break
    db.session.add(user)
    db.session.flush()
    token = Token(user_id=user.id, name="default", unlimited_quota=True, expired_time=-1, remain_quota=0)
    token.set_key(generate_key())  # never shown: the owner makes a new key for it when wanted
    db.session.add(token)
    gift = options.current().int("QuotaForNewUser")
    if gift > 0:
        user.quota = gift
        db.session.add(Log(type=LogType.SYSTEM, user_id=user.id, username=username, quota=gift,
                           content=f"new user gift: {gift} quota", created_at=int(time.time())))
    db.session.commit()
    return user


def set_quota(user, new_quota, actor):
    """An admin setting a balance: applied as a relative change, so relay charges made meanwhile are kept,
    and logged as a manage row."""
    old = user.quota
    delta = new_quota - old
    if delta == 0:
        return
    db.session.execute(update(User).where(User.id == user.id).values(quota=User.quota + delta),
                       execution_options={"synchronize_session": False})
    db.session.add(Log(type=LogType.MANAGE, user_id=user.id, username=user.username, quota=delta,
                       content=f"{actor.username} changed the quota from {old} to {new_quota}",
                       created_at=int(time.time())))


def soft_delete(user):
    """The original's soft delete: the name is freed, the row kept for the ledger, every token stops."""
    user.username = f"deleted_{uuid.uuid4().hex}"
    user.status = STATUS_DELETED
    user.access_token = None
    cache.publish(accounts.user_topic(user.id))
