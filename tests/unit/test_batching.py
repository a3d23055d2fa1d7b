"""The adaptive-batching wait: bounded, so one slow call cannot keep every later request waiting."""

from kiln.serving.batching import DEFAULT_MAX_WAIT_SECONDS, bounded_wait


def test_wait_is_the_mean_of_recent_waits_when_small():
    assert bounded_wait([0.0005, 0.0015], 0.002) == 0.001
    assert bounded_wait([], 0.002) == 0.0


def test_one_huge_wait_does_not_hold_later_requests_back():
    # BentoML's sequence: 49 quick batches, then one that queued 14 s behind a huge request.
    history = [0.0005] * 49 + [14.0]
    assert sum(history) / len(history) > 0.25  # what BentoML would cork every later batch for
    assert bounded_wait(history, DEFAULT_MAX_WAIT_SECONDS) == DEFAULT_MAX_WAIT_SECONDS


def test_the_bound_never_goes_negative_and_zero_disables_corking():
    assert bounded_wait([-1.0, -2.0], 0.002) == 0.0  # clock skew in samples
    assert bounded_wait([0.5], 0.0) == 0.0
