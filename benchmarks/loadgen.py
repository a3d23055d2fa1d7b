"""A lean HTTP/1.1 load generator for the benchmarks: keep-alive connections over raw asyncio streams.

The server and the load share two cores here, so the load's own CPU time is taken from the server
being measured. httpx spends about 2 ms of CPU per request; this spends a small fraction of that
(pre-built requests, no header objects, the body parsed as JSON only for every ``check_every``-th
answer), which leaves the cores to the servers, as wrk would. Every status is checked.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from urllib.parse import urlsplit


def build_request(host: str, port: int, path: str, body: dict | None, method: str = "POST") -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + payload


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
        elif name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            raise RuntimeError("chunked responses are not supported by this load generator")
    if length is None:
        raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
    return status, await reader.readexactly(length)


async def run_load(
    url: str,
    bodies: list[dict | None],
    concurrency: int,
    total: int,
    check: Callable[[dict], None] | None = None,
    check_every: int = 50,
    warm_up: int | None = None,
    method: str = "POST",
) -> dict[str, float]:
    """Send ``total`` requests (bodies in turn) over ``concurrency`` connections; throughput and latency."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [build_request(host, port, parts.path, body, method) for body in bodies]
    latencies: list[float] = []
    counter = iter(())

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for number in counter:
                started = time.perf_counter()
                writer.write(requests[number % len(requests)])
                status, body = await read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    raise SystemExit(f"{url} answered {status}: {body[:500]!r}")
                if check is not None and number % check_every == 0:
                    check(json.loads(body))
        finally:
            writer.close()

    counter = iter(range(warm_up if warm_up is not None else 2 * concurrency))
    await asyncio.gather(*(client() for _ in range(concurrency)))
    latencies.clear()
    counter = iter(range(total))  # shared: each connection takes the next request number
    started = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "throughput_rps": total / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
        "load_cpu_ms_per_request": 1000 * (time.process_time() - cpu) / total,
    }
