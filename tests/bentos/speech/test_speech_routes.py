"""Every speech route on the real audio service in process (no pipeline run, no BentoML server), bad input included."""

import base64
import io

import numpy as np
import pytest
import soundfile as sf

from tests.heard import SPOKEN, assert_heard


@pytest.fixture(scope="module")
def wav(client):
    response = client.post("/api/v1/synth", json={"text": SPOKEN, "format": "wav"})
    assert response.status_code == 200
    return response.content


def duration_of(data: bytes) -> float:
    info = sf.info(io.BytesIO(data))
    return info.frames / info.samplerate


# --- seed 003 (TTSKit) ---

@pytest.mark.parametrize("fmt, mime", [("wav", "audio/wav"), ("ogg", "audio/ogg"), ("mp3", "audio/mpeg")])
def test_synth_returns_audio_with_ttskit_headers(client, fmt, mime):
    response = client.post("/api/v1/synth", json={"text": "Hello, world!", "lang": "en", "format": fmt, "rate": 1.1})
    assert response.status_code == 200 and response.headers["content-type"] == mime
    assert response.headers["content-disposition"] == f"attachment; filename=synthesis.{fmt}"
    assert int(response.headers["x-audio-size"]) == len(response.content)
    assert abs(float(response.headers["x-audio-duration"]) - duration_of(response.content)) < 0.1
    assert response.headers["x-engine-used"] == "piper" and response.headers["x-voice-used"] == "en_US-joe-medium"


def test_synth_persian_routes_to_espeak(client):
    response = client.post("/api/v1/synth", json={"text": "سلام دنیا", "lang": "fa", "format": "wav"})
    assert response.status_code == 200 and response.headers["x-engine-used"] == "espeak"


@pytest.mark.parametrize(
    "body, status, error_type, words",
    [
        ({"text": ""}, 422, "validation_error", "text"),
        ({"text": "a" * 1500}, 400, "text_too_long", "Text too long: 1500 characters (max: 1000)"),
        ({"text": "a" * 5001}, 422, "validation_error", "text"),
        ({"text": "hi", "engine": "gtts"}, 422, "validation_error", "Unknown TTS engine 'gtts'"),
        ({"text": "hi", "engine": "piper", "voice": "en_US-lessac-medium"}, 422, "validation_error", "no voice"),
        ({"text": "hi", "voice": "fa_IR-amir-medium"}, 422, "validation_error", "voice"),
        ({"text": "hi", "format": "aac"}, 422, "validation_error", "format"),
        ({"text": "hi", "rate": 9}, 422, "validation_error", "rate"),
        ({"text": "hi", "lang": "xx"}, 422, "validation_error", "'xx'"),
        ({"text": "hi", "engine": "transformers"}, 503, "engine_error", "kiln pipeline"),
        ({}, 422, "validation_error", "text"),
    ],
)
def test_synth_bad_input(client, body, status, error_type, words):
    response = client.post("/api/v1/synth", json=body)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["error_type"] == error_type and words in payload["detail"] and payload["request_id"]


def test_batch_reports_errors_per_item(client):
    response = client.post("/api/v1/synth/batch", json={"texts": ["Hello", "a" * 1500, "World"], "format": "wav"})
    body = response.json()
    assert response.status_code == 200 and body["total_texts"] == 3 and body["successful"] == 2 and body["failed"] == 1
    assert body["success"] is True  # TTSKit's example: the batch ran; the failures are reported per item
    assert body["results"][1] == {"index": 1, "success": False, "text": "a" * 100,
                                  "error": "Text too long: 1500 characters (max: 1000)", "status_code": 400}
    first = base64.b64decode(body["results"][0]["audio_base64"])
    assert duration_of(first) == pytest.approx(body["results"][0]["duration"], abs=0.05)
    assert client.post("/api/v1/synth/batch", json={"texts": ["x"] * 11}).status_code == 422
    assert client.post("/api/v1/synth/batch", json={"texts": []}).status_code == 422
    assert client.post("/api/v1/synth/batch", json={"texts": ["x"], "format": "aac"}).status_code == 422


def test_preview_engines_voices_and_test(client):
    preview = client.get("/api/v1/synth/preview", params={"text": "Hello, world!"}).json()
    assert preview["engine"] == "piper" and preview["estimated_duration"] == 1.3 and "espeak" in preview["available_engines"]
    assert client.get("/api/v1/synth/preview", params={"text": "a" * 1200}).status_code == 400
    engines = client.get("/api/v1/engines").json()
    assert {e["name"] for e in engines} == {"piper", "transformers", "espeak"}
    assert {e["name"] for e in client.get("/api/v1/engines", params={"available_only": True}).json()} == {"piper", "espeak"}
    piper = client.get("/api/v1/engines/piper").json()
    assert piper["available"] and piper["capabilities"]["offline"] and piper["voices"] == ["en_US-joe-medium"]
    assert client.get("/api/v1/engines/gtts").status_code == 404
    voices = client.get("/api/v1/engines/espeak/voices", params={"language": "ar"}).json()
    assert voices and all(v["language"] == "ar" and v["engine"] == "espeak" for v in voices)
    everything = client.get("/api/v1/voices").json()
    assert {"piper", "espeak"} == {v["engine"] for v in everything}
    assert all(v["engine"] == "piper" for v in client.get("/api/v1/voices", params={"engine": "piper"}).json())
    tested = client.get("/api/v1/engines/espeak/test").json()
    assert tested["success"] and tested["duration"] > 0.3 and tested["message"] == "Engine 'espeak' is working correctly"
    assert client.get("/api/v1/engines/transformers/test").status_code == 503
    capabilities = client.get("/api/v1/capabilities").json()
    assert capabilities["engines"]["piper"]["capabilities"]["neural"] and "faster-whisper" in capabilities["recognition"]


def test_system_cache_and_info_routes(client):
    client.post("/api/v1/synth", json={"text": "cache me", "format": "wav"})
    second = client.post("/api/v1/synth", json={"text": "cache me", "format": "wav"})
    assert second.headers["x-cache"] == "HIT"
    stats = client.get("/api/v1/cache/stats").json()
    assert stats["enabled"] and stats["hits"] >= 1 and stats["entries"] >= 1 and 0 < stats["hit_rate"] <= 1
    assert client.get("/api/v1/cache/enabled").json() == {"enabled": True}
    cleared = client.post("/api/v1/cache/clear").json()
    assert cleared["message"] == "Cache cleared successfully" and client.get("/api/v1/cache/stats").json()["entries"] == 0
    health = client.get("/api/v1/health").json()
    assert health["status"] == "healthy" and health["engines"] == 2 and health["uptime"] > 0
    assert client.get("/api/v1/status").json()["engines"]["transformers"]["available"] is False
    assert "piper" in client.get("/api/v1/info").json()["tts_engines"]
    assert client.get("/api/v1/config").json()["max_text_length"] == 1000
    assert client.get("/api/v1/formats").json() == {"formats": ["wav", "mp3", "ogg", "flac"]}
    assert {"en", "fa", "ar", "es", "fr", "de"} <= set(client.get("/api/v1/languages").json()["languages"])
    assert "POST /api/v1/synth" in client.get("/api/v1/documentation").json()["endpoints"]
    metrics = client.get("/api/v1/metrics").json()
    assert metrics["tts_stats"]["total_synthesis"] >= 3 and "cpu_percent" in metrics["system_metrics"]
    assert metrics["tts_stats"]["engines"]["piper"]["rtf"] > 0
    assert client.get("/api/v1/version").json()["status"] == "running"


# --- seed 000 ---

def test_seed000_synthesize_and_transcribe(client, wav):
    for path in ("/synthesize", "/tts/synthesize"):
        body = client.post(path, json={"model_name": "default", "inputs": "Good morning.", "output_format": "flac"}).json()
        assert body["success"] and body["audio_format"] == "flac" and body["model_info"]["engine"] == "piper"
        assert duration_of(base64.b64decode(body["audio_data"])) == pytest.approx(body["duration"], abs=0.05)
    by_voice = client.post("/synthesize", json={"model_name": "en_US-joe-medium", "inputs": "Hi."}).json()
    assert by_voice["model_info"]["voice"] == "en_US-joe-medium"
    for path in ("/transcribe", "/stt/transcribe"):
        body = client.post(path, files={"file": ("a.wav", wav, "audio/wav")}).json()
        assert body["success"] and body["segments"]
        assert_heard(body["text"], 0.15)
    sphinx = client.post("/transcribe", files={"audio": ("a.wav", wav)}, data={"model_name": "pocketsphinx"}).json()
    assert sphinx["model_info"]["engine"] == "pocketsphinx"
    assert_heard(sphinx["text"], 0.35)


@pytest.mark.parametrize(
    "request_kwargs, status",
    [
        ({"json": {"model_name": "default", "inputs": ""}}, 422),
        ({"json": {"model_name": "default"}}, 422),
        ({"json": {"model_name": "tacotron9", "inputs": "hi"}}, 422),
        ({"json": {"model_name": "default", "inputs": "hi", "output_format": "aac"}}, 422),
        ({"json": {"model_name": "speecht5_tts", "inputs": "hi"}}, 503),
        ({"json": {"model_name": "default", "inputs": "a" * 1001}}, 400),
    ],
)
def test_seed000_synthesize_bad_input(client, request_kwargs, status):
    response = client.post("/synthesize", **request_kwargs)
    assert response.status_code == status and response.json()["success"] is False


@pytest.mark.parametrize("upload", [None, b"", b"definitely not audio", b"RIFF\x10\x00\x00\x00WAVEfmt "])
def test_seed000_transcribe_refuses_non_audio(client, upload):
    files = None if upload is None else {"file": ("x.wav", upload, "audio/wav")}
    response = client.post("/transcribe", files=files, data={"language": "en"})
    assert response.status_code == 422 and response.json()["success"] is False


def test_seed000_unknown_stt_engine_and_health_models_validate(client, wav):
    assert client.post("/transcribe", files={"file": ("a.wav", wav)}, data={"model_name": "vosk"}).status_code == 422
    assert client.post("/transcribe", files={"file": ("a.wav", wav)}, data={"model_name": "whisper"}).status_code == 503
    health = client.get("/audio/health").json()
    assert health["status"] == "healthy" and health["engines"]["stt"]["faster-whisper"] and "whisper" in health["unavailable"]
    assert client.get("/tts/health").json()["default_engine"] == "piper"
    models = client.get("/audio/models").json()
    assert {m["name"] for m in models["stt_models"]} == {"faster-whisper", "whisper", "pocketsphinx"}
    valid = client.post("/audio/validate", files={"file": ("a.wav", wav)}).json()
    assert valid["valid"] and valid["sample_rate"] == 22050 and valid["channels"] == 1 and valid["duration"] > 1
    assert client.post("/audio/validate", files={"file": ("a.txt", b"text")}).status_code == 422


# --- seed 001 ---

def test_seed001_synthesize_serves_the_file_and_transcribes(client, wav):
    body = client.post("/api/audio/synthesize", json={"text": "Hello, world!", "voice": "default-female"}).json()
    assert body["status"] == "completed" and body["audio_url"].startswith("/outputs/audio/speech_")
    served = client.get(body["audio_url"])
    assert served.status_code == 200 and served.headers["content-type"] == "audio/mpeg"
    assert duration_of(served.content) == pytest.approx(body["duration"], abs=0.1)
    assert client.get("/outputs/../../etc/passwd").status_code == 404
    assert client.get("/outputs/%2e%2e/%2e%2e/etc/passwd").status_code == 404
    result = client.post("/api/audio/transcribe", files={"audio": ("a.wav", wav)}, data={"model": "tiny.en"}).json()
    assert result["status"] == "completed" and result["segments"][0]["end"] > 0
    assert_heard(result["text"], 0.15)
    bad = client.post("/api/audio/transcribe", files={"audio": ("a.wav", b"nope")})
    assert bad.status_code == 422 and set(bad.json()) == {"detail", "request_id"}
    assert client.post("/api/audio/synthesize", json={"text": ""}).status_code == 422
    assert client.post("/api/audio/transcribe", files={"audio": ("a.wav", wav)}, data={"model": "large-v9"}).status_code == 422


# --- OpenAI-compatible ---

def test_openai_speech_and_transcriptions(client, wav):
    speech = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hello there.", "voice": "alloy", "response_format": "wav"})
    assert speech.status_code == 200 and speech.headers["content-type"] == "audio/wav" and duration_of(speech.content) > 0.3
    pcm = client.post("/v1/audio/speech", json={"input": "Hello there.", "response_format": "pcm"})
    assert pcm.headers["content-type"] == "audio/pcm" and len(pcm.content) % 2 == 0
    bad_format = client.post("/v1/audio/speech", json={"input": "x", "response_format": "aac"})
    assert bad_format.status_code == 422
    error = bad_format.json()["error"]  # OpenAI's error shape, which its client libraries parse
    assert error["type"] == "invalid_request_error" and error["param"] == "response_format" and "aac" in error["message"]
    assert client.post("/v1/audio/speech", json={"input": ""}).status_code == 422
    files = {"file": ("a.wav", wav)}
    assert_heard(client.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"}).json()["text"], 0.15)
    text = client.post("/v1/audio/transcriptions", files=files, data={"response_format": "text"})
    assert text.headers["content-type"].startswith("text/plain")
    assert_heard(text.text, 0.15)
    srt = client.post("/v1/audio/transcriptions", files=files, data={"response_format": "srt"}).text
    assert srt.startswith("1\n00:00:00,000 --> 00:00:0")
    vtt = client.post("/v1/audio/transcriptions", files=files, data={"response_format": "vtt"}).text
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ")
    verbose = client.post("/v1/audio/transcriptions", files=files,
                          data={"response_format": "verbose_json", "timestamp_granularities[]": "word"}).json()
    assert verbose["language"] == "en" and verbose["segments"] and verbose["words"][0]["start"] >= 0
    assert client.post("/v1/audio/transcriptions", files=files, data={"response_format": "xml"}).status_code == 422
    assert client.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"junk")}).status_code == 422


def test_tts_metrics_count_real_synthesis(client):
    before = client.get("/metrics/tts").json()["result"]
    response = client.post("/api/v1/synth", json={"text": "Counting this one.", "engine": "espeak", "format": "wav"})
    assert response.status_code == 200
    after = client.get("/metrics/tts").json()["result"]
    assert after["total_requests"] == before["total_requests"] + 1
    assert after["tts"]["espeak"]["audio_seconds"] > before["tts"]["espeak"]["audio_seconds"]


# --- honest answers: the model named is the model that runs, or a 503 saying how to get it ---

@pytest.mark.parametrize("path, field", [("/transcribe", "model_name"), ("/api/audio/transcribe", "model"),
                                         ("/v1/audio/transcriptions", "model")])
def test_a_named_stt_model_that_is_not_stored_is_503_not_another_model(client, wav, path, field):
    upload = "audio" if path.startswith("/api/audio") else "file"
    response = client.post(path, files={upload: ("a.wav", wav)}, data={field: "whisper-base"})
    assert response.status_code == 503, response.text
    assert "base" in response.text and ("base.pt" in response.text or "model.bin" in response.text)


def test_transcription_names_the_model_that_ran(client, wav):
    body = client.post("/transcribe", files={"file": ("a.wav", wav)}, data={"model_name": "default"}).json()
    assert body["model_info"]["model"] == "tiny.en" and body["model_info"]["requested_model"] == "default"


@pytest.mark.parametrize("name", ["bark_tts", "mms_tts", "speecht5_tts", "bark", "vits"])
def test_tts_families_not_stored_are_503(client, name):
    response = client.post("/synthesize", json={"model_name": name, "inputs": "Hello."})
    assert response.status_code == 503 and response.json()["success"] is False, response.text


def test_an_upload_that_decodes_to_too_many_samples_is_413(client, monkeypatch):
    from kiln.settings import get_settings

    # 2 s of 8 channels at 96 kHz: a small FLAC of 1.5 M samples, over a limit lowered for the test.
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    sf.write(buffer, (0.1 * rng.standard_normal((192_000, 8))).astype(np.float32), 96_000, format="FLAC")
    monkeypatch.setattr(get_settings(), "audio_max_decoded_samples", 1_000_000)
    for path, field in (("/transcribe", "file"), ("/audio/validate", "file")):
        response = client.post(path, files={field: ("big.flac", buffer.getvalue(), "audio/flac")})
        assert response.status_code == 413 and "KILN_AUDIO_MAX_DECODED_SAMPLES" in response.text, (path, response.text)
