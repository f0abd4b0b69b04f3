import secrets
import string
import time

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from oneapi.extensions import db
from oneapi.models.user import hash_secret

TOKEN_ENABLED, TOKEN_DISABLED, TOKEN_EXPIRED, TOKEN_EXHAUSTED = 1, 2, 3, 4
_ALPHANUMERIC = string.ascii_letters + string.digits


def generate_key():
    """48 characters from [0-9a-zA-Z], like the original's keys; never a '-', which pins a channel."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(48))


def mask_key(key):
    return key[:4] + "*" * 8 + key[-4:]


class Token(db.Model):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    # The key is never stored: its SHA-256 finds the row, the hint ("abcd********wxyz") is what listings show.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_hint: Mapped[str] = mapped_column(String(16), default="")
    status: Mapped[int] = mapped_column(Integer, default=TOKEN_ENABLED)
    name: Mapped[str] = mapped_column(String(64), index=True, default="")
    created_time: Mapped[int] = mapped_column(BigInteger, default=lambda: int(time.time()))
    accessed_time: Mapped[int] = mapped_column(BigInteger, default=lambda: int(time.time()))
    expired_time: Mapped[int] = mapped_column(BigInteger, default=-1)
    remain_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    unlimited_quota: Mapped[bool] = mapped_column(default=False)
    used_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    models: Mapped[str | None] = mapped_column(Text, default=None)
    subnet: Mapped[str] = mapped_column(String(1024), default="")
    remain_times: Mapped[int] = mapped_column(BigInteger, default=-1, server_default="-1")  # uses left; -1 = unlimited
    rpm_limit: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # requests per minute; 0 = none

    def set_key(self, key):
        self.key_hash = hash_secret(key)
        self.key_hint = mask_key(key)

    def to_dict(self, key=None):
        """`key` is the full key only in the response that creates it; otherwise the masked hint."""
        return {
            "id": self.id, "user_id": self.user_id, "key": key if key is not None else self.key_hint,
            "status": self.status, "name": self.name, "created_time": self.created_time,
            "accessed_time": self.accessed_time, "expired_time": self.expired_time,
            "remain_quota": self.remain_quota, "unlimited_quota": self.unlimited_quota,
            "used_quota": self.used_quota, "models": self.models or "", "subnet": self.subnet,
            "remain_times": self.remain_times, "rpm_limit": self.rpm_limit,
        }


class QuotaReservation(db.Model):
    """Quota held for one relay request until it settles. Deleting the row is what makes settlement
    happen exactly once per request id; a row left behind by a crash is refunded by a sweep."""

    __tablename__ = "quota_reservations"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    token_id: Mapped[int] = mapped_column(Integer)
    token_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    token_uses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # 1: one use of the token taken
    user_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger, index=True)
