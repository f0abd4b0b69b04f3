"""Channel routing (spec §5.3): abilities (group × model) → highest priority tier → weighted random.

The table is built from the database once and cached until a channel changes (topic "channels").
Within a tier a channel is picked with probability weight / sum of weights; a tier whose weights are
all 0 (the original's default) is picked from uniformly. Retries exclude the channels already tried,
so they fall to the rest of the same tier first, then to lower tiers.
"""

import random
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlalchemy import select

from oneapi.extensions import db
from oneapi.models import Ability, Channel
from oneapi.models.channel import CHANNEL_ENABLED
from oneapi.services import cache


@dataclass(frozen=True)
class ChannelInfo:
    """Plain values of one channel: safe to hold in a stream after the request's session is gone."""

    id: int
    type: int
    name: str
    key: str
    status: int
    base_url: str
    priority: int
    weight: int
    models: tuple
    model_mapping: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    config: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    system_prompt: str = ""
    other: str = ""

    @classmethod
    def from_row(cls, row):
        return cls(
            id=row.id, type=row.type, name=row.name, key=row.key, status=row.status, base_url=row.base_url or "",
            priority=row.priority or 0, weight=row.weight or 0, models=tuple(row.model_list()),
            model_mapping=MappingProxyType(row.mapping()), config=MappingProxyType(row.config_dict()),
            system_prompt=row.system_prompt or "", other=row.other or "",
        )


class RoutingTable:
    def __init__(self, channels, routes):
        self.channels = channels  # id → ChannelInfo, every channel whatever its status
        self.routes = routes  # (group, model) → [ChannelInfo], enabled only, highest priority first

    def channel(self, channel_id):
        return self.channels.get(channel_id)

    def has_route(self, group, model):
        return bool(self.routes.get((group, model)))

    def models(self, group):
        return sorted({model for (g, model), chans in self.routes.items() if g == group and chans})

    def pick(self, group, model, exclude=()):
        candidates = [c for c in self.routes.get((group, model), ()) if c.id not in exclude]
        if not candidates:
            return None
        top = candidates[0].priority
        tier = [c for c in candidates if c.priority == top]
        weights = [max(c.weight, 0) for c in tier]
        if not any(weights):
            return random.choice(tier)
        return random.choices(tier, weights=weights)[0]


def _build():
    channels = {row.id: ChannelInfo.from_row(row) for row in db.session.scalars(select(Channel))}
    routes = {}
    for ability in db.session.scalars(select(Ability).where(Ability.enabled.is_(True))):
        channel = channels.get(ability.channel_id)
        if channel is not None and channel.status == CHANNEL_ENABLED:
            routes.setdefault((ability.group, ability.model), []).append(channel)
    for chans in routes.values():
        chans.sort(key=lambda c: (-c.priority, c.id))
    return RoutingTable(channels, routes)


def table():
    return cache.get("channels", _build)
