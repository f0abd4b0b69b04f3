"""The stream meter: what it forwards, drops and counts, without parsing every event."""

import json

from oneapi.relay.streaming import StreamMeter
from oneapi.services import tokenizer


def event(payload):
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def chunk(text, finish=None, usage_null=True):
    body = {"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}]}
    if usage_null:
        body["usage"] = None  # OpenAI sends this in every chunk once include_usage is on
    return event(body)


USAGE = event({"id": "c", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})


def test_usage_chunk_is_read_and_stripped_when_we_asked_for_it():
    meter = StreamMeter("gpt-4o-mini", strip_usage=True)
    body = chunk("Hello") + chunk(" world") + chunk("", "stop")
    assert meter.feed(body) is body  # nothing dropped: the very same bytes go out
    assert meter.feed(USAGE + b"data: [DONE]\n\n") == b"data: [DONE]\n\n"
    assert meter.finished and meter.done
    assert (meter.usage.prompt_tokens, meter.usage.completion_tokens) == (5, 3)


def test_usage_chunk_is_kept_when_the_client_asked():
    meter = StreamMeter("gpt-4o-mini", strip_usage=False)
    assert meter.feed(USAGE) == USAGE and meter.usage.completion_tokens == 3


def test_without_usage_the_delivered_text_is_counted():
    meter = StreamMeter("gpt-4o-mini", strip_usage=True)
    pieces = ["The ", "quick ", "brown ", "fox"] * 500  # past the unparsed-bytes bound too
    for piece in pieces:
        meter.feed(chunk(piece, usage_null=False))
    usage = meter.final_usage(lambda: 9)
    assert usage.estimated and usage.prompt_tokens == 9
    assert usage.completion_tokens == tokenizer.count_text("".join(pieces), "gpt-4o-mini")


def test_prompt_filter_chunks_are_dropped():
    meter = StreamMeter("gpt-4o-mini", strip_usage=False)
    filtered = event({"choices": [], "prompt_filter_results": [{"prompt_index": 0}]})
    assert meter.feed(filtered + chunk("hi")) == chunk("hi")
