"""One relay request's bill: plain values captured before the call, closed exactly once after it."""

import logging
import time
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from oneapi import background
from oneapi.services import quota, ratios

log = logging.getLogger(__name__)
SETTLE_RETRY_PAUSES = (1, 5, 30)  # seconds before each new attempt at a settlement the database refused


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False

    @classmethod
    def from_json(cls, usage):
        """OpenAI's usage object, or None when it is missing or carries no counts."""
        if not isinstance(usage, dict):
            return None
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
        total = usage.get("total_tokens")
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return None
        if prompt == 0 and completion == 0 and not total:
            return None
        if prompt == 0 and isinstance(total, int) and total:
            return None  # the original's case: count the prompt locally instead of trusting a bare total
        return cls(max(prompt, 0), max(completion, 0))


@dataclass
class Bill:
    reservation: quota.Reservation
    group_ratio: object
    is_stream: bool
    token_name: str
    username: str
    prompt_counter: object = None  # counts the prompt exactly, only when the upstream reports no usage
    started: float = field(default_factory=time.monotonic)
    channel_id: int = 0
    channel_type: int = 0
    model: str = ""
    system_prompt_reset: bool = False
    unit: str = "token"
    closed: bool = False

    def local_prompt_tokens(self):
        return self.prompt_counter() if self.prompt_counter else 0

    def attach(self, channel, model, system_prompt_reset):
        """The channel and upstream model of the attempt that is answering."""
        self.channel_id, self.channel_type, self.model = channel.id, channel.type, model
        self.system_prompt_reset = system_prompt_reset

    def try_close(self, usage, outcome, amount=None):
        """close(), never raising into the response: False when the database refused. The settlement is one
        transaction, rolled back whole, so the reservation row is still there and closing again is safe (a row
        already gone, should the refused attempt have committed after all, means done)."""
        request_id = self.reservation.request_id
        try:
            self.close(usage, outcome, amount)
        except SQLAlchemyError as error:
            self.closed = False  # close() marks itself closed first; the reservation row is the guard
            log.warning("request %s: settling failed: %s (%s)", request_id, type(error).__name__,
                        getattr(error, "orig", None) or error)
            return False
        except Exception:
            log.exception("request %s: settling failed; its reservation is left to the stale-reservation refund",
                          request_id)
        return True

    def close_later(self, app, usage, outcome, amount=None):
        """After a refused settlement: retry in the background (1, 5, 30 s). If every attempt fails, the
        reservation stays held until the stale-reservation sweep refunds it (services/scheduler.py)."""

        def retry():
            for pause in SETTLE_RETRY_PAUSES:
                time.sleep(pause)
                with app.app_context():
                    if self.try_close(usage, outcome, amount):
                        return
            log.error("request %s: still unsettled after %d retries; its reservation (%d quota) stays held until the "
                      "stale-reservation refund", self.reservation.request_id, len(SETTLE_RETRY_PAUSES),
                      self.reservation.amount)

        return background.start(retry, name="oneapi-settle-retry")

    def close(self, usage, outcome, amount=None):
        """Charge `usage` by the token formula, or `amount` when the route has its own price, and log it, once.
        `usage` None: nothing billable happened, so the reservation is refunded. Later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        if usage is None:
            quota.refund(self.reservation)
            return
        model_r = ratios.model_ratio(self.model, self.channel_type)
        completion_r = ratios.completion_ratio(self.model, self.channel_type)
        if amount is None:
            amount = ratios.charge(usage.prompt_tokens, usage.completion_tokens, model_r, self.group_ratio, completion_r)
            content = f"model ratio {model_r:g} × group ratio {self.group_ratio:g} × completion ratio {completion_r:g}"
        else:
            content = f"model ratio {model_r:g} × group ratio {self.group_ratio:g}, priced per {self.unit}"
        content += ", usage counted locally" if usage.estimated else ""
        quota.settle(self.reservation, amount, channel_id=self.channel_id, log={
            "username": self.username, "token_name": self.token_name, "model_name": self.model,
            "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "content": content, "elapsed_time": int((time.monotonic() - self.started) * 1000),
            "is_stream": self.is_stream, "system_prompt_reset": self.system_prompt_reset,
            "outcome": outcome, "usage_estimated": usage.estimated,
        })
