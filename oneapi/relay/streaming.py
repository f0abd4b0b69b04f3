"""Server-sent events from the upstream to the client, as they arrive.

Bytes are read straight from the upstream's socket (relay/body_reader.py), whatever has arrived, in the
greenlet that writes to the client: a slow client slows the upstream read instead of filling memory, and
a wait for bytes ends in time to send a keep-alive comment. Complete lines are forwarded at once; on the side we
note usage, the text delivered (to count it when the upstream sends no usage), [DONE] and finish
reasons. The usage-only chunk that we asked for on the client's behalf is removed.
"""

import json
import logging
import math
import re
import time

from oneapi import background
from oneapi.relay.billing import Usage
from oneapi.relay.body_reader import BodyReader
from oneapi.relay.errors import error_body
from oneapi.relay.upstream import UpstreamTimeout
from oneapi.services import health, tokenizer

log = logging.getLogger(__name__)
_TEXT_FLUSH = 65536  # count delivered text in pieces, so a long answer never sits in memory whole
_PARSE_LIMIT = 1 << 20  # larger events (inline images) are forwarded without being parsed
_KEEP_LIMIT = 32 * 1024  # content chunks kept unparsed per stream, in case the upstream sends no usage
_DECIDE = re.compile(rb'"usage": ?\{|"choices": ?\[\]')  # may be counted or dropped: parse


class StreamMeter:
    """Watches the events going by. Only events that may need a decision are parsed as JSON (a usage object,
    an empty choices list); the rest are scanned for a finish reason and kept as bytes, to be parsed only if
    the upstream ends without reporting usage, which is rare once we ask for it. Kept bytes are bounded: past
    _KEEP_LIMIT they are parsed and counted at once and the stream is counted as it goes."""

    def __init__(self, model, strip_usage):
        self.model = model
        self.strip_usage = strip_usage
        self.usage = None
        self.done = False
        self.finished = False  # a choice reported a finish_reason
        self._kept, self._kept_size = [], 0
        self._text, self._text_size = [], 0
        self._counted = 0
        self._skip_blank = False

    def _note_text(self, text):
        if text:
            self._text.append(text)
            self._text_size += len(text)
            if self._text_size >= _TEXT_FLUSH:
                self._flush_text()

    def _flush_text(self):
        if self._text:
            self._counted += tokenizer.count_text("".join(self._text), self.model)
            self._text, self._text_size = [], 0

    def _parse_kept(self):
        for payload in self._kept:
            try:
                event = json.loads(payload)
            except ValueError:
                continue
            if isinstance(event, dict):
                self._observe(event)
        self._kept, self._kept_size = [], 0

    def completion_tokens(self):
        self._parse_kept()
        self._flush_text()
        return self._counted

    def _observe(self, event):
        """Look at one parsed chunk; return False to drop it from the client's stream."""
        usage = Usage.from_json(event.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = event.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                if choice.get("finish_reason"):
                    self.finished = True
                delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
                self._note_text(delta.get("content") if isinstance(delta.get("content"), str) else choice.get("text"))
                for call in delta.get("tool_calls") or ():
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict):
                        self._note_text((function.get("name") or "") + (function.get("arguments") or ""))
        if isinstance(choices, list) and not choices and event.get("usage") is None:
            return False  # Azure's prompt-filter results and the like: nothing for an OpenAI client (spec §5.8)
        usage_only = event.get("usage") is not None and not choices
        return not (usage_only and self.strip_usage)

    def _keep(self, payload):
        """Note an ordinary content chunk without parsing it."""
        if b'"finish_reason":"' in payload or b'"finish_reason": "' in payload:
            self.finished = True
        if self.usage is not None:
            return
        if self._kept_size + len(payload) > _KEEP_LIMIT:
            self._parse_kept()
            self._observe_bytes(payload)
            return
        self._kept.append(payload)
        self._kept_size += len(payload)

    def _observe_bytes(self, payload):
        try:
            event = json.loads(payload)
        except ValueError:
            return True
        return self._observe(event) if isinstance(event, dict) else True

    def feed(self, lines):
        """Lines (bytes ending in \\n) in, the bytes to forward out: `lines` itself unless an event is dropped."""
        out, dropped = [], False
        for line in lines.splitlines(keepends=True):
            stripped = line.strip()
            if not stripped:
                if self._skip_blank:
                    self._skip_blank, dropped = False, True
                    continue
                out.append(line)
                continue
            self._skip_blank = False
            if stripped.startswith(b"data:"):
                payload = stripped[5:].strip()
                if payload == b"[DONE]":
                    self.done = True
                elif payload.startswith(b"{") and len(payload) <= _PARSE_LIMIT:
                    if _DECIDE.search(payload):
                        if not self._observe_bytes(payload):
                            self._skip_blank = dropped = True
                            continue
                    else:
                        self._keep(payload)
            out.append(line)
        return b"".join(out) if dropped else lines

    def final_usage(self, count_prompt):
        if self.usage is not None:
            return self.usage
        return Usage(count_prompt(), self.completion_tokens(), estimated=True)


def error_event(message, code, request_id):
    return b"data: " + json.dumps(error_body(message, "upstream_error", code, request_id=request_id)).encode() + b"\n\n"


class RelayStream:
    """The client's response body. It settles the bill however the stream ends, including when the server
    closes it before it was ever iterated (a generator's `finally` would not run then), and tells the
    channel's breaker how the stream ended (services/health.stream_ended).

    When the client goes away first, the upstream is still read, within `drain_seconds` and `drain_bytes`,
    in the background: the upstream bills the whole answer, so we want its usage to bill it too.

    A settlement the database refuses never reaches the client, whose stream ends as it would have: it is
    logged and retried in the background (docs/billing.md, "Streams").
    """

    def __init__(self, app, response, meter, bill, *, max_line, keepalive, deadline, idle_timeout=0, drain_seconds=0,
                 drain_bytes=0, write=None):
        self._app = app
        self._write = write
        self._meter = meter
        self._bill = bill
        self._drain = (drain_seconds, drain_bytes)
        self._ending = False
        self._usage = None
        self._body = BodyReader(response, idle_timeout)
        self._events = _pump(self._body, meter, self._end, max_line=max_line, keepalive=keepalive,
                             deadline=deadline, request_id=bill.reservation.request_id)

    def __iter__(self):
        return self._events if self._write is None else _written(self._events, self._write)

    def _end(self, outcome, failure=None):
        """`failure`: the health class of what the upstream did wrong, when it did (None otherwise)."""
        if self._ending:
            return
        self._ending = True
        seconds, size = self._drain
        if outcome == "client_gone" and seconds > 0 and size > 0:
            background.start(self._drain_then_settle, seconds, size, name="oneapi-stream-drain")
        else:
            self._settle(outcome, failure)

    def _drain_then_settle(self, seconds, size):
        deadline, read = time.monotonic() + seconds, 0
        try:
            while read <= size and self._meter.usage is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                item = self._body.read(remaining)
                if not item:
                    break
                read += len(item)
                self._meter.feed(item)
        except Exception:
            log.exception("draining an abandoned stream failed")
        finally:
            self._settle("client_gone")

    def _settle(self, outcome, failure=None):
        self._body.close()
        with self._app.app_context():
            health.stream_ended(self._bill.channel_id, outcome, failure)
            if self._bill.closed:
                return
            try:
                usage = self._usage if self._usage is not None else self._meter.final_usage(
                    self._bill.local_prompt_tokens)
            except Exception:
                log.exception("request %s: counting the stream's usage failed; its reservation is left to the "
                              "stale-reservation refund", self._bill.reservation.request_id)
                return
            if not self._bill.try_close(usage, outcome):
                self._bill.close_later(self._app, usage, outcome)

    def close(self):
        try:
            self._events.close()
        finally:
            self._end("client_gone")


def _written(events, write):
    """The first event through the server (it sends the headers with it); the rest straight to the client's
    socket (relay/client_writer.py). A failed write raises here, as the server's own would have."""
    for first in events:
        yield first
        break
    for data in events:
        write(data)


def _pump(body, meter, end, *, max_line, keepalive, deadline, request_id):
    outcome, failure = "client_gone", None  # failure: the upstream's fault (a breaker failure), not ours
    parts, size = [], 0  # the unfinished last line, kept as pieces: no quadratic copying of huge lines
    at_boundary = True  # the client has received whole events only, so a keep-alive may end with a blank line
    try:
        while True:
            wait = keepalive if keepalive > 0 else None
            if deadline is not None:
                wait = max(min(wait or math.inf, deadline - time.monotonic()), 0)
            try:
                item = body.read(wait)
            except UpstreamTimeout:
                outcome, failure = "timeout", health.TIMEOUT
                yield error_event("the upstream went silent for longer than RELAY_IDLE_TIMEOUT", "upstream_timeout", request_id)
                return
            except Exception as error:  # a broken connection or body
                log.warning("upstream stream failed: %s", type(error).__name__)
                outcome, failure = "upstream_error", health.CUT
                yield error_event("the upstream stream broke off", "upstream_error", request_id)
                return
            if item is None:
                if deadline is not None and time.monotonic() >= deadline:
                    outcome = "timeout"
                    yield error_event("the request took longer than RELAY_TIMEOUT", "relay_timeout", request_id)
                    return
                yield b": keepalive\n\n" if at_boundary else b": keepalive\n"
                continue
            if not item:
                break
            cut = item.rfind(b"\n")
            if cut < 0:
                parts.append(item)
                size += len(item)
                if size > max_line:
                    outcome = "upstream_error"
                    yield error_event("an upstream event line exceeded STREAM_MAX_LINE_MB", "line_too_long", request_id)
                    return
                continue
            parts.append(item[: cut + 1])
            ready = b"".join(parts)
            rest = item[cut + 1:]
            parts, size = ([rest], len(rest)) if rest else ([], 0)
            data = meter.feed(ready)
            if meter.done:  # settle before the client sees the end: once it has [DONE], the ledger has the bill
                outcome = "done"
                end(outcome)
            if data:
                at_boundary = data.endswith(b"\n\n")
                yield data
            if meter.done:
                return
        if parts:
            data = meter.feed(b"".join(parts) + b"\n")
            if data:
                yield data
        if meter.done or meter.finished:
            outcome = "done"
            end(outcome)
            if not meter.done:
                yield b"data: [DONE]\n\n"
        else:
            outcome, failure = "upstream_error", health.CUT
            yield error_event("the upstream closed the stream before it finished", "upstream_cut", request_id)
    finally:
        end(outcome, failure)
