"""Seed 002's files on the fakes: upload (checked against its bytes), metadata, download with Range, and
the bad inputs: too large, wrong or unknown types, names that try to leave the store."""

import hashlib
import io
import wave

import pytest

from tests.bentos.tasks.conftest import upload


def wav_bytes(seconds=0.1, rate=8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x01" * int(seconds * rate))
    return buffer.getvalue()


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 40


def test_upload_records_type_size_and_sha256(client):
    data = b"a,b\n1,2\n3,4\n"
    response = client.post("/files/upload", files={"file": ("table.csv", data, "text/csv")}, data={"description": "two rows"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filename"] == "table.csv" and body["size"] == len(data) and body["content_type"] == "text/csv"
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["description"] == "two rows"
    assert body["status"] == "uploaded" and body["upload_date"].endswith("Z")
    meta = client.get(f"/files/{body['id']}").json()
    assert meta["download_url"].endswith(f"/files/{body['id']}/download")


@pytest.mark.parametrize("name, data, declared, kind", [
    ("a.json", b'[{"x": 1}]', "application/json", "application/json"),
    ("a.jsonl", b'{"x": 1}\n{"x": 2}\n', "application/octet-stream", "application/x-ndjson"),
    ("voice.wav", wav_bytes(), "audio/x-wav", "audio/wav"),
    ("pixel.png", PNG, "image/png", "image/png"),
    ("notes.txt", "naïve café\n".encode(), "text/plain", "text/plain"),
])
def test_the_type_comes_from_the_bytes(client, name, data, declared, kind):
    assert upload(client, name, data, declared)["content_type"] == kind


@pytest.mark.parametrize("name, data, declared, words", [
    ("evil.png", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff", "image/png", "not a type"),
    ("fake.png", b"just text, not an image\n", "image/png", "sent as image/png"),
    ("fake.json", b"not json at all\n", "application/json", "sent as application/json"),
    ("doc.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "application/pdf", "application/pdf are not accepted"),
    ("blob.bin", bytes(range(256)) * 4, "application/octet-stream", "not a type"),
])
def test_wrong_or_unknown_types_are_415(client, name, data, declared, words):
    response = client.post("/files/upload", files={"file": (name, data, declared)})
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "UNSUPPORTED_MEDIA_TYPE" and words in error["message"]


def test_too_large_is_413_and_nothing_is_kept(tmp_path):
    from tests.bentos.fakes import fake_server

    server = fake_server(tmp_path, max_upload_bytes=10_000)
    try:
        big = b"a,b\n" + b"1,2\n" * 5000
        response = server.client.post("/files/upload", files={"file": ("big.csv", big, "text/csv")})
        assert response.status_code == 413 and response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        stored = [p for p in (tmp_path / "files").rglob("*") if p.is_file()] if (tmp_path / "files").exists() else []
        assert stored == []
    finally:
        server.close()


def test_empty_and_missing_files_are_422(client):
    assert client.post("/files/upload", files={"file": ("e.csv", b"", "text/csv")}).status_code == 422
    missing = client.post("/files/upload", data={"description": "no file"})
    assert missing.status_code == 422 and "file" in missing.json()["error"]["message"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "..\\..\\boot.ini", "/abs/path/x.csv", "a/b/../../c.csv", "\x00evil.csv", ".."])
def test_names_cannot_leave_the_store(client, server, name):
    body = upload(client, name, b"a,b\n1,2\n", "text/csv")
    assert "/" not in body["filename"] and "\\" not in body["filename"] and not body["filename"].startswith(".")
    root = server.settings.file_store_dir.resolve()
    stored = [p for p in root.rglob("*") if p.is_file()]
    assert stored and all(root in p.resolve().parents for p in stored)
    download = client.get(f"/files/{body['id']}/download")
    assert download.status_code == 200 and download.content == b"a,b\n1,2\n"
    assert "filename=" in download.headers["content-disposition"] and ".." not in download.headers["content-disposition"].split("filename=")[1].split(";")[0]


def test_download_streams_with_range(client):
    data = bytes(range(256)) * 3 + b"a,b\n"  # not text: upload it as CSV would fail, so send a PNG-like blob
    body = upload(client, "range.png", PNG + data, "image/png")
    full = client.get(f"/files/{body['id']}/download")
    assert full.status_code == 200 and full.content == PNG + data and full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "image/png" and full.headers["x-content-sha256"] == body["sha256"]
    part = client.get(f"/files/{body['id']}/download", headers={"Range": "bytes=8-15"})
    assert part.status_code == 206 and part.content == (PNG + data)[8:16]
    assert part.headers["content-range"] == f"bytes 8-15/{len(PNG + data)}"


def test_unknown_file_is_404(client):
    for path in ("/files/nope", "/files/nope/download"):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"


def test_owners_see_only_their_files_and_tasks(tmp_path):
    from tests.bentos.fakes import fake_server

    server = fake_server(tmp_path, enable_auth=True, api_keys={"alice": "alice-key-0123456789", "bob": "bob-key-0123456789",
                                                                  "admin": "admin-key-0123456789"})
    try:
        client = server.client
        alice, bob = {"X-API-Key": "alice-key-0123456789"}, {"X-API-Key": "bob-key-0123456789"}
        mine = upload(client, "private.csv", b"a\n1\n", "text/csv", **alice)
        assert client.get(f"/files/{mine['id']}", headers=bob).status_code == 404
        assert client.get(f"/files/{mine['id']}/download", headers=bob).status_code == 404
        assert client.get(f"/files/{mine['id']}", headers=alice).status_code == 200
        task = client.post("/tasks", headers=alice, json={"title": "t", "task_type": "wait"}).json()
        assert client.get(f"/tasks/{task['id']}", headers=bob).status_code == 404
        assert client.delete(f"/tasks/{task['id']}", headers=bob).status_code == 404
        assert task["id"] not in {t["id"] for t in client.get("/tasks", headers=bob).json()["tasks"]}
        assert task["id"] in {t["id"] for t in client.get("/tasks", headers=alice).json()["tasks"]}
        everyone = client.get("/tasks", headers={"X-API-Key": "admin-key-0123456789"}).json()["tasks"]
        assert task["id"] in {t["id"] for t in everyone}  # an admin sees all
        assert client.get(f"/files/{mine['id']}", headers={"X-API-Key": "admin-key-0123456789"}).status_code == 200
        # bob cannot refer to alice's file by name in a task either
        refused = client.post("/tasks", headers=bob, json={"title": "t", "task_type": "data_processing",
                                                            "parameters": {"input_file": "private.csv"}})
        assert refused.status_code == 422 and "parameters.input_file" in refused.json()["error"]["message"]
        assert client.get("/tasks").status_code == 401
    finally:
        server.close()
