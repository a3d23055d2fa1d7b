"""One candidate of the champion-gate race, run in a spawned process.

Its own module, so the spawned child imports only kiln (not tests.conftest, which would give the child a
fresh KILN_HOME of its own)."""

from pathlib import Path

BARRIER_TIMEOUT_S = 300  # a child that failed before the barrier must not leave the other waiting forever


def register_candidate(args) -> str:
    tracking_uri, artifacts, records_url, store_dir, seed, value, barrier = args
    from kiln.db import Database
    from kiln.recipes.digits import DigitsHyperparameters, DigitsMLPRecipe
    from kiln.store import ModelStore, fingerprint_of
    from kiln.tracking import Tracker

    store = ModelStore(Path(store_dir))
    params = DigitsHyperparameters(epochs=1, seed=seed)
    fingerprint = fingerprint_of(DigitsMLPRecipe.fingerprint_inputs(params))
    with store.stage("race", fingerprint, "classification") as staging:
        DigitsMLPRecipe.train(params, staging)
    model = store.find("race", fingerprint)
    tracker = Tracker(tracking_uri, Path(artifacts), "race", gate_lock=Database(records_url).lock)
    with tracker.run("candidate") as run:
        run_id = run.info.run_id
    barrier.wait(timeout=BARRIER_TIMEOUT_S)  # both registrations start together
    return tracker.register(model, run_id, "accuracy", value).version


def race_in_process(args, results) -> None:
    """A spawned process's entry: the candidate's version, or the error that stopped it, on ``results``."""
    seed = args[4]
    try:
        results.put((seed, True, register_candidate(args)))
    except BaseException as exc:  # reported to the test, which fails with it instead of waiting
        results.put((seed, False, f"{type(exc).__name__}: {exc}"))
