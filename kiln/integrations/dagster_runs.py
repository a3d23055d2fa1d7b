"""Launching Dagster runs from Kiln and following them: through the webserver's GraphQL API when it is
up (the run goes through the instance's run coordinator, like a launch from the UI), else in a process
of its own (``python -m pipelines.launch``) on the same instance. Either way the run is recorded in
DAGSTER_HOME and shows in the Dagster UI; Kiln never imports the pipelines."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kiln.integrations.dagster_graphql import DagsterGraphQL
from kiln.settings import Settings

log = logging.getLogger("kiln.tasks")

if TYPE_CHECKING:
    from kiln.tasks.context import TaskContext

FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass
class LaunchedRun:
    run_id: str
    via: str  # "graphql" or "process"
    url: str
    graphql: DagsterGraphQL | None = None
    process: subprocess.Popen | None = None
    steps_ended: int = 0
    steps_planned: int = 0
    status: str = "STARTING"
    log: list[str] = field(default_factory=list)
    cancel_sent: bool = False

    def poll(self) -> str:
        """Refresh and return the run's Dagster status (QUEUED, STARTED, SUCCESS, FAILURE, CANCELED...)."""
        if self.graphql is not None:
            self.status, self.steps_ended, self.steps_planned = self.graphql.run_progress(self.run_id)
        elif self.process is not None and self.process.poll() is not None and self.status not in FINISHED:
            self.status = "FAILURE"  # ended without its last line
        return self.status

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def terminate(self) -> None:
        self.cancel_sent = True
        if self.graphql is not None:
            self.graphql.terminate(self.run_id)
        elif self.process is not None and self.process.poll() is None:
            try:  # pipelines.launch stops the run at Dagster's next interrupt point and records it canceled
                self.process.stdin.write(b"cancel\n")
                self.process.stdin.flush()
            except (BrokenPipeError, OSError, AttributeError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def wait_process(self, timeout: float | None = None) -> None:
        """Wait for the launch process; one still there after ``timeout`` is killed with its group (a cancelled
        run ends at Dagster's next interrupt point, and on a busy machine its shutdown can outlast the wait)."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("Dagster launch process %s did not end in %s s: killed", self.process.pid, timeout)
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=30)
            if self.status not in FINISHED:
                self.status = "CANCELED" if self.cancel_sent else "FAILURE"


def _read_lines(run: LaunchedRun) -> None:
    """Follow a launch process: its JSON lines say which steps ended and how the run finished."""
    assert run.process is not None and run.process.stdout is not None
    for raw in run.process.stdout:
        line = raw.decode(errors="replace").rstrip()
        try:
            event = json.loads(line)
        except ValueError:
            run.log.append(line)
            del run.log[:-200]
            continue
        if event.get("event") == "run":  # with Celery, Dagster chose the run's id
            run.run_id = event["run_id"]
            run.url = f"{run.url.rsplit('/', 1)[0]}/{run.run_id}"
        elif event.get("event") == "step":
            run.steps_ended += 1
            run.status = "STARTED"
        elif event.get("event") == "done":
            run.status = event["status"]


def launch(settings: Settings, job: str, partition: str | None, run_config: dict[str, Any] | None = None,
           tags: dict[str, str] | None = None, steps_planned: int = 0) -> LaunchedRun:
    tags = {"kiln/launched_by": "task", **(tags or {})}
    graphql = DagsterGraphQL(f"http://{settings.host}:{settings.dagster_port}")
    ui = f"http://{settings.host}:{settings.dagster_port}/runs"
    if graphql.available():
        run_id = graphql.launch_job(job, partition, run_config or {}, tags)
        return LaunchedRun(run_id, "graphql", f"{ui}/{run_id}", graphql=graphql, steps_planned=steps_planned)
    run_id = str(uuid.uuid4())
    command = [sys.executable, "-m", "pipelines.launch", "--job", job, "--run-id", run_id,
               "--run-config", json.dumps(run_config or {}), *[f"--tag={k}={v}" for k, v in tags.items()]]
    if partition:
        command += ["--partition", partition]
    process = subprocess.Popen(command, cwd=settings.workspace, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)  # its own group: terminate() stops it and its children
    run = LaunchedRun(run_id, "process", f"{ui}/{run_id}", process=process, steps_planned=steps_planned)
    threading.Thread(target=_read_lines, args=(run,), daemon=True, name=f"dagster-run-{run_id[:8]}").start()
    return run


def follow(run: LaunchedRun, context: TaskContext, report: Callable[[LaunchedRun], None] | None = None,
           interval: float = 1.0) -> bool:
    """Follow ``run`` for a task until it finishes: progress = steps ended / planned (or what ``report``
    says, called every poll), and a cancelled task terminates the run. True when the task was cancelled."""
    from kiln.tasks.context import TaskCancelled

    context.on_cancel(run.terminate)
    cancelled = False
    while True:
        status = run.poll()
        if run.finished:
            break
        try:
            if report is not None:
                report(run)
            else:
                planned = max(run.steps_planned, run.steps_ended + 1)
                context.progress(min(99.0, 1 + 98 * run.steps_ended / planned), f"Dagster run {status.lower()}: "
                                 f"{run.steps_ended} of ~{planned} steps", dagster_run_id=run.run_id)
            context.wait(interval)
        except TaskCancelled:
            cancelled = True
            run.terminate()
            if run.process is not None:  # past the launch process's own bounded shutdown (its follower: 120 s)
                run.wait_process(timeout=150)
            break
    if run.process is not None:
        run.wait_process(timeout=60)
        run.poll()
    return cancelled
