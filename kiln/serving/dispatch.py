"""How the model worker runs a (possibly merged) batch of prediction requests.

Requests for several models may arrive in one batch: they are grouped by model, each group runs as
one forward pass (or, when the model has several idle instances, one per instance on its own thread),
and results go back in the request order. A failing model answers its own requests with an error
payload and leaves the other models' results alone. Framework-free: the BentoML worker calls it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, wait
from typing import Any, TypedDict

from kiln.serving.protocol import error_payload


class PredictRequest(TypedDict, total=False):
    """One item of a worker call: the model, one validated input, and the caller's options."""

    model: str
    item: Any
    priority: int
    timeout: float | None


Predict = Callable[[str, list[Any], int, "float | None"], list[Any]]


def run_grouped(requests: Sequence[PredictRequest], predict: Predict) -> list[Any]:
    """One ``predict(model, items, priority, timeout)`` per model; results in the requests' order.

    The group runs at its most urgent priority, and waits as long as its most patient caller.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for index, request in enumerate(requests):
        groups[request["model"]].append(index)
    results: list[Any] = [None] * len(requests)
    for name, indexes in groups.items():
        group = [requests[i] for i in indexes]
        priority = max(int(r.get("priority") or 0) for r in group)
        timeouts = [r.get("timeout") for r in group]
        timeout = None if any(t is None for t in timeouts) else max(timeouts)
        try:
            outputs = predict(name, [r["item"] for r in group], priority, timeout)
        except Exception as exc:  # one model's failure must not fail the other models in the batch
            outputs = [{"__error__": error_payload(exc)}] * len(group)
        for index, output in zip(indexes, outputs, strict=True):
            results[index] = output
    return results


def split_instances(items: int, max_instances: int, min_split_items: int) -> int:
    """How many instances a batch of ``items`` may use: chunks of at least ``min_split_items`` each."""
    return max(1, min(max_instances, items // min_split_items))


def predict_split(engines: Sequence[Any], items: list[Any], executor: Executor) -> list[Any]:
    """Run ``items`` over ``engines`` in order-preserving chunks: the calling thread runs the first
    chunk, ``executor`` the others. Returns only when every chunk is done, so no engine is still in
    use when the caller hands the engines back to their pool."""
    if len(engines) == 1:
        return engines[0].predict(items)
    size = -(-len(items) // len(engines))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    futures = [executor.submit(engine.predict, chunk) for engine, chunk in zip(engines[1:], chunks[1:])]
    try:
        outputs = list(engines[0].predict(chunks[0]))
    finally:
        wait(futures)
    for future in futures:
        outputs.extend(future.result())
    return outputs
