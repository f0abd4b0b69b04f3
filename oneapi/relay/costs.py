"""What images, speech and transcripts cost (spec §4.4, §4.5), with the model ratio always applied.

Text requests are billed from token usage (services/ratios.py); these routes are billed by what they
produce: images by count, size and quality; speech by input characters; transcripts by their tokens.
"""

import io
import json
import math
from decimal import Decimal

import mutagen

from oneapi.relay.errors import RelayError
from oneapi.services import options, tokenizer

# Price multipliers by size, relative to the model ratio (the original's tables).
IMAGE_SIZE_RATIOS = {
    "dall-e-2": {"256x256": Decimal("1"), "512x512": Decimal("1.125"), "1024x1024": Decimal("1.25")},
    "dall-e-3": {"1024x1024": Decimal("1"), "1024x1792": Decimal("2"), "1792x1024": Decimal("2")},
}
IMAGE_N_RANGE = {"dall-e-2": (1, 10), "dall-e-3": (1, 1)}
IMAGE_PROMPT_LIMIT = {"dall-e-2": 1000, "dall-e-3": 4000}
SPEECH_INPUT_LIMIT = 4096


def _bad(message, code, param=""):
    return RelayError(400, message, code, "invalid_request_error", param)


def _int(value, name, default):
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _bad(f"{name} must be an integer", "invalid_request", name) from None
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise _bad(f"{name} must be an integer", "invalid_request", name)
    return number


def image(model, body, model_r, group_r):
    """Validate an image request and return its exact cost (known before the call)."""
    n = _int(body.get("n"), "n", 1)
    size = body.get("size") or "1024x1024"
    low, high = IMAGE_N_RANGE.get(model, (1, 10))
    if not low <= n <= high:
        raise _bad(f"n must be from {low} to {high} for {model}", "n_not_within_range", "n")
    prompt = body.get("prompt") or ""
    if model in IMAGE_PROMPT_LIMIT and len(prompt) > IMAGE_PROMPT_LIMIT[model]:
        raise _bad(f"the prompt is longer than {IMAGE_PROMPT_LIMIT[model]} characters", "prompt_too_long", "prompt")
    sizes = IMAGE_SIZE_RATIOS.get(model)
    size_r = Decimal(1)
    if sizes is not None:
        if size not in sizes:
            raise _bad(f"size must be one of {', '.join(sizes)} for {model}", "size_not_supported", "size")
        size_r = sizes[size]
    if model == "dall-e-3" and body.get("quality") == "hd":
        size_r *= 2 if size == "1024x1024" else Decimal("1.5")
    return math.ceil(model_r * group_r * size_r * 1000) * n


def speech(body, model_r, group_r):
    text = body.get("input")
    if not isinstance(text, str):
        raise _bad("input must be a string", "invalid_request", "input")
    if len(text) > SPEECH_INPUT_LIMIT:
        raise _bad(f"input is longer than {SPEECH_INPUT_LIMIT} characters", "text_too_long", "input")
    return max(math.ceil(len(text) * model_r * group_r), 1) if text and model_r else 0


# Audio is priced by duration with the model ratio applied: a second counts as 10/3 tokens, so whisper-1
# at its ratio 15 costs 50 quota a second = US$0.006 a minute, its list price.
AUDIO_TOKENS_PER_SECOND = Decimal(10) / 3


def audio_seconds(files, answer, response_format):
    """The audio's duration: from a verbose_json answer, else read from the uploaded file; None if unknown."""
    if response_format == "verbose_json":
        try:
            duration = json.loads(answer).get("duration")
        except (ValueError, AttributeError):
            duration = None
        if isinstance(duration, (int, float)) and not isinstance(duration, bool) and duration >= 0:
            return Decimal(str(duration))
    for name, _filename, _content_type, data in files:
        if name == "file":
            try:
                parsed = mutagen.File(io.BytesIO(data))
            except Exception:  # any file mutagen cannot read: fall back to the transcript's tokens
                return None
            length = getattr(getattr(parsed, "info", None), "length", None) if parsed is not None else None
            return Decimal(str(length)) if length else None
    return None


def audio_price(seconds, model_r, group_r):
    return max(math.ceil(seconds * AUDIO_TOKENS_PER_SECOND * model_r * group_r), 1) if seconds and model_r else 0


def transcript_estimate(model_r, group_r):
    return math.ceil(options.current().int("PreConsumedQuota") * model_r * group_r)


def transcript_text(data, response_format):
    """The text of a transcription answer in any response_format (json, verbose_json, text, srt, vtt)."""
    text = data.decode("utf-8", "replace")
    if response_format in ("json", "verbose_json", None, ""):
        try:
            parsed = json.loads(text)
        except ValueError:
            return text
        return parsed.get("text", "") if isinstance(parsed, dict) else ""
    if response_format in ("srt", "vtt"):
        lines = [line for line in text.splitlines()
                 if line.strip() and "-->" not in line and not line.strip().isdigit() and line.strip() != "WEBVTT"]
        return "\n".join(lines)
    return text


def transcript_tokens(data, response_format, model):
    return tokenizer.count_text(transcript_text(data, response_format), model)
