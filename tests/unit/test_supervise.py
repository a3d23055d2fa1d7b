"""kiln serve's supervisor ends every process of the server on stop, in bounded time, also when the server
or the supervisor itself is killed. The "server" here is a real process tree shaped like BentoML's: an
arbiter whose worker runs in its own session, out of reach of a signal to the arbiter's group."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

ARBITER = """
import signal, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
print(worker.pid, flush=True)
if sys.argv[1] == "stubborn":  # ignores SIGTERM: only the supervisor's deadline stops it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:  # stops its worker, as BentoML's arbiter does
    signal.signal(signal.SIGTERM, lambda *_: (worker.terminate(), worker.wait(), sys.exit(0)))
time.sleep(300)
"""
SUPERVISOR = "import sys; from kiln.supervise import supervise; sys.exit(supervise([sys.executable, '-c', {!r}, {!r}], 1.0))"


def start(mode):
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR.format(ARBITER, mode)], stdout=subprocess.PIPE,
                                  start_new_session=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    worker = int(supervisor.stdout.readline())
    arbiter = psutil.Process(supervisor.pid).children()[0]
    time.sleep(1.5)  # the supervisor has seen the worker (it looks every 0.5 s)
    return supervisor, arbiter, worker


def gone(pid, within=15.0):
    deadline = time.monotonic() + within  # a liveness deadline, far above the 1 s shutdown timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)  # leave nothing behind, then fail
    return False


@pytest.mark.parametrize("mode", ["graceful", "stubborn"])
def test_sigterm_stops_the_whole_server_within_the_timeout(mode):
    supervisor, arbiter, worker = start(mode)
    supervisor.send_signal(signal.SIGTERM)
    supervisor.wait(timeout=15)
    assert gone(arbiter.pid) and gone(worker)


def test_killing_the_supervisor_still_stops_the_server():
    supervisor, arbiter, worker = start("graceful")
    supervisor.kill()
    supervisor.wait()
    assert gone(arbiter.pid) and gone(worker)


def test_a_killed_arbiter_leaves_no_worker_behind():
    supervisor, arbiter, worker = start("graceful")
    arbiter.kill()
    supervisor.wait(timeout=15)
    assert gone(worker)
