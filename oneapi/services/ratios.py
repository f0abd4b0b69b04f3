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

# $ per 1M input tokens / 2. The billing issue brings this table up to date; these are the spec's values.
DEFAULT_MODEL_RATIO = {
    "gpt-3.5-turbo": 0.25, "gpt-3.5-turbo-0125": 0.25, "gpt-3.5-turbo-1106": 0.5, "gpt-3.5-turbo-instruct": 0.75,
    "gpt-4": 15, "gpt-4-32k": 30, "gpt-4-turbo": 5, "gpt-4-turbo-2024-04-09": 5,
    "gpt-4o": 2.5, "gpt-4o-2024-05-13": 2.5, "gpt-4o-2024-08-06": 1.25, "gpt-4o-2024-11-20": 1.25,
    "chatgpt-4o-latest": 2.5, "gpt-4o-mini": 0.075, "gpt-4o-mini-2024-07-18": 0.075,
    "gpt-4.1": 1, "gpt-4.1-mini": 0.2, "gpt-4.1-nano": 0.05,
    "o1": 7.5, "o1-mini": 1.5, "o3-mini": 0.55, "o3": 1, "o4-mini": 0.55,
    "text-embedding-ada-002": 0.05, "text-embedding-3-small": 0.01, "text-embedding-3-large": 0.065,
    "text-moderation-latest": 0.1, "text-moderation-stable": 0.1, "omni-moderation-latest": 0.1,
    "whisper-1": 15, "tts-1": 7.5, "tts-1-hd": 15, "dall-e-2": 10, "dall-e-3": 20,
    "claude-3-haiku-20240307": 0.125, "claude-3-5-sonnet-20241022": 1.5, "claude-3-opus-20240229": 7.5,
    "gemini-1.5-pro": 0.625, "gemini-1.5-flash": 0.0375, "gemini-2.0-flash": 0.075,
    "deepseek-chat": 0.07, "deepseek-reasoner": 0.275,
}
DEFAULT_COMPLETION_RATIO = {"deepseek-chat": 2, "deepseek-reasoner": 3.98, "whisper-1": 0}
UNKNOWN_MODEL_RATIO = 30  # the original's fallback for a model nobody priced


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
        log.error("model %r has no ratio; charging the default ratio %s", name, UNKNOWN_MODEL_RATIO)
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
