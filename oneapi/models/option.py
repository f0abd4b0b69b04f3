from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from oneapi.extensions import db


class Option(db.Model):
    __tablename__ = "options"

    key: Mapped[str] = mapped_column(String(191), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")


class CacheEvent(db.Model):
    """A change that cached copies must drop ("token:5", "user:2", "channels", "options").

    Every worker of every node polls the rows newer than the last it saw, about once a second,
    so a change made anywhere applies everywhere without a database read per request.
    """

    __tablename__ = "cache_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger, index=True)
