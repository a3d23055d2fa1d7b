"""Kiln's bound on BentoML's adaptive-batching wait, applied to BentoML's real optimizer."""

from bentoml._internal.marshal.dispatcher import Optimizer

from bentos.batching import install_bounded_wait


def replay_huge_request(optimizer: Optimizer) -> None:
    for _ in range(10):
        optimizer.log_outbound(n=1, wait=0.0005, duration=0.013)
    optimizer.log_outbound(n=256, wait=0.0, duration=12.0)  # the maximal request
    for _ in range(20):  # the requests that queued behind it record seconds of "wait"
        optimizer.log_outbound(n=8, wait=6.0, duration=0.05)
    optimizer.trigger_refresh()


def test_a_huge_request_leaves_the_cork_wait_bounded():
    assert install_bounded_wait(2.0)
    optimizer = Optimizer(max_latency=20.0)
    replay_huge_request(optimizer)
    assert 0.0 <= optimizer.wait <= 0.002
    assert optimizer.o_a > 0  # the cost model is still fitted: only the wait is bounded
    assert install_bounded_wait(5.0)  # idempotent; the new bound applies
    optimizer.trigger_refresh()
    assert optimizer.wait == 0.005
    install_bounded_wait(2.0)  # the default again for the rest of the session
