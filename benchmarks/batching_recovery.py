"""Adaptive batching recovers by itself after one huge request (issue 19, item 2).

The sequence from the issue, replayed on BentoML's real ``CorkDispatcher``: single requests at
concurrency 1 (fresh latency), then one maximal request whose call takes seconds while other requests
queue behind it, then concurrency 1 again for 10 s. The model is a cost model (sleep: 1 ms per call +
0.3 ms per short text, 30 ms per 10,000-character one) so the run measures the dispatcher, not a CPU.

    .venv/bin/python benchmarks/batching_recovery.py            # unbounded (BentoML as is), then bounded
    .venv/bin/python benchmarks/batching_recovery.py --url http://127.0.0.1:8000 --model minilm

With ``--url`` it replays the same sequence over HTTP against a running ``kiln serve`` (256 texts of
10,000 characters as the huge request). Passes when single-request latency is back within 2x of the
fresh figure within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHORT_ITEM_SECONDS, LONG_ITEM_SECONDS = 0.0003, 0.03  # 256 long texts: 7.7 s, as measured on minilm


async def dispatcher_sequence(bounded: bool, max_wait_ms: float) -> dict[str, float]:
    from bentoml._internal.marshal.dispatcher import CorkDispatcher

    if bounded:
        from bentos.batching import install_bounded_wait

        install_bounded_wait(max_wait_ms)

    def fallback():
        raise RuntimeError("cancelled by the dispatcher (503)")

    dispatcher = CorkDispatcher(20_000, 64, fallback=fallback, get_batch_size=len, batch_dim=(0, 0))

    async def model(batches):  # one call; each request is a list of items (0: a short text, 1: 10,000 chars)
        await asyncio.sleep(0.001 + sum(LONG_ITEM_SECONDS if x else SHORT_ITEM_SECONDS for b in batches for x in b))
        return [list(b) for b in batches]

    call = dispatcher(model)

    async def one(items: int = 1, long: int = 0) -> float:
        started = time.perf_counter()
        await call([long] * items)
        return (time.perf_counter() - started) * 1000

    for _ in range(30):  # the dispatcher's training phase
        await one()
    fresh = statistics.median([await one() for _ in range(30)])
    huge = asyncio.ensure_future(one(256, long=1))  # BentoML splits it into calls of max_batch_size
    await asyncio.sleep(0.05)
    await asyncio.gather(*(one() for _ in range(8)))  # queued behind the huge call
    await huge
    await one()  # the first call after refreshes the estimate (at most every 5 s)
    print("  estimate after the huge request: wait %.4f s, o_a %.4f, o_b %.4f" % (
        dispatcher.optimizer.wait, dispatcher.optimizer.o_a, dispatcher.optimizer.o_b))
    return await recovery(one, fresh)


async def recovery(one, fresh: float, seconds: float = 10.0) -> dict[str, float]:
    """Single-request latency per second after the huge request; when it is back within 2x of fresh."""
    started = time.perf_counter()
    recovered_at, per_second = None, []
    while time.perf_counter() - started < seconds:
        second_started, latencies = time.perf_counter(), []
        while time.perf_counter() - second_started < 1.0:
            latencies.append(await one())
        p50 = statistics.median(latencies)
        per_second.append(round(p50, 2))
        if recovered_at is None and p50 <= 2 * fresh:
            recovered_at = time.perf_counter() - started
    return {"fresh_p50_ms": round(fresh, 2), "p50_ms_per_second_after": per_second,
            "recovered_after_s": None if recovered_at is None else round(recovered_at, 1)}


async def http_sequence(url: str, model: str, huge_items: int) -> dict[str, float]:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def one(inputs="A short sentence to embed.") -> float:
            started = time.perf_counter()
            response = await client.post("/predict", json={"model_name": model, "inputs": inputs})
            response.raise_for_status()
            return (time.perf_counter() - started) * 1000

        for _ in range(20):
            await one()
        fresh = statistics.median([await one() for _ in range(50)])
        print(f"  one maximal request: {await one(['word ' * 2000] * huge_items):.0f} ms", flush=True)
        return await recovery(one, fresh)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running kiln serve (default: BentoML's dispatcher in process)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--huge-items", type=int, default=256, help="texts of 10,000 characters in the maximal request "
                        "(fewer on a loaded CPU, where 256 can pass KILN_MAX_LATENCY_MS and get a 503)")
    parser.add_argument("--max-wait-ms", type=float, default=2.0, help="KILN_BATCH_MAX_WAIT_MS for the bounded run")
    args = parser.parse_args()
    if args.url:
        result = asyncio.run(http_sequence(args.url, args.model, args.huge_items))
        print("kiln serve:", result)
        return 0 if result["recovered_after_s"] is not None else 1
    unbounded = asyncio.run(dispatcher_sequence(False, args.max_wait_ms))
    print("BentoML dispatcher as is:", unbounded)
    bounded = asyncio.run(dispatcher_sequence(True, args.max_wait_ms))
    print(f"with Kiln's bound ({args.max_wait_ms} ms):", bounded)
    return 0 if bounded["recovered_after_s"] is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
