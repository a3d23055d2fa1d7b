"""Batching concurrent text-to-image requests that share a model and sampler settings: each task thread hands
its request to the model's batcher and waits; one sampling thread runs whatever arrived within a short window
as one batch (per-sample seeds keep every image what it would be alone). Each request keeps its own progress
callback, run on the request's own thread (a callback stores progress in the task records: 32 of them in the
sampling thread would stall every step); one that raises (a cancelled task) ends that request at once, and the
rest of the batch goes on."""

from __future__ import annotations

import queue
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from kiln.generation.digits import DigitsDiffusion, ImageRequest
from kiln.generation.sampling import StepCallback

WINDOW_SECONDS = 0.02  # how long the first request of a batch waits for company
MAX_BATCH = 64


@dataclass
class Pending:
    request: ImageRequest
    key: tuple[int, float]
    on_step: StepCallback | None
    done: threading.Event = field(default_factory=threading.Event)
    image: Any = None
    error: BaseException | None = None
    steps: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)  # denoising steps to report; None: done
    _finishing: threading.Lock = field(default_factory=threading.Lock)  # the sampler and the request may both finish it

    def finish(self, image: Any = None, error: BaseException | None = None) -> None:
        with self._finishing:
            if not self.done.is_set():
                self.image, self.error = image, error
                self.done.set()
                self.steps.put(None)

    def advance(self, done: int, total: int) -> None:
        self.steps.put((done, total))

    def wait_and_report(self) -> None:
        """Until the image is done: report every step through ``on_step``, in order, on this (the request's) thread."""
        while (step := self.steps.get()) is not None:
            if self.on_step is None:
                continue
            try:
                self.on_step(*step)
            except BaseException as exc:  # this request stops now; the batch goes on without it
                self.finish(error=exc)
                return


class DigitsBatcher:
    def __init__(self, model: DigitsDiffusion, window_seconds: float = WINDOW_SECONDS, max_batch: int = MAX_BATCH):
        self.model = model
        self.window = window_seconds
        self.max_batch = max_batch
        self._queue: list[Pending] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self.batches: list[int] = []  # sizes of the batches run (for the benchmark and tests)

    def generate(self, prompt: str, seed: int, negative_prompt: str | None, steps: int, guidance_scale: float,
                 on_step: StepCallback | None = None):
        """One image (1, H, W) in -1..1; raises what its own callback raised (e.g. TaskCancelled)."""
        self.model.ground(prompt)  # a bad prompt fails here, not inside someone else's batch
        pending = Pending(ImageRequest(prompt, seed, negative_prompt), (steps, float(guidance_scale)), on_step)
        with self._wake:
            self._queue.append(pending)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="kiln-digits-batcher", daemon=True)
                self._thread.start()
            self._wake.notify()
        pending.wait_and_report()
        if pending.error is not None:
            raise pending.error
        return pending.image

    def _take(self) -> list[Pending]:
        with self._wake:
            while not self._queue:
                if not self._wake.wait(timeout=30) and not self._queue:
                    self._thread = None  # idle: the thread ends, the next request starts another
                    return []
        threading.Event().wait(self.window)  # let concurrent requests join
        with self._wake:
            key = self._queue[0].key
            batch = [p for p in self._queue if p.key == key][: self.max_batch]
            self._queue = [p for p in self._queue if p not in batch]
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            self.batches.append(len(batch))
            steps, guidance = batch[0].key

            def fan_out(done: int, total: int, batch: list[Pending] = batch) -> None:
                for pending in batch:
                    if pending.on_step is not None and not pending.done.is_set():
                        pending.advance(done, total)

            try:
                images = self.model.images([p.request for p in batch], steps, guidance, fan_out)
            except BaseException as exc:
                for pending in batch:
                    pending.finish(error=exc)
                continue
            for pending, image in zip(batch, images):
                pending.finish(image=image)


_batchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def digits_batcher(model: DigitsDiffusion) -> DigitsBatcher:
    """The one batcher of a loaded model."""
    with _lock:
        if model not in _batchers:
            _batchers[model] = DigitsBatcher(model)
        return _batchers[model]
