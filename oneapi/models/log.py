import time
from enum import IntEnum

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from oneapi.extensions import db

# The bind key of the log database (LOG_SQL_DSN). Without one, the key is an alias of the main engine
# (services/logbook.attach), so everything below behaves as if there were one database.
LOG_BIND = "logs"


class LogType(IntEnum):
    UNKNOWN = 0
    TOPUP = 1
    CONSUME = 2
    MANAGE = 3
    SYSTEM = 4
    TEST = 5


class Log(db.Model):
    __bind_key__ = LOG_BIND
    __tablename__ = "logs"
    __table_args__ = (
        Index("idx_created_at_type", "created_at", "type"),
        Index("index_username_model_name", "model_name", "username"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger, default=lambda: int(time.time()))
    type: Mapped[int] = mapped_column(Integer, default=0)
    content: Mapped[str] = mapped_column(Text, default="")
    username: Mapped[str] = mapped_column(String(64), default="")
    token_name: Mapped[str] = mapped_column(String(64), index=True, default="")
    model_name: Mapped[str] = mapped_column(String(191), index=True, default="")
    quota: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    channel_id: Mapped[int] = mapped_column(Integer, index=True, default=0)
    request_id: Mapped[str] = mapped_column(String(64), index=True, default="")
    elapsed_time: Mapped[int] = mapped_column(Integer, default=0)  # ms
    is_stream: Mapped[bool] = mapped_column(default=False)
    system_prompt_reset: Mapped[bool] = mapped_column(default=False)
    # Ours: which token (names are not unique), how the request ended, and whether usage was counted locally.
    token_id: Mapped[int] = mapped_column(Integer, index=True, default=0)
    outcome: Mapped[str] = mapped_column(String(16), default="")
    usage_estimated: Mapped[bool] = mapped_column(default=False)

    def to_dict(self):
        return {
            "id": self.id, "user_id": self.user_id, "created_at": self.created_at, "type": self.type,
            "content": self.content, "username": self.username, "token_name": self.token_name,
            "model_name": self.model_name, "quota": self.quota, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "channel": self.channel_id,
            "request_id": self.request_id, "elapsed_time": self.elapsed_time, "is_stream": self.is_stream,
            "system_prompt_reset": self.system_prompt_reset, "token_id": self.token_id,
            "outcome": self.outcome, "usage_estimated": self.usage_estimated,
        }


# The main database has a logs table too (migration 0001): the one in use when LOG_SQL_DSN is empty. Its
# twin in the main metadata keeps it known to the migrations (autogenerate) and to whole-database tools.
Log.__table__.to_metadata(db.metadata)
