"""Bound BentoML's adaptive-batching wait (see ``kiln.serving.batching`` for why it can get stuck).

BentoML 1.4 has no setting for the cork wait: its ``Optimizer.trigger_refresh`` sets ``wait`` to the mean
of the recent batches' waits. ``install_bounded_wait`` wraps it so the wait is ``bounded_wait`` of the
same samples (``KILN_BATCH_MAX_WAIT_MS``). Installed by the model worker before its server starts; every
dispatcher (one per batchable API) reads the patched class.
"""

from __future__ import annotations

import logging

from kiln.serving.batching import bounded_wait

log = logging.getLogger("kiln.batching")
_installed: dict[str, float] = {}


def install_bounded_wait(max_wait_ms: float) -> bool:
    """Clamp every BentoML dispatcher's cork wait to ``max_wait_ms``. False if BentoML's internals moved."""
    try:
        from bentoml._internal.marshal.dispatcher import Optimizer
    except ImportError:
        log.warning("BentoML's dispatcher moved: adaptive-batching wait is not bounded")
        return False
    _installed["max_wait_seconds"] = max_wait_ms / 1000.0
    if getattr(Optimizer.trigger_refresh, "kiln_bounded", False):
        return True
    original = Optimizer.trigger_refresh

    def trigger_refresh(self) -> None:
        original(self)
        if self.o_stat:
            self.wait = bounded_wait((w for _, _, w in self.o_stat), _installed["max_wait_seconds"])

    trigger_refresh.kiln_bounded = True  # type: ignore[attr-defined]
    Optimizer.trigger_refresh = trigger_refresh
    return True
