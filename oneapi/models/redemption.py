import time

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from oneapi.extensions import db

REDEMPTION_ENABLED, REDEMPTION_DISABLED, REDEMPTION_USED = 1, 2, 3


class Redemption(db.Model):
    __tablename__ = "redemptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, default=0)  # the admin who created it
    key: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[int] = mapped_column(Integer, default=REDEMPTION_ENABLED)
    name: Mapped[str] = mapped_column(String(64), index=True, default="")
    quota: Mapped[int] = mapped_column(BigInteger, default=100)
    created_time: Mapped[int] = mapped_column(BigInteger, default=lambda: int(time.time()))
    redeemed_time: Mapped[int] = mapped_column(BigInteger, default=0)
    redeemed_by: Mapped[int] = mapped_column(Integer, default=0)  # ours: the user who redeemed it

    def to_dict(self):
        return {"id": self.id, "user_id": self.user_id, "key": self.key, "status": self.status, "name": self.name,
                "quota": self.quota, "created_time": self.created_time, "redeemed_time": self.redeemed_time,
                "redeemed_by": self.redeemed_by}
