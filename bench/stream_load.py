"""N concurrent streamed chat completions against a URL; prints a JSON summary: success rate, time to first
byte (p50/p99), total duration (p50/p99), events per stream, errors. Bounded: every stream has a deadline.

    python bench/stream_load.py --url http://127.0.0.1:3000/v1/chat/completions --key sk-... -n 500
"""

import argparse
import asyncio
import json
import statistics
import time
from urllib.parse import urlparse


def body(model):
    return json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "Hello"}]})


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def one(host, port, path, key, deadline, model):
    started = time.monotonic()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), deadline)
    payload = body(model)
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Authorization: Bearer {key}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n{payload}")
    writer.write(request.encode())
    await writer.drain()
    first, events, done, buffered = None, 0, False, b""
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), max(deadline - (time.monotonic() - started), 0.01))
            if not data:
                break
            buffered += data
            if first is None and b"data:" in buffered:
                first = time.monotonic() - started
            events += data.count(b"data: {")
            if b"data: [DONE]" in buffered:
                done = True
                break
            buffered = buffered[-256:]
    finally:
        writer.close()
    return {"ok": done, "ttfb": first, "duration": time.monotonic() - started, "events": events}


async def run(url, key, n, deadline, ramp, model="gpt-4o-mini"):
    """Open n streams, spread evenly over `ramp` seconds (0: all at once). With a ramp shorter than one
    stream's duration, all n are open together at the peak."""
    parsed = urlparse(url)
    tasks = []
    for _ in range(n):
        tasks.append(asyncio.create_task(one(parsed.hostname, parsed.port, parsed.path, key, deadline, model)))
        if ramp:
            await asyncio.sleep(ramp / n)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    good = [r for r in results if isinstance(r, dict) and r["ok"]]
    errors = [type(r).__name__ if isinstance(r, BaseException) else "incomplete" for r in results
              if not (isinstance(r, dict) and r["ok"])]
    ttfb = [r["ttfb"] for r in good if r["ttfb"] is not None]
    durations = [r["duration"] for r in good]
    return {
        "streams": n, "succeeded": len(good), "success_rate": len(good) / n if n else 0,
        "ttfb_p50_ms": round(percentile(ttfb, 50) * 1000, 1) if ttfb else None,
        "ttfb_p99_ms": round(percentile(ttfb, 99) * 1000, 1) if ttfb else None,
        "duration_p50_s": round(percentile(durations, 50), 3) if durations else None,
        "duration_p99_s": round(percentile(durations, 99), 3) if durations else None,
        "events_mean": round(statistics.mean(r["events"] for r in good), 1) if good else 0,
        "errors": {e: errors.count(e) for e in set(errors)},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", default="sk-bench")
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--deadline", type=float, default=60)
    parser.add_argument("--ramp", type=float, default=0.0, help="seconds over which to open the streams")
    parser.add_argument("--model", default="gpt-4o-mini")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.url, args.key, args.n, args.deadline, args.ramp, args.model))))
