"""A real OpenAI-like upstream on a loopback port, for tests: it answers chat completions, completions
and embeddings, streamed (chunked or close-delimited) or not, and can be told to fail with any status,
hang before the first byte, pace its chunks, cut a stream, omit usage or send huge lines."""

import email.policy
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    content: str = "Hello from the mock upstream."
    usage: dict | None = field(default_factory=lambda: {"prompt_tokens": 11, "completion_tokens": 7})
    error: dict | None = None  # the JSON body of a failure
    delay_first: float = 0.0  # seconds before the status line
    pace: float = 0.0  # seconds between stream chunks
    cut_after: int | None = None  # close a stream after this many content chunks, without [DONE]
    chunked: bool = True  # False: close-delimited SSE (no length, no chunked encoding)
    pieces: list | None = None  # stream content pieces; default: the words of `content`


@dataclass
class Seen:
    path: str  # with the query string
    headers: dict
    body: dict | None  # JSON, or the fields of a multipart form
    files: dict = field(default_factory=dict)  # multipart files: name -> (filename, bytes)


def parse_multipart(content_type, raw):
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields, files = {}, {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename is not None:
            files[name] = (filename, payload)
        else:
            fields[name] = payload.decode()
    return fields, files


class _Server(ThreadingHTTPServer):
    request_queue_size = 128

    def handle_error(self, request, client_address):
        """A gateway that lets go of a connection (a client gone, an unfinished answer closed) resets it: expected.
        Anything else still prints."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class MockUpstream:
    def __init__(self):
        self.replies = []  # consumed first, one per request
        self.default = Reply()
        self.by_key = {}  # channel key -> Reply, for every request that key makes (before the queue)
        self.seen = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"mock": self})
        # A listen backlog for bursts: the default 5 refuses connections when 50 relay requests arrive at once.
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def queue(self, *replies):
        with self._lock:
            self.replies.extend(replies)

    def next_reply(self, key=""):
        with self._lock:
            if key in self.by_key:
                return self.by_key[key]
            return self.replies.pop(0) if self.replies else self.default

    def reset(self):
        with self._lock:
            self.replies.clear()
            self.seen.clear()
            self.by_key.clear()
            self.default = Reply()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mock: MockUpstream

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        files = {}
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            body, files = parse_multipart(content_type, raw)
        else:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
        self.mock.seen.append(Seen(self.path, dict(self.headers), body, files))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ") or self.headers.get("api-key", "")
        reply = self.mock.next_reply(key)
        if reply.delay_first:
            time.sleep(reply.delay_first)
        if reply.status != 200:
            error = reply.error or {"error": {"message": "mock failure", "type": "server_error"}}
            return self._json(reply.status, error)
        model = (body or {}).get("model", "")
        path = self.path.split("?")[0]
        if path.endswith(("/images/generations", "/images/edits", "/images/variations")):
            n = int((body or {}).get("n") or 1)
            return self._json(200, {"created": int(time.time()),
                                    "data": [{"url": f"https://images.example/{i}.png"} for i in range(n)]})
        if path.endswith("/audio/speech"):
            return self._audio(reply)
        if path.endswith(("/audio/transcriptions", "/audio/translations")):
            return self._transcript(reply, (body or {}).get("response_format") or "json")
        if path.endswith("/moderations"):
            return self._json(200, {"id": "modr-mock", "model": model,
                                    "results": [{"flagged": False, "categories": {}, "category_scores": {}}]})
        if path.endswith("/embeddings"):
            usage = reply.usage or {}
            return self._json(200, {"object": "list", "model": model,
                                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                                    **({"usage": {"prompt_tokens": usage.get("prompt_tokens", 0),
                                                  "total_tokens": usage.get("prompt_tokens", 0)}} if reply.usage else {})})
        chat = path.endswith("/chat/completions")
        if (body or {}).get("stream"):
            return self._stream(reply, body, chat)
        usage = dict(reply.usage, total_tokens=sum(reply.usage.values())) if reply.usage else None
        choice = ({"index": 0, "message": {"role": "assistant", "content": reply.content}, "finish_reason": "stop"}
                  if chat else {"index": 0, "text": reply.content, "finish_reason": "stop"})
        answer = {"id": "chatcmpl-mock", "object": "chat.completion" if chat else "text_completion",
                  "created": int(time.time()), "model": model, "choices": [choice]}
        if usage:
            answer["usage"] = usage
        self._json(200, answer)

    def _audio(self, reply):
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for number in range(3):
            if reply.pace:
                time.sleep(reply.pace)
            self._send(Reply(), b"ID3-audio-part-%d;" % number)
        self._end(Reply())

    def _transcript(self, reply, response_format):
        text = reply.content
        if response_format == "text":
            return self._raw(200, "text/plain", text.encode())
        if response_format == "srt":
            return self._raw(200, "text/plain", f"1\n00:00:00,000 --> 00:00:02,000\n{text}\n".encode())
        if response_format == "vtt":
            return self._raw(200, "text/vtt", f"WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n{text}\n".encode())
        payload = {"text": text}
        if response_format == "verbose_json":
            payload.update(task="transcribe", language="english", duration=2.0, segments=[])
        return self._json(200, payload)

    def _raw(self, status, content_type, data):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, reply, body, chat):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        model = body.get("model", "")
        pieces = reply.pieces if reply.pieces is not None else [w + " " for w in reply.content.split(" ")]
        pieces[-1:] = [pieces[-1].rstrip(" ")] if pieces else []

        def event(payload):
            self._send(reply, b"data: " + json.dumps(payload).encode() + b"\n\n")

        def chunk(delta, finish=None):
            choice = {"index": 0, "delta": delta, "finish_reason": finish} if chat else {
                "index": 0, "text": delta.get("content", ""), "finish_reason": finish}
            return {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0, "model": model,
                    "choices": [choice]}

        try:
            if chat:
                event(chunk({"role": "assistant", "content": ""}))
            for number, piece in enumerate(pieces):
                if reply.cut_after is not None and number >= reply.cut_after:
                    self.close_connection = True
                    return self._end(reply, cut=True)
                if reply.pace:
                    time.sleep(reply.pace)
                event(chunk({"content": piece}))
            event(chunk({}, "stop"))
            if reply.usage and (body.get("stream_options") or {}).get("include_usage"):
                usage = dict(reply.usage, total_tokens=sum(reply.usage.values()))
                event({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0, "model": model,
                       "choices": [], "usage": usage})
            self._send(reply, b"data: [DONE]\n\n")
            self._end(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, reply, data):
        if reply.chunked:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        else:
            self.wfile.write(data)
        self.wfile.flush()

    def _end(self, reply, cut=False):
        if reply.chunked and not cut:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        if cut:
            self.close_connection = True
