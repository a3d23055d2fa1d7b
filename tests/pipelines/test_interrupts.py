"""Dagster's in-process execution sets SIGTERM to SIGINT's handler when it ends; with SIGINT ignored (any
background process) that left SIGTERM ignored. ``sigterm_kept`` puts it back."""

import signal

import dagster as dg

from pipelines.interrupts import sigterm_kept


@dg.op
def noop() -> int:
    return 1


@dg.job
def tiny():
    noop()


def run_with_sigint_ignored(guarded: bool):
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        if guarded:
            with sigterm_kept():
                assert tiny.execute_in_process().success
        else:
            assert tiny.execute_in_process().success
        return signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])


def test_dagster_leaves_sigterm_ignored_when_sigint_is():
    assert run_with_sigint_ignored(guarded=False) is signal.SIG_IGN  # what the guard is for


def test_sigterm_is_kept_around_a_run():
    assert run_with_sigint_ignored(guarded=True) is signal.SIG_DFL
