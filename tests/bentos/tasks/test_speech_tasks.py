"""The speech task types with real engines: synthesize a file of sentences, then transcribe the audio."""

import pytest

from tests.bentos.tasks.conftest import upload, wait_for
from tests.heard import assert_heard

LINES = ["Please call me tomorrow morning after the meeting.", "The weather is cold and windy in the north today."]


@pytest.fixture(scope="module")
def speech_server(tmp_path_factory):
    from bentos.audio import AudioService
    from tests.bentos.fakes import fake_server

    server = fake_server(tmp_path_factory.mktemp("speech-tasks"), speech=AudioService.inner())
    server.start_task_workers(threads=2)
    yield server
    server.close()


def test_synthesize_each_line_then_transcribe_it(speech_server):
    client = speech_server.client
    text = upload(client, "lines.txt", "\n".join(LINES).encode() + b"\n", "text/plain")
    spoken = wait_for(client, client.post("/tasks", json={"title": "speak", "task_type": "synthesize",
                                                          "parameters": {"input_file": text["id"], "format": "wav"}}).json()["id"],
                      timeout=60)
    assert spoken["status"] == "completed", spoken
    files = spoken["result"]["files"]
    assert len(files) == 2 and all(f["size"] > 10_000 for f in files)
    assert client.get(f"/files/{files[0]['file_id']}").json()["content_type"] == "audio/wav"
    heard = wait_for(client, client.post("/tasks", json={"title": "hear", "task_type": "transcribe",
                                                         "parameters": {"input_file": files[0]["file_id"]}}).json()["id"],
                     timeout=60)
    assert heard["status"] == "completed", heard
    assert_heard(heard["result"]["text"], 0.25, expected=LINES[0])
    transcript = client.get(heard["result"]["download_url"]).json()
    assert transcript["text"] == heard["result"]["text"] and transcript["segments"]


def test_speech_tasks_refuse_the_wrong_kind_of_file(speech_server):
    client = speech_server.client
    table = upload(client, "t.csv", b"a,b\n1,2\n", "text/csv")
    failed = wait_for(client, client.post("/tasks", json={"title": "hear", "task_type": "transcribe",
                                                          "parameters": {"input_file": table["id"]}}).json()["id"])
    assert failed["status"] == "failed" and "audio file" in failed["error"]
    both = client.post("/tasks", json={"title": "x", "task_type": "synthesize", "parameters": {"text": "hi", "input_file": "t.csv"}})
    assert both.status_code == 422 and "either text or input_file" in both.json()["error"]["message"]
