import hashlib
import secrets
import string
import time

import bcrypt
from flask import current_app, has_app_context
from flask_login import UserMixin
from sqlalchemy import BigInteger, Integer, String
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column

from oneapi import offload
from oneapi.extensions import db

ROLE_GUEST, ROLE_COMMON, ROLE_ADMIN, ROLE_ROOT = 0, 1, 10, 100
STATUS_ENABLED, STATUS_DISABLED, STATUS_DELETED = 1, 2, 3
BCRYPT_ROUNDS = 12


def hash_password(password):
    rounds = current_app.config.get("BCRYPT_ROUNDS", BCRYPT_ROUNDS) if has_app_context() else BCRYPT_ROUNDS
    return offload.run(bcrypt.hashpw, password.encode(), bcrypt.gensalt(rounds)).decode()


def check_password(hashed, password):
    """bcrypt, as the original stores it, so imported password hashes keep working."""
    try:
        return offload.run(bcrypt.checkpw, password.encode(), hashed.encode())
    except ValueError:
        return False


def hash_secret(value):
    """Access tokens and API keys are long random strings: a plain SHA-256 is the right lookup hash."""
    return hashlib.sha256(value.encode()).hexdigest()


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(64), index=True, default="")
    role: Mapped[int] = mapped_column(Integer, default=ROLE_COMMON)
    status: Mapped[int] = mapped_column(Integer, default=STATUS_ENABLED)
    email: Mapped[str] = mapped_column(String(64), index=True, default="")
    github_id: Mapped[str] = mapped_column(String(191), index=True, default="")
    wechat_id: Mapped[str] = mapped_column(String(191), index=True, default="")
    lark_id: Mapped[str] = mapped_column(String(191), index=True, default="")
    oidc_id: Mapped[str] = mapped_column(String(191), index=True, default="")
    # SHA-256 of the management access token; the token itself is shown once, when it is made.
    access_token: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    quota: Mapped[int] = mapped_column(BigInteger, default=0)
    used_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    request_count: Mapped[int] = mapped_column(Integer, default=0)
    group: Mapped[str] = mapped_column(String(32), default="default")
    aff_code: Mapped[str | None] = mapped_column(String(32), unique=True, default=None)
    inviter_id: Mapped[int] = mapped_column(Integer, index=True, default=0)
    # Ours: set for root's well-known first password; cleared when the password changes.
    must_change_password: Mapped[bool] = mapped_column(default=False)
    # Ours: raised when the user is disabled, so re-enabling does not bring old sessions back.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Ours: the low-quota mail was sent and the balance has not been above QuotaRemindThreshold since.
    quota_reminded: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    created_time: Mapped[int] = mapped_column(BigInteger, default=lambda: int(time.time()))

    def set_password(self, password):
        self.password = hash_password(password)

    def check_password(self, password):
        return check_password(self.password, password)

    @property
    def has_password(self):
        """False for accounts made by a third-party login, until their owner sets a password."""
        return (self.password or "").startswith("$2")

    def session_stamp(self):
        """Kept in the session at login: a different password, role or status ends every older session."""
        return hash_secret(f"{self.id}|{self.password}|{self.role}|{self.status}|{self.session_version}")[:24]

    def end_sessions(self):
        self.session_version = (self.session_version or 0) + 1

    def new_access_token(self):
        token = secrets.token_hex(16)
        self.access_token = hash_secret(token)
        return token

    def new_aff_code(self):
        self.aff_code = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(4))
        return self.aff_code

    def to_dict(self):
        """The original's user JSON, minus the two secrets (spec §12.2): they come back empty."""
        return {
            "id": self.id, "username": self.username, "password": "", "display_name": self.display_name,
            "role": self.role, "status": self.status, "email": self.email, "github_id": self.github_id,
            "wechat_id": self.wechat_id, "lark_id": self.lark_id, "oidc_id": self.oidc_id,
            "verification_code": "", "access_token": "", "quota": self.quota, "used_quota": self.used_quota,
            "request_count": self.request_count, "group": self.group, "aff_code": self.aff_code or "",
            "inviter_id": self.inviter_id,
        }
