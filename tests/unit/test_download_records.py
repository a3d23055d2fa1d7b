"""Download records in the records database: survive a restart, orphaned downloads end as failed."""

import os
import subprocess
import sys
import time

import pytest

from kiln.catalog import CatalogEntry
from kiln.db import Database
from kiln.errors import NotFound
from kiln.serving.download_records import DownloadRecord, DownloadRecords
from kiln.serving.downloads import Download, DownloadManager
from kiln.serving.import_policy import ImportPolicy
from kiln.store import ModelStore


@pytest.fixture(params=["sqlite", "postgres"])
def records(request, tmp_path):
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_schema")[0]
    else:
        url = f"sqlite:///{tmp_path / 'kiln.db'}"
    database = Database(url)
    database.migrate()
    yield DownloadRecords(database)
    database.dispose()


def rooted(tmp_path):
    """An import policy under which the test's own folder may be imported from (the default allows none)."""
    return ImportPolicy(roots=(tmp_path.resolve(),))


def path_entry(tmp_path, name="tiny"):
    weights = tmp_path / "weights"
    weights.mkdir(exist_ok=True)
    (weights / "model.bin").write_bytes(b"\0" * 1000)
    return CatalogEntry(name=name, source="path", id=str(weights), task="classification")


def wait_done(manager, download_id):
    deadline = time.monotonic() + 30
    while (status := manager.status(download_id))["status"] not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def test_a_finished_download_answers_after_a_restart(tmp_path, records):
    store = ModelStore(tmp_path / "store")
    first = DownloadManager(store, None, records=records, policy=rooted(tmp_path))
    download, started = first.start(path_entry(tmp_path), in_catalog=False, options={"note": "x"})
    assert started and wait_done(first, download.id)["status"] == "completed"
    restarted = DownloadManager(store, None, records=records, policy=rooted(tmp_path))
    status = restarted.status(download.id)
    assert status["status"] == "completed" and status["downloaded_bytes"] == 1000 and status["options"] == {"note": "x"}
    assert [d["download_id"] for d in restarted.list()] == [download.id]
    with pytest.raises(NotFound):
        restarted.status("no-such-id")


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_download_left_running_by_a_stopped_server_reads_as_interrupted(tmp_path, records):
    download = Download(id="d1", model_name="tiny", source="path", model_id="/x", task="classification", via="background",
                        state="running", message="Fetching", started=time.time())
    records.save(download)
    with records.database.session() as session:
        session.get(DownloadRecord, "d1").owner_pid = dead_pid()
    manager = DownloadManager(ModelStore(tmp_path / "store"), None, records=records, policy=rooted(tmp_path))
    status = manager.status("d1")
    assert status["status"] == "failed" and "Interrupted" in status["message"] and "POST /models/download" in status["message"]
    assert records.load("d1").state == "failed"  # stored, not only reported
    assert manager.active("tiny") is None  # a new download of the model may start


def test_a_download_running_in_another_live_process_is_the_active_one(tmp_path, records):
    download = Download(id="d2", model_name="tiny", source="path", model_id="/x", task="classification", via="background",
                        state="running", message="Fetching", started=time.time())
    records.save(download)
    with records.database.session() as session:
        session.get(DownloadRecord, "d2").owner_pid = os.getppid()  # alive, not this process
    manager = DownloadManager(ModelStore(tmp_path / "store"), None, records=records, policy=rooted(tmp_path))
    existing, started = manager.start(path_entry(tmp_path), in_catalog=False)
    assert not started and existing.id == "d2" and manager.status("d2")["status"] == "running"


def test_without_a_database_downloads_live_in_memory(tmp_path):
    manager = DownloadManager(ModelStore(tmp_path / "store"), None, policy=rooted(tmp_path))
    download, _ = manager.start(path_entry(tmp_path), in_catalog=False)
    assert wait_done(manager, download.id)["status"] == "completed"
