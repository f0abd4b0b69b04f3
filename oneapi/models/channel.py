import json
import time

from sqlalchemy import BigInteger, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from oneapi.extensions import db

CHANNEL_UNKNOWN, CHANNEL_ENABLED, CHANNEL_MANUALLY_DISABLED, CHANNEL_AUTO_DISABLED = 0, 1, 2, 3


def split_list(value):
    """Comma-separated lists (models, groups): trimmed, empties dropped, order kept, duplicates removed."""
    seen = []
    for item in (value or "").split(","):
        item = item.strip()
        if item and item not in seen:
            seen.append(item)
    return seen


class Channel(db.Model):
    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[int] = mapped_column(Integer, default=0)
    key: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[int] = mapped_column(Integer, default=CHANNEL_ENABLED)
    name: Mapped[str] = mapped_column(String(191), index=True, default="")
    weight: Mapped[int] = mapped_column(Integer, default=0)
    created_time: Mapped[int] = mapped_column(BigInteger, default=lambda: int(time.time()))
    test_time: Mapped[int] = mapped_column(BigInteger, default=0)
    response_time: Mapped[int] = mapped_column(Integer, default=0)
    base_url: Mapped[str] = mapped_column(String(1024), default="")
    other: Mapped[str] = mapped_column(Text, default="")
    balance: Mapped[float] = mapped_column(Float, default=0)
    balance_updated_time: Mapped[int] = mapped_column(BigInteger, default=0)
    models: Mapped[str] = mapped_column(Text, default="")
    group: Mapped[str] = mapped_column(String(255), default="default")
    used_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    model_mapping: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[int] = mapped_column(BigInteger, default=0)
    config: Mapped[str] = mapped_column(Text, default="")
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    # Why and when the status last changed: "disabled automatically: the upstream refused the key (401)".
    status_reason: Mapped[str] = mapped_column(String(255), default="", server_default="")
    status_time: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    def model_list(self):
        return split_list(self.models)

    def group_list(self):
        return split_list(self.group)

    def mapping(self):
        try:
            value = json.loads(self.model_mapping or "{}")
        except ValueError:
            return {}
        return {k: v for k, v in value.items() if isinstance(v, str) and v} if isinstance(value, dict) else {}

    def config_dict(self):
        try:
            value = json.loads(self.config or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def abilities(self):
        """One row per (group, model) this channel serves (spec §2.4)."""
        return [
            Ability(group=group, model=model, channel_id=self.id, enabled=self.status == CHANNEL_ENABLED,
                    priority=self.priority or 0)
            for group in self.group_list() for model in self.model_list()
        ]

    def to_dict(self):
        """Never includes the key (spec §12.6)."""
        return {
            "id": self.id, "type": self.type, "key": "", "status": self.status, "name": self.name,
            "weight": self.weight, "created_time": self.created_time, "test_time": self.test_time,
            "response_time": self.response_time, "base_url": self.base_url, "other": self.other,
            "balance": self.balance, "balance_updated_time": self.balance_updated_time, "models": self.models,
            "group": self.group, "used_quota": self.used_quota, "model_mapping": self.model_mapping,
            "priority": self.priority, "config": self.config, "system_prompt": self.system_prompt,
            "status_reason": self.status_reason, "status_time": self.status_time,
        }


class Ability(db.Model):
    """The routing table, derived from channels: (group, model) → channel."""

    __tablename__ = "abilities"

    group: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(191), primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    priority: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
