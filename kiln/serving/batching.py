"""How long adaptive batching may hold a request back to gather a batch ("cork" wait), bounded.

BentoML 1.4's dispatcher corks each batch for about the mean of its recent batches' waits, where a
batch's wait is measured from its first request's arrival to its dispatch. That includes the time the
request spent queued behind the call in flight. One huge request (256 long texts, seconds of compute)
therefore records a wait of seconds; the mean over the last 50 batches jumps to hundreds of
milliseconds; every following batch is corked that long and records that wait again, so the estimate
feeds on itself and decays only about 5% per 50 batches: single requests took 170-290 ms for minutes
on an idle CPU. A wait estimate used for corking must be bounded: gathering a batch is worth a few
milliseconds at most, never the length of the last slow call.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_MAX_WAIT_SECONDS = 0.002


def bounded_wait(recorded_waits: Iterable[float], max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS) -> float:
    """The cork wait to use: the mean of the recorded waits, clamped to [0, ``max_wait_seconds``].

    Time a request spent queued behind a busy call is not a reason to hold later requests back, so no
    history can push the wait above the bound, and one slow call stops mattering at once.
    """
    waits = list(recorded_waits)
    if not waits:
        return 0.0
    return min(max(0.0, sum(waits) / len(waits)), max(0.0, max_wait_seconds))
