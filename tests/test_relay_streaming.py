"""Streaming through the real server process (research §2.2-2.4): chunks reach the client at the upstream's
pace whatever its framing, keep-alive comments fill long silences, a silent upstream gives a quick 504,
a broken stream ends with an error event and no [DONE], huge lines pass intact (or stop at
STREAM_MAX_LINE_MB), a client that goes away releases the upstream, and bad requests get 4xx at once."""

import functools
import json
import queue
import re
import socket
import threading
import time

import openai
import pytest
import requests

from tests.mock_upstream import Reply
from tests.test_relay_sdk import MESSAGES, Gateway, pool, sdk  # noqa: F401 (pool is a fixture)

PACE = 0.2
WORDS = "one two three four five six"
IDLE_TIMEOUT = 1.5  # RELAY_IDLE_TIMEOUT
RELAY_TIMEOUT = 1.5  # the total cap, on the "strict" server only
DRAIN = 1.0  # STREAM_DRAIN_SECONDS: how long the upstream is read for its usage after the client left
# Server "a": keep-alive comments after 0.3 s of silence, a 1.5 s idle timeout, a 1 MB body cap and 1 s of
# draining after a client disconnect.
A_ENV = {"STREAM_KEEPALIVE_SECONDS": "0.3", "RELAY_IDLE_TIMEOUT": str(IDLE_TIMEOUT), "RELAY_MAX_BODY_MB": "1",
         "STREAM_DRAIN_SECONDS": str(DRAIN)}
SCRIPTED_MODEL = "scripted-model"
HUGE = "0123456789abcdef" * (20 * 1024 * 1024 // 16)  # a 20 MB content string


# --- an upstream whose every byte is scripted -------------------------------------------------------


def read_request(conn, pending=b"", heads=None):
    """One HTTP/1.1 request from a raw socket: (body, bytes already read past it), or None if the peer closed
    first. `pending`: bytes left over from the request before on this connection; `heads`: a list that gets
    the request's head (request line and headers)."""
    data = pending
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if heads is not None:
        heads.append(head)
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return body[:length], body[length:]


class ScriptedUpstream:
    """A raw HTTP/1.1 server on a loopback port: each request is read whole, then `script(conn, body)`
    writes the answer."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.script = None
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            conn.settimeout(10)
            request = read_request(conn)
            if request is not None:
                self.script(conn, json.loads(request[0]))

    def close(self):
        self.sock.close()


def sse_head(chunked):
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else b""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" + framing
            + b"Connection: close\r\n\r\n")


def chunk_of(data):
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def chat_event(content, finish=None):
    return b"data: " + json.dumps({
        "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0, "model": SCRIPTED_MODEL,
        "choices": [{"index": 0, "delta": {"content": content} if content is not None else {},
                     "finish_reason": finish}]}).encode() + b"\n\n"


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scripted():
    server = ScriptedUpstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def gateway(pool, upstream, scripted):  # noqa: F811
    server = pool.server("app", **A_ENV)
    gw = Gateway(server.url, upstream.url, models=["gpt-4o-mini"])
    gw.add_channel(server.url, scripted.url, [SCRIPTED_MODEL])
    gw.set_option("RetryTimes", "0")
    gw.pool = pool
    return gw


def server_url(gateway, kind):
    """Server "a"; gunicorn with the defaults but 1 s of draining; or "strict": STREAM_MAX_LINE_MB=1 and a
    total RELAY_TIMEOUT of 1.5 s. All on the module's database, so the gateway set-up serves them all."""
    if kind == "a":
        return gateway.url
    if kind == "gunicorn":
        return gateway.pool.server("gunicorn", STREAM_DRAIN_SECONDS=str(DRAIN)).url
    return gateway.pool.server("app", STREAM_MAX_LINE_MB="1", RELAY_TIMEOUT=str(RELAY_TIMEOUT)).url


@pytest.fixture(autouse=True)
def fresh_upstream(upstream):
    upstream.reset()
    yield


def post_stream(url, key, model="gpt-4o-mini", **body):
    return requests.post(url + "/v1/chat/completions", stream=True, timeout=(5, 10),
                         headers={"Authorization": f"Bearer {key}"},
                         json={"model": model, "messages": MESSAGES, "stream": True, **body})


def timed_lines(response):
    """Every complete line of a streamed body, with the time it arrived."""
    lines, rest = [], b""
    try:
        for chunk in response.iter_content(chunk_size=None):
            now = time.monotonic()
            rest += chunk
            *complete, rest = rest.split(b"\n")
            lines.extend((now, line) for line in complete)
    except requests.exceptions.ChunkedEncodingError as error:
        raise AssertionError(f"the gateway broke the response off instead of ending it ({error}); "
                             f"received: {[line for _, line in lines][-5:]}") from None
    if rest:
        lines.append((time.monotonic(), rest))
    return lines


def data_events(lines):
    """(arrival, payload) of each `data:` line: a parsed object, or the string "[DONE]"."""
    events = []
    for at, line in lines:
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            events.append((at, "[DONE]" if payload == b"[DONE]" else json.loads(payload)))
    return events


def contents(events):
    return [(at, e["choices"][0]["delta"].get("content")) for at, e in events
            if isinstance(e, dict) and e.get("choices") and e["choices"][0].get("delta", {}).get("content")]


def assert_paced(lines, words):
    events = data_events(lines)
    pieces = contents(events)
    assert "".join(text for _, text in pieces) == words
    gaps = [round(b - a, 3) for (a, _), (b, _) in zip(pieces, pieces[1:], strict=False)]
    assert len(gaps) == len(words.split()) - 1
    # The upstream's pace, not one burst at the end. A scheduling stall on a busy machine delays one word and
    # the next follows sooner ([0.2, 0.34, 0.1, ...]): each pair of gaps still spans about two intervals.
    assert all(0.05 <= gap <= 0.45 for gap in gaps), gaps
    assert all(0.3 <= a + b <= 0.7 for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    assert lines[-1][0] - pieces[0][0] >= 0.8, "the first words must arrive well before the end"
    assert events[-1][1] == "[DONE]"


# --- (a)-(c) pace, framing and headers -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["a", "gunicorn"])
def test_paced_stream_keeps_the_upstream_pace(gateway, upstream, kind):
    upstream.queue(Reply(pace=PACE, content=WORDS))
    with post_stream(server_url(gateway, kind), gateway.key) as reply:
        assert reply.status_code == 200
        assert reply.headers["Content-Type"].startswith("text/event-stream")
        assert reply.headers["Cache-Control"] == "no-cache"
        assert reply.headers["X-Accel-Buffering"] == "no"
        assert "Content-Length" not in reply.headers
        lines = timed_lines(reply)
    assert_paced(lines, WORDS)


def socket_request(key, version, stream=True):
    """A chat completion on a raw socket (HTTP/1.1 keeps the connection; HTTP/1.0 has the server close it)."""
    payload = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": stream}).encode()
    return (f"POST /v1/chat/completions {version}\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload


class RawReader:
    def __init__(self, sock):
        self.sock, self.buffer = sock, b""

    def until(self, marker):
        while marker not in self.buffer:
            data = self.sock.recv(65536)
            assert data, f"the server closed the connection; received {self.buffer[-300:]!r}"
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def exactly(self, size):
        while len(self.buffer) < size:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection in the middle of a chunk"
            self.buffer += data
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def chunked_body(self):
        """The body of a chunked response, decoded strictly: every size line, every CRLF, the last chunk."""
        pieces = []
        while True:
            size = int(self.until(b"\r\n"), 16)
            if size == 0:
                assert self.until(b"\r\n") == b"", "trailers or junk after the last chunk"
                return pieces
            pieces.append(self.exactly(size))
            assert self.exactly(2) == b"\r\n", "a chunk does not end with CRLF"


def stream_texts(body):
    lines = [(0, line) for line in body.split(b"\n")]
    return "".join(text for _, text in contents(data_events(lines))), data_events(lines)[-1][1]


def test_gunicorn_streams_well_formed_chunks_and_keeps_the_connection(gateway, upstream):
    """Under gunicorn, events after the first are written to the client's socket by the gateway itself
    (oneapi/relay/client_writer.py): the client must see exact HTTP/1.1 chunked framing, the last chunk, and a
    connection it can send its next request on."""
    url = server_url(gateway, "gunicorn")
    upstream.queue(Reply(pace=0.05, content=WORDS))
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as client:
        client.sendall(socket_request(gateway.key, "HTTP/1.1"))
        reader = RawReader(client)
        head = reader.until(b"\r\n\r\n").decode().lower()
        assert head.startswith("http/1.1 200") and "transfer-encoding: chunked" in head
        assert "connection: keep-alive" in head and "content-length" not in head
        pieces = reader.chunked_body()
        assert len(pieces) >= len(WORDS.split())  # streamed event by event, not in one piece
        assert stream_texts(b"".join(pieces)) == (WORDS, "[DONE]")
        client.sendall(socket_request(gateway.key, "HTTP/1.1", stream=False))  # the same connection, again
        head = reader.until(b"\r\n\r\n").decode().lower()
        assert head.startswith("http/1.1 200"), head
        length = int(re.search(r"content-length: (\d+)", head).group(1))
        assert json.loads(reader.exactly(length))["choices"][0]["message"]["content"]


def test_gunicorn_streams_to_an_http_1_0_client_without_chunks(gateway, upstream):
    """HTTP/1.0 has no chunked framing: gunicorn sends the events as they are and closes the connection."""
    url = server_url(gateway, "gunicorn")
    upstream.queue(Reply(pace=0.05, content=WORDS))
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as client:
        client.sendall(socket_request(gateway.key, "HTTP/1.0"))
        received = b""
        while data := client.recv(65536):
            received += data
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and b"chunked" not in head.lower(), head
    assert stream_texts(body) == (WORDS, "[DONE]")


def test_close_delimited_upstream_still_streams(gateway, upstream):
    upstream.queue(Reply(pace=PACE, content=WORDS, chunked=False))
    with post_stream(gateway.url, gateway.key) as reply:
        assert reply.status_code == 200
        lines = timed_lines(reply)
    assert_paced(lines, WORDS)


def test_paced_completions_stream(gateway, upstream):
    upstream.queue(Reply(pace=PACE, content=WORDS))
    reply = requests.post(gateway.url + "/v1/completions", stream=True, timeout=(5, 10),
                          headers={"Authorization": f"Bearer {gateway.key}"},
                          json={"model": "gpt-4o-mini", "prompt": "count", "stream": True})
    with reply:
        lines = timed_lines(reply)
    texts = [(at, e["choices"][0]["text"]) for at, e in data_events(lines) if isinstance(e, dict) and e["choices"]
             and e["choices"][0]["text"]]
    assert "".join(t for _, t in texts) == WORDS
    assert all(0.1 <= b - a <= 0.45 for (a, _), (b, _) in zip(texts, texts[1:], strict=False))


# --- (d) keep-alive comments -------------------------------------------------------------------------


def test_keepalive_comments_fill_silences(gateway, upstream):
    upstream.default = Reply(pace=0.8, content="slow answer")
    through_sdk = []

    def with_the_sdk():  # at the same time, to keep the test short
        stream = sdk(gateway.url, gateway.key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                       stream=True)
        through_sdk.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    other = threading.Thread(target=with_the_sdk)
    other.start()
    with post_stream(gateway.url, gateway.key) as reply:
        lines = timed_lines(reply)
    other.join(10)
    assert through_sdk == ["slow answer"]
    comments = [line for _, line in lines if line.startswith(b":")]
    assert len(comments) >= 2 and set(comments) == {b": keepalive"}, comments
    assert "".join(text for _, text in contents(data_events(lines))) == "slow answer"
    assert data_events(lines)[-1][1] == "[DONE]"
    # Every event is still a well-formed block: no comment glued into a data line.
    assert all(line == b"" or line.startswith((b"data: ", b": keepalive")) for _, line in lines), lines


# --- (e) an upstream silent before its first byte ----------------------------------------------------


def test_silent_upstream_gives_a_quick_504(gateway, upstream):
    upstream.queue(Reply(delay_first=4))
    started = time.monotonic()
    reply = requests.post(gateway.url + "/v1/chat/completions", timeout=10,
                          headers={"Authorization": f"Bearer {gateway.key}"},
                          json={"model": "gpt-4o-mini", "messages": MESSAGES})
    elapsed = time.monotonic() - started
    assert reply.status_code == 504, reply.text
    assert reply.json()["error"]["code"] == "upstream_timeout"
    assert IDLE_TIMEOUT - 0.2 <= elapsed < 3.0, elapsed
    assert len(upstream.seen) == 1  # RetryTimes 0: one attempt


def test_silent_upstream_gives_a_quick_504_to_a_stream_request(gateway, upstream):
    upstream.queue(Reply(delay_first=4))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway.url, gateway.key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"
    assert time.monotonic() - started < 3.0
    assert len(upstream.seen) == 1


# --- (f) a stream cut by the upstream ----------------------------------------------------------------


@pytest.mark.parametrize("chunked", [True, False])
def test_cut_stream_ends_with_an_error_event_and_no_done(gateway, upstream, chunked):
    upstream.queue(Reply(content=WORDS, cut_after=2, chunked=chunked))
    with post_stream(gateway.url, gateway.key) as reply:
        assert reply.status_code == 200
        lines = timed_lines(reply)
    events = [payload for _, payload in data_events(lines)]
    assert "[DONE]" not in events
    assert "".join(text for _, text in contents(data_events(lines))) == "one two "
    error = events[-1]["error"]
    assert error["code"] in ("upstream_error", "upstream_cut"), error
    assert error["message"] and "127.0.0.1" not in error["message"]


def test_cut_stream_raises_in_the_sdk(gateway, upstream):
    upstream.queue(Reply(content=WORDS, cut_after=2))
    stream = sdk(gateway.url, gateway.key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                   stream=True)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "".join(received) == "one two "


# --- (g) huge lines ------------------------------------------------------------------------------------


def send_huge(conn, body):
    try:
        conn.sendall(sse_head(chunked=False) + chat_event(HUGE) + chat_event(None, "stop") + b"data: [DONE]\n\n")
    except OSError:
        pass


def test_huge_line_arrives_intact(gateway, scripted):
    scripted.script = send_huge
    with post_stream(gateway.url, gateway.key, model=SCRIPTED_MODEL) as reply:
        assert reply.status_code == 200
        body = reply.content
    lines = [line for line in body.split(b"\n") if line.startswith(b"data:")]
    assert len(lines) == 3 and lines[2] == b"data: [DONE]"
    assert json.loads(lines[0][5:])["choices"][0]["delta"]["content"] == HUGE


def test_line_over_stream_max_line_mb_becomes_an_error_event(gateway, scripted):
    scripted.script = send_huge
    with post_stream(server_url(gateway, "strict"), gateway.key, model=SCRIPTED_MODEL) as reply:
        assert reply.status_code == 200
        body = reply.content
        request_id = reply.headers["X-Oneapi-Request-Id"]
    assert len(body) < 1024 * 1024
    lines = [line for line in body.split(b"\n") if line.startswith(b"data:")]
    assert len(lines) == 1, lines
    assert json.loads(lines[0][5:])["error"]["code"] == "line_too_long"
    assert wait_for_log(gateway, request_id)["outcome"] == "upstream_error"


def test_relay_timeout_ends_a_long_stream(gateway, scripted):
    reports = queue.Queue()  # what the upstream saw: ("refused" | "finished", when, events sent)
    scripted.script = functools.partial(paced_until_refused, reports)
    started = time.monotonic()
    with post_stream(server_url(gateway, "strict"), gateway.key, model=SCRIPTED_MODEL) as reply:
        assert reply.status_code == 200
        request_id = reply.headers["X-Oneapi-Request-Id"]
        lines = timed_lines(reply)
    events = [payload for _, payload in data_events(lines)]
    assert "[DONE]" not in events and events[-1]["error"]["code"] == "relay_timeout", events[-1]
    assert RELAY_TIMEOUT - 0.2 < lines[-1][0] - started < RELAY_TIMEOUT + 1.5
    assert len(contents(data_events(lines))) >= 3
    outcome, at, sent = reports.get(timeout=10)
    assert outcome == "refused" and at - started < RELAY_TIMEOUT + 2.5
    assert wait_for_log(gateway, request_id)["outcome"] == "timeout"


# --- (h) the client goes away --------------------------------------------------------------------------


def paced_until_refused(reports, conn, body, events=100, usage_after=None):
    """Sends up to `events` events 0.2 s apart (with a usage chunk after `usage_after` of them, if given);
    reports when a write fails, i.e. when the gateway let go of this upstream connection."""
    sent = 0
    try:
        conn.sendall(sse_head(chunked=True))
        for sent in range(events):
            time.sleep(PACE)
            conn.sendall(chunk_of(chat_event(f"word{sent} ")))
            if sent + 1 == usage_after:
                time.sleep(PACE)  # its own read: sent with the last event, it would end the stream before a write fails
                usage = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0,
                         "model": SCRIPTED_MODEL, "choices": [],
                         "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}}
                conn.sendall(chunk_of(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
                             + b"0\r\n\r\n")
                reports.put(("finished", time.monotonic(), sent + 1))
                return
        conn.sendall(chunk_of(chat_event(None, "stop") + b"data: [DONE]\n\n") + b"0\r\n\r\n")
        reports.put(("finished", time.monotonic(), events))
    except OSError:
        reports.put(("refused", time.monotonic(), sent))


def read_two_events_and_leave(url, key):
    """Opens a stream on a raw socket, reads two content events, closes; returns the request id."""
    payload = json.dumps({"model": SCRIPTED_MODEL, "messages": MESSAGES, "stream": True}).encode()
    client = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5)
    client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   + f"Authorization: Bearer {key}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
    received = b""
    deadline = time.monotonic() + 5
    while received.count(b'"content"') < 2 and time.monotonic() < deadline:
        received += client.recv(65536)
    client.close()
    assert b" 200 " in received.split(b"\r\n", 1)[0] and received.count(b'"content"') >= 2, received
    return re.search(rb"(?i)x-oneapi-request-id: (\d+)", received).group(1).decode()


def wait_for_log(gateway, request_id, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = gateway.api(gateway.url, "GET", f"/api/log/?model_name={SCRIPTED_MODEL}")
        rows = rows["items"] if isinstance(rows, dict) else rows
        found = [row for row in rows if row["request_id"] == request_id]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no log row for request {request_id} after {seconds}s")


@pytest.mark.parametrize("kind", ["a", "gunicorn"])
def test_client_disconnect_releases_the_upstream(gateway, upstream, scripted, kind):
    url = server_url(gateway, kind)
    reports = queue.Queue()  # what the upstream saw: ("refused" | "finished", when, events sent)
    scripted.script = functools.partial(paced_until_refused, reports)
    request_id = read_two_events_and_leave(url, gateway.key)
    closed_at = time.monotonic()

    outcome, at, sent = reports.get(timeout=10)
    assert outcome == "refused", "the gateway read the whole upstream stream after the client left"
    # Released after at most STREAM_DRAIN_SECONDS (1) of draining, plus a little.
    assert at - closed_at < DRAIN + 2.5 and sent < 30, (at - closed_at, sent)
    row = wait_for_log(gateway, request_id)
    assert (row["outcome"], row["is_stream"], row["usage_estimated"]) == ("client_gone", True, True)

    # The server goes on serving.
    completion = sdk(url, gateway.key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello from the mock upstream."


def test_disconnect_still_bills_the_usage_the_upstream_reports(gateway, scripted):
    reports = queue.Queue()  # what the upstream saw: ("refused" | "finished", when, events sent)
    scripted.script = functools.partial(paced_until_refused, reports, usage_after=4)
    request_id = read_two_events_and_leave(gateway.url, gateway.key)
    reports.get(timeout=10)  # the upstream has sent its usage (or was let go: then the row says so)
    row = wait_for_log(gateway, request_id)
    assert (row["outcome"], row["prompt_tokens"], row["completion_tokens"], row["usage_estimated"]) == (
        "client_gone", 100, 50, False)
    assert row["quota"] == (100 + 50) * 30  # an unknown model's ratio 30, completion ratio 1


# --- (i) requests refused before any upstream call --------------------------------------------------


def raw_post(gateway, path, **kwargs):
    headers = {"Authorization": f"Bearer {gateway.key}", **kwargs.pop("headers", {})}
    return requests.post(gateway.url + path, headers=headers, timeout=30, **kwargs)


def assert_openai_error(reply, status, code=None, param=None):
    assert reply.status_code == status, (reply.status_code, reply.text)
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


def test_body_over_relay_max_body_mb_is_413(gateway, upstream):
    big = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}]})
    reply = raw_post(gateway, "/v1/chat/completions", data=big, headers={"Content-Type": "application/json"})
    error = assert_openai_error(reply, 413, "body_too_large")
    assert error["type"] == "invalid_request_error"
    assert upstream.seen == []


def test_chunked_body_over_relay_max_body_mb_is_413(gateway, upstream):
    def body():
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(32):
            yield b"x" * 65536
        yield b'"}]}'

    reply = raw_post(gateway, "/v1/chat/completions", data=body(), headers={"Content-Type": "application/json"})
    assert_openai_error(reply, 413, "body_too_large")
    assert upstream.seen == []


@pytest.mark.parametrize("data, code, param", [
    (b'{"model": "gpt-4o-mini", "messages": [', "invalid_json", ""),
    (b'["gpt-4o-mini"]', "invalid_json", ""),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": "yes"}', None, "stream"),
])
def test_malformed_requests_are_400(gateway, upstream, data, code, param):
    reply = raw_post(gateway, "/v1/chat/completions", data=data, headers={"Content-Type": "application/json"})
    assert_openai_error(reply, 400, code, param)
    assert upstream.seen == []


def test_multipart_route_without_a_file_is_400(gateway, upstream):
    reply = raw_post(gateway, "/v1/audio/transcriptions", files={"model": (None, "whisper-1")})
    assert reply.request.headers["Content-Type"].startswith("multipart/form-data")
    assert_openai_error(reply, 400, param="file")
    reply = raw_post(gateway, "/v1/audio/transcriptions", json={"model": "whisper-1"})
    assert_openai_error(reply, 400)
    assert upstream.seen == []
