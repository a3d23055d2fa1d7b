"""Speech requests are answered by the model they name or not at all: a named recognition model or TTS family
that is not stored is a 503 saying how to get it; stored models that cannot run are found at load time (503
naming the missing file), never at synthesis; SpeechT5 without a speaker embedding is refused, not zero-filled."""

import json
import shutil

import numpy as np
import pytest

from kiln.audio import io
from kiln.audio.speech import Speech
from kiln.errors import InvalidInput, ModelNotAvailable
from kiln.settings import Settings
from tests.audio.tiny_models import save_tiny_speecht5, save_tiny_vits, stage

# --- speech recognition: the model that runs is the one asked for ---


@pytest.mark.parametrize("name", ["whisper-base", "whisper_base", "base", "openai/whisper-base"])
def test_a_whisper_size_that_is_not_stored_is_503_not_tiny_en(speech, piper_clips, name):
    with pytest.raises(ModelNotAvailable) as error:
        speech.transcribe(piper_clips[0], model=name)
    assert error.value.status_code == 503
    message = error.value.message
    # which engine needs which files, and where they go
    assert "base.pt" in message and "model.bin" in message and "task speech-recognition" in message
    assert "Models here now: tiny.en" in message


def test_an_engine_named_with_a_missing_size_says_how_that_engine_gets_it(speech, piper_clips):
    with pytest.raises(ModelNotAvailable) as error:
        speech.transcribe(piper_clips[0], engine="faster-whisper", model="whisper-small")
    assert "ct2-transformers-converter --model openai/whisper-small" in error.value.message
    assert "small.pt" not in error.value.message


def test_the_result_names_the_model_that_really_ran(speech, piper_clips):
    default = speech.transcribe(piper_clips[0])
    assert (default["engine"], default["model"], default["requested_model"]) == ("faster-whisper", "tiny.en", None)
    for spelling in ("tiny.en", "whisper-tiny.en", "whisper_tiny_en"):
        named = speech.transcribe(piper_clips[0], model=spelling)
        assert (named["engine"], named["model"], named["requested_model"]) == ("faster-whisper", "tiny.en", spelling)
    # 'tiny' (multilingual) is the openai-whisper checkpoint stored as tiny.pt, not faster-whisper's tiny.en
    multilingual = speech.transcribe(piper_clips[0], model="whisper-tiny")
    assert (multilingual["engine"], multilingual["model"]) == ("whisper", "tiny-whisper")
    by_store_name = speech.transcribe(piper_clips[0], model="tiny-whisper")
    assert by_store_name["model"] == "tiny-whisper"


def test_a_named_model_must_hear_the_language_asked_for(speech, piper_clips):
    with pytest.raises(InvalidInput, match="language"):
        speech.transcribe(piper_clips[0], model="tiny.en", language="de")
    with pytest.raises(InvalidInput, match="runs no Whisper model"):
        speech.transcribe(piper_clips[0], engine="pocketsphinx", model="base")
    engine, model = speech.registry.resolve_stt("de", None, None)
    assert (engine.name, model) == ("whisper", "tiny-whisper")  # tiny.en cannot hear German


# --- TTS families: a family answers with one of its own voices, or a 503 ---


def test_a_family_that_is_not_stored_is_503_saying_how_to_get_it(speech):
    for family, needle in (("bark", "suno/bark-small"), ("mms", "facebook/mms-tts-eng")):
        with pytest.raises(ModelNotAvailable) as error:
            speech.synthesize("hello world", engine=family, use_cache=False)
        assert error.value.status_code == 503 and needle in error.value.message
        described = speech.registry.describe_tts(family)
        assert described["available"] is False and described["voices"] == [] and needle in described["reason"]


def test_a_stored_family_answers_with_its_own_voice(speech):
    for family, voice in (("speecht5", "tiny-speecht5"), ("vits", "tiny-vits")):
        result = speech.synthesize("hello world", engine=family, format="wav", use_cache=False)
        assert (result.engine, result.voice) == ("transformers", voice)
        assert speech.registry.describe_tts(family)["voices"] == [voice]
        assert [v["name"] for v in speech.registry.voices(family)] == [voice]
    with pytest.raises(InvalidInput, match="not a stored vits voice"):
        speech.registry.route_tts("en", "vits", "tiny-speecht5")


# --- stored models that cannot run: found when the engine loads, a 503 naming the file ---


@pytest.fixture(scope="module")
def broken_speech(tmp_path_factory):
    built = tmp_path_factory.mktemp("tiny-tts")
    speecht5 = save_tiny_speecht5(built / "speecht5")
    vits = save_tiny_vits(built / "vits")
    home = tmp_path_factory.mktemp("broken-home")
    store = home / "models"

    def copy_of(source, remove=(), write=None):
        def build(folder):
            shutil.copytree(source, folder, dirs_exist_ok=True)
            for name in remove:
                target = folder / name
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            for name, data in (write or {}).items():
                (folder / name).write_bytes(data)
        return build

    stage(store, "good-vits", "text-to-speech", copy_of(vits))
    stage(store, "no-vocoder", "text-to-speech", copy_of(speecht5, remove=["vocoder"]))
    stage(store, "no-speaker", "text-to-speech", copy_of(speecht5, remove=["speaker_embeddings.npy"]))
    short = built / "short.npy"
    np.save(short, np.ones(3, dtype=np.float32))
    stage(store, "short-speaker", "text-to-speech", copy_of(speecht5, write={"speaker_embeddings.npy": short.read_bytes()}))
    config = json.loads((vits / "config.json").read_text()) | {"model_type": "fastspeech2_conformer"}
    stage(store, "unsupported", "text-to-speech", copy_of(vits, write={"config.json": json.dumps(config).encode()}))
    stage(store, "corrupt-vits", "text-to-speech", copy_of(vits, write={"model.safetensors": b"not safetensors" * 8}))
    return Speech(Settings(home=home, audio_tts_engines="transformers", audio_stt_engines="", audio_cache_enabled=False))


def test_unusable_models_are_described_with_the_missing_file(broken_speech):
    described = broken_speech.registry.describe_tts("transformers")
    unusable = described["unusable"]
    assert "vocoder/config.json is missing" in unusable["no-vocoder"]
    assert "speaker_embeddings.npy is missing" in unusable["no-speaker"]
    assert "holds 3 values" in unusable["short-speaker"] and "8-value" in unusable["short-speaker"]
    assert "model_type 'fastspeech2_conformer'" in unusable["unsupported"]
    assert set(described["voices"]) == {"good-vits", "corrupt-vits"}  # its files are all there: found when loaded


@pytest.mark.parametrize("voice, needle", [
    ("no-vocoder", "vocoder/config.json"), ("no-speaker", "speaker_embeddings.npy"),
    ("unsupported", "fastspeech2_conformer"),
])
def test_synthesis_with_an_unusable_model_is_503_naming_the_file(broken_speech, voice, needle):
    for engine in ("transformers", None):
        with pytest.raises(ModelNotAvailable) as error:
            broken_speech.synthesize("hello world", engine=engine, voice=voice)
        assert error.value.status_code == 503 and needle in error.value.message


def test_speecht5_family_with_only_broken_models_is_503_naming_the_file(broken_speech):
    with pytest.raises(ModelNotAvailable) as error:
        broken_speech.synthesize("hello world", engine="speecht5")
    assert error.value.status_code == 503 and "is missing" in error.value.message


def test_a_model_that_fails_to_load_is_503_and_then_described_unusable(broken_speech):
    with pytest.raises(ModelNotAvailable) as error:
        broken_speech.synthesize("hello world", engine="transformers", voice="corrupt-vits")
    assert error.value.status_code == 503 and "cannot be loaded: SafetensorError" in error.value.message
    described = broken_speech.registry.describe_tts("transformers")
    assert "corrupt-vits" in described["unusable"] and described["voices"] == ["good-vits"]
    good = broken_speech.synthesize("hello world", engine="transformers", voice="good-vits", format="wav")
    assert io.decode(good.audio).duration > 0


def test_an_engine_with_only_unusable_models_is_unavailable_naming_them(tmp_path, broken_speech):
    store = tmp_path / "models"
    source = broken_speech.registry.tts["transformers"].engine.store_dir
    shutil.copytree(source / "no-speaker", store / "no-speaker")
    speech = Speech(Settings(home=tmp_path, audio_tts_engines="transformers", audio_stt_engines=""))
    described = speech.registry.describe_tts("transformers")
    assert described["available"] is False and "speaker_embeddings.npy is missing" in described["reason"]
    with pytest.raises(ModelNotAvailable):
        speech.synthesize("hello", engine="transformers")
