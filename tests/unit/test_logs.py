"""Structured log files and the log folder's guard against paths that leave it."""

import json
import logging
import os

import pytest

from kiln.errors import BadRequest, NotFound
from kiln.logs import JsonFormatter, LogDirectory, rotating_json_handler


@pytest.fixture
def logs(tmp_path):
    root = tmp_path / "logs"
    root.mkdir()
    (root / "api.log").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    (tmp_path / "secret.txt").write_text("do not read\n")
    os.symlink(tmp_path / "secret.txt", root / "escape.log")
    return LogDirectory(root)


def test_lists_only_real_files(logs):
    assert [f["name"] for f in logs.list()] == ["api.log"]


def test_reads_from_the_end_or_the_start(logs):
    text, total = logs.read("api.log", lines=3, from_end=True)
    assert text == "line 8\nline 9\nline 10\n" and total == 10
    text, total = logs.read("api.log", lines=2, from_end=False)
    assert text == "line 1\nline 2\n" and total == 10
    assert logs.read("api.log")[0].count("\n") == 10


@pytest.mark.parametrize("name", ["../secret.txt", "/etc/passwd", "..", ".", "", "a/../../b", ".hidden", "x\\..\\y"])
def test_names_leaving_the_folder_are_refused(logs, name):
    with pytest.raises(BadRequest):
        logs.resolve(name)


def test_symlink_out_of_the_folder_is_refused(logs):
    with pytest.raises(BadRequest):
        logs.read("escape.log")
    with pytest.raises(BadRequest):
        logs.clear("escape.log")
    assert (logs.root.parent / "secret.txt").read_text() == "do not read\n"


def test_missing_file_is_not_found(logs):
    with pytest.raises(NotFound):
        logs.read("nope.log")


def test_clear_truncates(logs):
    assert logs.clear("api.log") == sum(len(f"line {i}\n") for i in range(1, 11))
    assert logs.read("api.log") == ("", 0)


def test_json_formatter_keeps_extra_fields():
    record = logging.makeLogRecord({"name": "kiln.api", "levelname": "INFO", "msg": "done %s", "args": ("x",), "path": "/predict", "status": 200})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "done x" and entry["path"] == "/predict" and entry["status"] == 200 and entry["timestamp"]


def test_log_files_rotate_and_keep_a_bounded_number_of_backups(tmp_path):
    logger = logging.getLogger("kiln.test.rotation")
    logger.propagate = False
    handler = rotating_json_handler(tmp_path / "kiln-test.log", max_bytes=2_000, backups=2)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for i in range(200):
            logger.info("request %d", i, extra={"path": "/predict"})
    finally:
        logger.removeHandler(handler)
        handler.close()
    names = LogDirectory(tmp_path).names()
    assert names == ["kiln-test.log", "kiln-test.log.1", "kiln-test.log.2"]
    assert all((tmp_path / n).stat().st_size <= 2_000 for n in names)
    last = (tmp_path / "kiln-test.log").read_text().splitlines()[-1]
    assert json.loads(last)["message"] == "request 199"
