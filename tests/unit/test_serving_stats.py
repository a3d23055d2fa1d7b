"""The sliding latency window."""

import pytest

from kiln.serving.stats import LatencyWindow, percentile


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_percentiles_interpolate():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([], 95) == 0.0 and percentile([2.0], 95) == 2.0


def test_window_forgets_old_samples_but_keeps_totals():
    clock = Clock()
    window = LatencyWindow(window_seconds=60, clock=clock)
    clock.now = 100.0
    for ms in range(1, 101):
        window.record(ms / 1000)
    summary = window.summary()
    assert summary["requests"] == 100
    assert summary["latency_ms"]["p50"] == pytest.approx(50.5)
    assert summary["latency_ms"]["p95"] == pytest.approx(95.05)
    assert summary["throughput_rps"] == pytest.approx(100 / 60, rel=1e-3)
    clock.now = 161.0
    window.record(0.5, ok=False)
    summary = window.summary()
    assert summary["requests"] == 1 and summary["errors"] == 1 and summary["throughput_rps"] == 0
    assert window.totals() == {"requests": 101, "errors": 1, "items": 101}


def test_throughput_uses_the_uptime_when_younger_than_the_window():
    clock = Clock()
    window = LatencyWindow(window_seconds=300, clock=clock)
    clock.now = 10.0
    for _ in range(20):
        window.record(0.01, items=4)
    summary = window.summary()
    assert summary["throughput_rps"] == pytest.approx(2.0) and summary["items_per_second"] == pytest.approx(8.0)
    assert window.summary(window_seconds=5)["throughput_rps"] == pytest.approx(4.0)
