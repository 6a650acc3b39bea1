"""An HTTP load generator for services on 127.0.0.1, run in a process of its own.

Open loop (`--rate R`): request i is due at start + i / R for `--duration` seconds, sent on a free
keep-alive HTTP/1.1 connection of a bounded pool, and its latency is measured from when it was
due, so a server that falls behind is charged for the queueing it causes (no coordinated
omission). Closed loop (`--rate 0`): `--connections` clients send back to back. Everything is
bounded: the run stops `--timeout` seconds after the last request is due.

    python -m ml_assets.bench.load_generator --url http://127.0.0.1:8000/v1/predict \\
        --bodies bodies.jsonl --rate 300 --duration 10 --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

VERSION = re.compile(rb'"model_version":\s*"([^"]+)"')
ALLOWED_HOSTS = ("127.0.0.1", "localhost", "::1")


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")), 0)
    return status, await reader.readexactly(length)


class Pool:
    """At most `size` keep-alive connections; a request waits for a free one."""

    def __init__(self, host: str, port: int, size: int):
        self.host, self.port, self.size, self.opened = host, port, size, 0
        self.free: asyncio.Queue = asyncio.Queue()

    async def take(self):
        if self.free.empty() and self.opened < self.size:
            self.opened += 1
            try:
                return await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.opened -= 1
                raise
        return await self.free.get()

    def give(self, connection) -> None:
        if connection is None:
            self.opened -= 1
        else:
            self.free.put_nowait(connection)


async def _send(pool: Pool, payload: bytes, timeout: float) -> tuple[float, int, bytes]:
    connection = None
    try:
        connection = await pool.take()
        sent = time.perf_counter()
        reader, writer = connection
        writer.write(payload)
        await writer.drain()
        status, body = await asyncio.wait_for(read_response(reader), timeout)
        return sent, status, body
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as error:
        if connection is not None:
            connection[1].close()
        connection = None
        return time.perf_counter(), 0, repr(error).encode()
    finally:
        pool.give(connection)


async def generate(url: str, bodies: list[bytes], rate: float, duration: float, connections: int, timeout: float) -> dict:
    parts = urlsplit(url)
    if parts.hostname not in ALLOWED_HOSTS:
        raise ValueError(f"load is only sent to 127.0.0.1, not {parts.hostname}")
    payloads = [request_bytes(parts.hostname, parts.port, parts.path, body) for body in bodies]
    pool = Pool(parts.hostname, parts.port, connections)
    results: list[tuple[float, float, float, int, bytes]] = []  # due, sent, done, status, body

    async def one(i: int, due: float) -> None:
        sent, status, body = await _send(pool, payloads[i % len(payloads)], timeout)
        results.append((due, sent, time.perf_counter(), status, body))

    start = time.perf_counter() + 0.05
    end = start + duration
    if rate > 0:
        tasks, i = [], 0
        while (due := start + i / rate) < end:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
            i += 1
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout + 1)
            for task in pending:  # never answered (or never sent: no free connection): failed
                task.cancel()
            now = time.perf_counter()
            results += [(start + j / rate, now, now, 0, b"no answer in time") for j in range(len(tasks) - len(results))]
    else:
        counter = iter(range(10**9))

        async def client() -> None:
            while (now := time.perf_counter()) < end:
                await one(next(counter), now)

        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        await asyncio.wait_for(asyncio.gather(*(client() for _ in range(connections))), duration + timeout + 1)
    return summarize(results, rate, duration)


def summarize(results: list[tuple[float, float, float, int, bytes]], rate: float, duration: float) -> dict:
    import numpy as np

    statuses = Counter(status for *_, status, _ in results)
    ok = [r for r in results if 200 <= r[3] < 300]
    latency = np.array([done - due for due, _, done, _, _ in results]) * 1000
    service = np.array([done - sent for _, sent, done, _, _ in results]) * 1000
    span = (max(r[2] for r in results) - min(r[0] for r in results)) if results else 0.0
    versions = Counter(m.group(1).decode() for r in ok for m in VERSION.finditer(r[4]))
    failures = [r[4][:300].decode("latin-1") for r in results if not 200 <= r[3] < 300][:5]

    def percentiles(values):
        if not len(values):
            return {}
        return {f"p{p}": round(float(np.percentile(values, p)), 3) for p in (50, 95, 99)} | {
            "max": round(float(values.max()), 3), "mean": round(float(values.mean()), 3)
        }  # fmt: skip

    first = min((r[0] for r in results), default=0.0)
    by_second: dict[int, list[float]] = {}
    for (due, *_), ms in zip(results, latency):
        by_second.setdefault(int(due - first), []).append(ms)
    timeline = [
        {"second": second, "requests": len(v), "p99_ms": round(float(np.percentile(v, 99)), 3), "max_ms": round(max(v), 3)}
        for second, v in sorted(by_second.items())
    ]
    return {
        "offered_rate": rate, "duration_s": duration, "requests": len(results), "ok": len(ok), "timeline": timeline,
        "failed": len(results) - len(ok), "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "achieved_rate": round(len(ok) / span, 1) if span else 0.0,
        "latency_ms": percentiles(latency), "service_time_ms": percentiles(service),
        "model_versions": dict(versions), "failures": failures,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", required=True, help="JSON Lines: one request body per line, sent in turn")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second (0: closed loop)")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument("--out", help="write the result here (JSON) instead of stdout")
    args = parser.parse_args(argv)
    with open(args.bodies, "rb") as source:
        bodies = [line.rstrip(b"\n") for line in source if line.strip()]
    try:
        from uvloop import run
    except ImportError:
        run = asyncio.run
    result = run(generate(args.url, bodies, args.rate, args.duration, args.connections, args.timeout))
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as out:
            out.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
