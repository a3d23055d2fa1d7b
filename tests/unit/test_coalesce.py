"""Gateway-side coalescing of concurrent requests into shared worker calls."""

import asyncio

import pytest

from kiln.serving.coalesce import Coalescer


class FakeWorker:
    """Echoes items after a delay, recording each call's size (a stand-in for the worker's HTTP API)."""

    def __init__(self, delay=0.02, fail=False):
        self.delay, self.fail, self.calls = delay, fail, []

    async def __call__(self, requests):
        self.calls.append(len(requests))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("worker went away")
        return [{"echo": r["item"]} for r in requests]


def test_concurrent_requests_share_calls_and_get_their_own_results():
    async def main():
        worker = FakeWorker()
        coalescer = Coalescer(worker, max_in_flight=1, max_items=64)
        results = await asyncio.gather(*(coalescer.submit([{"item": i}, {"item": -i}]) for i in range(20)))
        return worker, results

    worker, results = asyncio.run(main())
    assert results == [[{"echo": i}, {"echo": -i}] for i in range(20)]
    assert sum(worker.calls) == 40 and len(worker.calls) < 20 and max(worker.calls) <= 64


def test_a_lone_request_is_sent_at_once():
    async def main():
        worker = FakeWorker(delay=0)
        coalescer = Coalescer(worker, max_in_flight=2)
        return await coalescer.submit([{"item": 1}]), worker

    result, worker = asyncio.run(main())
    assert result == [{"echo": 1}] and worker.calls == [1]


def test_errors_reach_every_caller_and_the_coalescer_recovers():
    async def main():
        worker = FakeWorker(fail=True)
        coalescer = Coalescer(worker, max_in_flight=1)
        outcomes = await asyncio.gather(*(coalescer.submit([{"item": i}]) for i in range(5)), return_exceptions=True)
        worker.fail = False
        return outcomes, await coalescer.submit([{"item": 9}]), coalescer

    outcomes, after, coalescer = asyncio.run(main())
    assert all(isinstance(o, ConnectionError) for o in outcomes) and after == [{"echo": 9}]
    assert coalescer.in_flight == 0


def test_a_caller_that_times_out_does_not_disturb_the_others():
    async def main():
        worker = FakeWorker(delay=0.05)
        coalescer = Coalescer(worker, max_in_flight=1)
        first = asyncio.ensure_future(coalescer.submit([{"item": 0}]))
        await asyncio.sleep(0)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(coalescer.submit([{"item": 1}]), 0.01)  # queued behind the first, gives up
        rest = await asyncio.gather(first, coalescer.submit([{"item": 2}]))
        return rest, worker

    rest, worker = asyncio.run(main())
    assert rest == [[{"echo": 0}], [{"echo": 2}]] and sum(worker.calls) == 2  # the abandoned item was never sent
