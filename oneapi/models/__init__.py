"""The data model of spec §2, as typed SQLAlchemy 2.0 models. Times are unix seconds."""

from oneapi.models.channel import Ability, Channel
from oneapi.models.log import Log, LogType
from oneapi.models.option import CacheEvent, Option
from oneapi.models.redemption import Redemption
from oneapi.models.token import QuotaReservation, Token
from oneapi.models.user import User
from oneapi.models.verification import VerificationCode

__all__ = ["Ability", "CacheEvent", "Channel", "Log", "LogType", "Option", "QuotaReservation", "Redemption", "Token", "User",
           "VerificationCode"]
