"""Price ratios and the charge formula (spec §4).

Quota is an integer; 500,000 quota = US$1; model ratio 1 = $0.002 per 1K tokens, i.e. ratio = $ per 1M
input tokens / 2. Arithmetic is decimal, never binary floating point: 1000 tokens at ratio 0.075 must
cost exactly 75, not ceil(75.00000000000001) = 76.
"""

import logging
import math
from decimal import Decimal

from oneapi.services import options

log = logging.getLogger(__name__)

# Model ratio = US$ per 1M input tokens ÷ 2 (list prices, late 2025). Completion ratio = output price ÷ input
# price. A saved ModelRatio / CompletionRatio option is merged over these; "name(channel type)" keys win.
_PRICES = {  # model: ($ per 1M input, $ per 1M output)
    "gpt-3.5-turbo": (0.5, 1.5), "gpt-3.5-turbo-0125": (0.5, 1.5), "gpt-3.5-turbo-1106": (1, 2),
    "gpt-3.5-turbo-instruct": (1.5, 2),
    "gpt-4": (30, 60), "gpt-4-32k": (60, 120), "gpt-4-turbo": (10, 30), "gpt-4-turbo-2024-04-09": (10, 30),
    "gpt-4o": (2.5, 10), "gpt-4o-2024-05-13": (5, 15), "gpt-4o-2024-08-06": (2.5, 10), "gpt-4o-2024-11-20": (2.5, 10),
    "chatgpt-4o-latest": (5, 15), "gpt-4o-mini": (0.15, 0.6), "gpt-4o-mini-2024-07-18": (0.15, 0.6),
    "gpt-4.1": (2, 8), "gpt-4.1-mini": (0.4, 1.6), "gpt-4.1-nano": (0.1, 0.4),
    "gpt-5": (1.25, 10), "gpt-5-mini": (0.25, 2), "gpt-5-nano": (0.05, 0.4), "gpt-5-chat-latest": (1.25, 10),
    "o1": (15, 60), "o1-mini": (1.1, 4.4), "o3": (2, 8), "o3-mini": (1.1, 4.4), "o4-mini": (1.1, 4.4),
    "text-embedding-ada-002": (0.1, 0), "text-embedding-3-small": (0.02, 0), "text-embedding-3-large": (0.13, 0),
    "claude-3-haiku-20240307": (0.25, 1.25), "claude-3-5-haiku-20241022": (0.8, 4),
    "claude-3-5-sonnet-20240620": (3, 15), "claude-3-5-sonnet-20241022": (3, 15), "claude-3-7-sonnet-20250219": (3, 15),
    "claude-sonnet-4-20250514": (3, 15), "claude-sonnet-4-5": (3, 15), "claude-3-opus-20240229": (15, 75),
    "claude-opus-4-20250514": (15, 75), "claude-opus-4-1": (15, 75), "claude-haiku-4-5": (1, 5),
    "gemini-1.5-pro": (1.25, 5), "gemini-1.5-flash": (0.075, 0.3), "gemini-2.0-flash": (0.1, 0.4),
    "gemini-2.0-flash-lite": (0.075, 0.3), "gemini-2.5-pro": (1.25, 10), "gemini-2.5-flash": (0.3, 2.5),
    "gemini-2.5-flash-lite": (0.1, 0.4),
    "deepseek-chat": (0.27, 1.1), "deepseek-reasoner": (0.55, 2.19),
    "mistral-large-latest": (2, 6), "mistral-small-latest": (0.2, 0.6), "grok-3": (3, 15), "grok-3-mini": (0.3, 0.5),
}
# Priced per request kind rather than per token (routes/costs.py applies them).
_OTHER_RATIOS = {
    "text-moderation-latest": 0.1, "text-moderation-stable": 0.1, "omni-moderation-latest": 0.1,
    "whisper-1": 15, "tts-1": 7.5, "tts-1-hd": 15, "dall-e-2": 10, "dall-e-3": 20,
}
DEFAULT_MODEL_RATIO = {**{m: Decimal(str(i)) / 2 for m, (i, _) in _PRICES.items()},
                       **{m: Decimal(str(r)) for m, r in _OTHER_RATIOS.items()}}
DEFAULT_COMPLETION_RATIO = {
    **{m: (Decimal(str(o)) / Decimal(str(i))).quantize(Decimal("0.0001")) for m, (i, o) in _PRICES.items() if o},
    "whisper-1": 0,
}
UNKNOWN_MODEL_RATIO = 30  # the original's fallback for a model nobody priced
_WARNED = set()  # unpriced models already logged by this process: once each, not once per request


def _lookup(table_key, defaults, name, channel_type):
    saved = options.current().json(table_key)
    for key in (f"{name}({channel_type})", name):
        if key in saved:
            return Decimal(str(saved[key]))
        if key in defaults:
            return Decimal(str(defaults[key]))
    return None


def model_ratio(name, channel_type=0):
    if name.endswith("-internet") and name.startswith(("qwen-", "command-")):
        name = name[: -len("-internet")]
    ratio = _lookup("ModelRatio", DEFAULT_MODEL_RATIO, name, channel_type)
    if ratio is None:
        if name not in _WARNED and len(_WARNED) < 10000:
            _WARNED.add(name)
            log.error("model %r has no ratio; charging the default ratio %s (logged once per worker; set "
                      "ModelRatio)", name, UNKNOWN_MODEL_RATIO)
        return Decimal(UNKNOWN_MODEL_RATIO)
    return ratio


def completion_ratio(name, channel_type=0):
    ratio = _lookup("CompletionRatio", DEFAULT_COMPLETION_RATIO, name, channel_type)
    if ratio is not None:
        return ratio
    return Decimal(str(_builtin_completion_ratio(name)))


def _builtin_completion_ratio(name):
    if name.startswith("gpt-3.5"):
        if name == "gpt-3.5-turbo" or name.endswith("0125"):
            return 3
        return 2 if name.endswith("1106") else Decimal(4) / 3
    if name.startswith("gpt-4o"):
        return 3 if name == "gpt-4o-2024-05-13" else 4
    if name.startswith("gpt-4.1"):
        return 4
    if name.startswith("gpt-4-turbo") or name.endswith("preview"):
        return 3
    if name.startswith("gpt-4"):
        return 2
    if name.startswith(("o1", "o3", "o4")):
        return 4
    if name == "chatgpt-4o-latest":
        return 3
    if name.startswith("claude-3"):
        return 5
    if name.startswith("claude-"):
        return 3
    if name.startswith(("mistral-", "gemini-")):
        return 3
    if name.startswith("deepseek-"):
        return 2
    return 1


def group_ratio(group):
    table = options.current().json("GroupRatio")
    if group not in table:
        log.error("group %r has no ratio; using 1", group)
        return Decimal(1)
    return Decimal(str(table[group]))


def charge(prompt_tokens, completion_tokens, model_r, group_r, completion_r):
    """quota = ceil((prompt + completion × completion ratio) × model ratio × group ratio), spec §4.3."""
    if prompt_tokens + completion_tokens == 0:
        return 0
    ratio = model_r * group_r
    quota = math.ceil((prompt_tokens + completion_tokens * completion_r) * ratio)
    return max(quota, 1) if ratio != 0 else 0


def estimate(prompt_tokens, max_tokens, model_r, group_r, completion_r):
    """What to reserve before the call. With max_tokens it is the true ceiling of the charge; without
    one, the original's estimate: PreConsumedQuota extra tokens at the input price."""
    if max_tokens:
        return charge(prompt_tokens, max_tokens, model_r, group_r, completion_r)
    extra = options.current().int("PreConsumedQuota")
    return charge(prompt_tokens + extra, 0, model_r, group_r, completion_r)
