"""A cheap streaming upstream for the benchmark: every POST gets an OpenAI-style SSE stream of N chunks,
D seconds apart, ending with a usage chunk (when asked for) and [DONE]. asyncio, one process, so it is
never the bottleneck at thousands of concurrent streams.

    python bench/sse_mock.py --port 18081 --chunks 50 --interval 0.1
"""

import argparse
import asyncio
import json

CHUNK = ('data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
         '"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"token "},"finish_reason":null}]}\n\n')
LAST = ('data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
        '"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')


def usage_event(chunks):
    usage = {"prompt_tokens": 11, "completion_tokens": chunks, "total_tokens": 11 + chunks}
    return "data: " + json.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
                                  "model": "gpt-4o-mini", "choices": [], "usage": usage}) + "\n\n"


def frame(text):
    data = text.encode()
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def handle(reader, writer, chunks, interval):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            wants_usage = b'"include_usage":true' in body.replace(b" ", b"")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            for _ in range(chunks):
                writer.write(frame(CHUNK))
                await writer.drain()
                await asyncio.sleep(interval)
            tail = LAST + (usage_event(chunks) if wants_usage else "") + "data: [DONE]\n\n"
            writer.write(frame(tail) + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port, chunks, interval):
    server = await asyncio.start_server(lambda r, w: handle(r, w, chunks, interval), "127.0.0.1", port, backlog=8192)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.chunks, args.interval))
