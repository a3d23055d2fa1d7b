"""Dagster's in-process execution, on its way out, sets SIGTERM to whatever SIGINT's handler is ("map SIGTERM to
SIGINT, for k8s": ``dagster._utils.interrupts.setup_interrupt_handlers``). A process started in the background
has SIGINT ignored, so after its first run SIGTERM was ignored too: the process could no longer be stopped, and
every child it started afterwards inherited the ignored SIGTERM (SIG_IGN survives exec). Found in the test
suite, where a later test's server then ignored its stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def sigterm_kept() -> Iterator[None]:
    """Run Dagster in the block; SIGTERM's handler afterwards is the one before it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Dagster does not touch signals off the main thread, and neither can we
        return
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if before is not None:  # None: a handler not set from Python, which we cannot put back
            signal.signal(signal.SIGTERM, before)
