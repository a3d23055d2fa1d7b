"""Instance pools and the autoscaler, driven with a fake clock and a counting loader (no models needed)."""

import threading
import time

import pytest

from kiln.catalog import UnknownModel
from kiln.errors import BadRequest
from kiln.serving.autoscaler import Autoscaler
from kiln.serving.pool import InstancePool, ModelLoadFailed, PoolTimeout


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Loader:
    def __init__(self, fail=False):
        self.calls = 0
        self.fail = fail

    def __call__(self):
        self.calls += 1
        if self.fail:
            raise RuntimeError("weights are corrupt")
        return {"engine": self.calls}


def test_first_lease_loads_lazily_and_reuses_the_instance():
    loader = Loader()
    pool = InstancePool("m", loader)
    assert pool.snapshot()["instances"] == 0 and loader.calls == 0
    with pool.lease() as engine:
        assert engine == {"engine": 1}
    with pool.lease(items=5) as engine:
        assert engine == {"engine": 1}
    snap = pool.snapshot()
    assert snap["items"] == 6 and snap["window"]["items"] == 6
    assert loader.calls == 1 and snap["loads"] == 1 and snap["requests"] == 2 and snap["instances"] == 1
    assert snap["last_load_seconds"] is not None and snap["window"]["requests"] == 2
    assert snap["cache_misses"] == 1 and snap["cache_hits"] == 1


def test_idle_instances_are_reaped_after_the_ttl_and_reloaded_on_demand():
    clock, loader = Clock(), Loader()
    pool = InstancePool("m", loader, clock=clock)
    with pool.lease():
        pass
    clock.now += 59
    assert pool.reap_idle(60) == 0 and pool.snapshot()["instances"] == 1
    clock.now += 2
    assert pool.reap_idle(60) == 1
    snap = pool.snapshot()
    assert snap["instances"] == 0 and snap["idle_unloads"] == 1 and not snap["loaded"]
    with pool.lease() as engine:
        assert engine == {"engine": 2}
    assert pool.snapshot()["loads"] == 2


def test_ttl_zero_never_unloads():
    clock = Clock()
    pool = InstancePool("m", Loader(), clock=clock)
    with pool.lease():
        pass
    clock.now += 1e6
    assert pool.reap_idle(0) == 0 and pool.snapshot()["instances"] == 1


def test_busy_instances_are_not_reaped():
    clock = Clock()
    pool = InstancePool("m", Loader(), clock=clock)
    with pool.lease():
        clock.now += 1000
        assert pool.reap_idle(1) == 0


def test_scale_up_and_down():
    loader = Loader()
    pool = InstancePool("m", loader, max_instances=3)
    result = pool.scale(3)
    assert result["loaded"] == 3 and pool.snapshot()["instances"] == 3 and loader.calls == 3
    result = pool.scale(1)
    assert result["unloaded"] == 2 and pool.snapshot()["instances"] == 1
    pool.scale(0)
    assert pool.snapshot()["instances"] == 0


@pytest.mark.parametrize("target", [-1, 4])
def test_scale_refuses_out_of_range_targets(target):
    pool = InstancePool("m", Loader(), max_instances=3)
    with pytest.raises(BadRequest):
        pool.scale(target)


def test_concurrent_leases_use_all_instances_up_to_the_target():
    pool = InstancePool("m", Loader(), max_instances=2)
    pool.scale(2)
    inside, peak, lock = 0, 0, threading.Lock()

    def work():
        nonlocal inside, peak
        with pool.lease():
            with lock:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.05)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = pool.snapshot()
    assert peak == 2 and snap["requests"] == 6 and snap["max_queue_depth"] >= 3 and snap["queue_depth"] == 0


def test_waiters_are_served_by_priority():
    pool = InstancePool("m", Loader())
    order = []
    holder = pool._acquire(0, None)

    def wait(priority):
        with pool.lease(priority=priority):
            order.append(priority)

    threads = []
    for priority in (1, 5, 3):
        t = threading.Thread(target=wait, args=(priority,))
        t.start()
        threads.append(t)
        while pool.queue_depth < len(threads):
            time.sleep(0.005)
    pool._release([holder])
    for t in threads:
        t.join()
    assert order == [5, 3, 1]


def test_lease_times_out_when_every_instance_stays_busy():
    pool = InstancePool("m", Loader())
    holder = pool._acquire(0, None)
    with pytest.raises(PoolTimeout):
        with pool.lease(timeout=0.05):
            pass
    pool._release([holder])
    assert pool.queue_depth == 0


def test_load_failure_is_reported_and_retried():
    loader = Loader(fail=True)
    pool = InstancePool("m", loader)
    with pytest.raises(ModelLoadFailed) as failure:
        with pool.lease():
            pass
    assert failure.value.status_code == 503 and "weights are corrupt" in failure.value.message
    snap = pool.snapshot()
    assert snap["load_failures"] == 1 and "weights are corrupt" in snap["last_error"] and snap["queue_depth"] == 0
    loader.fail = False
    with pool.lease() as engine:
        assert engine == {"engine": 2}
    assert pool.snapshot()["last_error"] is None


def test_errors_inside_a_lease_count_as_failed_requests():
    pool = InstancePool("m", Loader())
    with pytest.raises(ValueError):
        with pool.lease():
            raise ValueError("bad batch")
    snap = pool.snapshot()
    assert snap["errors"] == 1 and snap["instances"] == 1


def test_transform_changes_loaded_and_future_instances():
    pool = InstancePool("m", Loader())
    pool.scale(1)
    assert pool.transform(lambda e: {**e, "optimized": True}, {"method": "test"}) == 1
    with pool.lease() as engine:
        assert engine["optimized"]
    pool.unload()
    with pool.lease() as engine:
        assert engine == {"engine": 2, "optimized": True}
    pool.reset()
    with pool.lease() as engine:
        assert "optimized" not in engine and pool.snapshot()["optimized"] is False


def test_unload_while_busy_retires_the_instance_after_the_request():
    pool = InstancePool("m", Loader())
    with pool.lease():
        result = pool.unload()
        assert result["retiring"] == 1
    assert pool.snapshot()["instances"] == 0


def test_autoscaler_discovers_models_lazily_and_reaps():
    clock = Clock()
    known = {"a": "spec-a"}
    loads = []
    scaler = Autoscaler(lambda: dict(known), lambda spec: loads.append(spec) or spec, idle_ttl_seconds=10, clock=clock)
    assert scaler.snapshots()["a"]["loaded"] is False
    with scaler.lease("a") as engine:
        assert engine == "spec-a"
    with pytest.raises(UnknownModel):
        scaler.pool("b")
    known["b"] = "spec-b"  # a model built after start-up is found on the next miss
    with scaler.lease("b") as engine:
        assert engine == "spec-b"
    clock.now += 11
    assert scaler.reap() == {"a": 1, "b": 1}
    assert all(not s["loaded"] for s in scaler.snapshots().values())


def test_reaper_thread_unloads_idle_models():
    scaler = Autoscaler(lambda: {"a": 1}, lambda spec: object(), idle_ttl_seconds=0.05)
    with scaler.lease("a"):
        pass
    scaler.start(0.02)
    try:
        deadline = time.monotonic() + 5
        while scaler.snapshots()["a"]["instances"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert scaler.snapshots()["a"]["instances"] == 0 and scaler.reaper_running
    finally:
        scaler.stop()


def busy_for(pool, clock, seconds, instances=1):
    """Hold ``instances`` instances for ``seconds`` of the pool's clock."""
    with pool.lease_many(instances, items=instances):
        clock.now += seconds


def wait_for_instances(pool, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    while pool.snapshot()["instances"] != count and time.monotonic() < deadline:
        time.sleep(0.005)
    return pool.snapshot()["instances"]


def test_a_busy_pool_grows_one_instance_at_a_time_up_to_its_autoscale_limit():
    clock, loader = Clock(), Loader()
    pool = InstancePool("m", loader, clock=clock)
    pool.auto_max = 2
    busy_for(pool, clock, 1.0)  # busy the whole second: grow
    assert wait_for_instances(pool, 2) == 2 and loader.calls == 2
    busy_for(pool, clock, 1.0, instances=2)  # at the limit: no third instance
    time.sleep(0.05)
    snap = pool.snapshot()
    assert snap["instances"] == 2 and snap["scale_ups"] == 1 and snap["autoscale_max_instances"] == 2


def test_a_lightly_used_pool_does_not_grow():
    clock, loader = Clock(), Loader()
    pool = InstancePool("m", loader, clock=clock)
    pool.auto_max = 4
    for _ in range(5):
        busy_for(pool, clock, 0.1)
        clock.now += 0.5  # busy 1/6 of the time
    time.sleep(0.05)
    assert pool.snapshot()["instances"] == 1 and pool.snapshot()["scale_ups"] == 0


def test_growth_is_refused_without_memory_and_survives_a_failed_load():
    clock = Clock()
    pool = InstancePool("m", Loader(), clock=clock)
    pool.auto_max = 3
    pool.can_grow = lambda: False
    busy_for(pool, clock, 1.0)
    time.sleep(0.05)
    assert pool.snapshot()["instances"] == 1
    pool.can_grow = lambda: True
    pool.loader = Loader(fail=True)  # the extra instance fails to load: the pool keeps serving
    busy_for(pool, clock, 1.0)
    deadline = time.monotonic() + 5
    while pool.snapshot()["load_failures"] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    snap = pool.snapshot()
    assert snap["load_failures"] == 1 and snap["instances"] == 1 and snap["target_instances"] == 1
    with pool.lease() as engine:
        assert engine == {"engine": 1}


def test_a_predicted_rise_prewarms_a_pool_the_ttl_unloaded():
    clock, loader = Clock(), Loader()
    pool = InstancePool("m", loader, max_instances=4, clock=clock)
    pool.auto_max = 3
    with pool.lease():
        pass
    clock.now += 61
    assert pool.reap_idle(60) == 1 and pool.snapshot()["instances"] == 0
    assert pool.grow_to(2, "ml_prediction", "rise predicted") == 2  # the first again, and one ahead
    assert wait_for_instances(pool, 2) == 2 and pool.snapshot()["target_instances"] == 2
    misses = pool.snapshot()["cache_misses"]
    with pool.lease():
        pass
    assert pool.snapshot()["cache_misses"] == misses  # the request after the warm-up is no cold start
    assert pool.grow_to(9, "ml_prediction", "more") == 1 and wait_for_instances(pool, 3) == 3  # auto_max caps it
    clock.now += 61
    assert pool.reap_idle(60) == 3
    pool.can_grow = lambda: False  # no memory headroom: nothing is warmed
    assert pool.grow_to(1, "ml_prediction", "rise") == 0 and pool.snapshot()["instances"] == 0


def test_instances_added_by_load_go_when_idle_but_not_below_the_manual_floor():
    clock = Clock()
    pool = InstancePool("m", Loader(), max_instances=4, clock=clock)
    pool.auto_max = 4
    pool.scale(2)  # the floor
    busy_for(pool, clock, 1.0, instances=2)
    assert wait_for_instances(pool, 3) == 3
    clock.now += 30
    assert pool.shrink_idle(60) == 0
    clock.now += 31
    assert pool.shrink_idle(60) == 1
    snap = pool.snapshot()
    assert snap["instances"] == 2 and snap["min_instances"] == 2 and snap["scale_downs"] == 1
    clock.now += 1000
    assert pool.shrink_idle(60) == 0  # the floor stays until the idle TTL unloads the model
    assert pool.reap_idle(900) == 2 and pool.snapshot()["target_instances"] == 2


def test_lease_many_takes_only_idle_instances_and_counts_one_request():
    pool = InstancePool("m", Loader(), max_instances=3)
    pool.scale(3)
    holder = pool._acquire(0, None)
    with pool.lease_many(3, items=8) as engines:
        assert len(engines) == 2 and holder.engine not in engines  # never waits for the busy one
        assert pool.snapshot()["busy_instances"] == 3
    pool._release([holder])
    with pool.lease_many(2, items=4) as engines:
        assert len(engines) == 2
    snap = pool.snapshot()
    assert snap["busy_instances"] == 0 and snap["requests"] == 2 and snap["items"] == 12


def test_autoscaler_shrinks_grown_pools_in_its_sweep():
    clock = Clock()
    scaler = Autoscaler(lambda: {"a": 1}, lambda spec: object(), idle_ttl_seconds=900, clock=clock,
                        autoscale_max_instances=2, scale_down_idle_seconds=60)
    pool = scaler.pool("a")
    busy_for(pool, clock, 1.0)
    assert wait_for_instances(pool, 2) == 2
    clock.now += 61
    assert scaler.reap() == {} and pool.snapshot()["instances"] == 1  # shrunk, not unloaded
