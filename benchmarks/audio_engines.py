"""Audio benchmarks (run by hand, CPU shared): RTF per engine, faster-whisper vs openai-whisper at the
tiny size, and TTS cache hit vs miss latency.

    PYTHONPATH=. python benchmarks/audio_engines.py

openai-whisper has no packaged weights here and no hub access, so its checkpoint is a RANDOMLY
INITIALISED model with tiny's dimensions (n_state 384, 4+4 layers, 6 heads): it measures speed only,
never accuracy, and its decode length is capped by what random weights emit (greedy, no fallback).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me tomorrow morning after the meeting.",
    "The weather is cold and windy in the north today.",
    "She opened the window and looked at the garden.",
    "We need more water for the long journey ahead.",
    "My brother works at the hospital near the river.",
]


def main() -> None:
    import jiwer

    from kiln.audio import io
    from kiln.audio.speech import Speech
    from kiln.settings import Settings
    from tests.audio.tiny_models import save_tiny_whisper, stage

    home = Path(tempfile.mkdtemp(prefix="kiln-audio-bench-"))
    stage(home / "models", "whisper-tiny-random", "speech-recognition",
          lambda folder: save_tiny_whisper(folder / "tiny.pt", n_state=384, layers=4))
    speech = Speech(Settings(home=home, audio_cache_type="memory", audio_whisper_temperature_fallback=False))

    print("== TTS RTF (synthesis seconds / audio seconds; wav, no cache) ==")
    clips = []
    for engine in ("piper", "espeak"):
        spent = produced = 0.0
        for text in SENTENCES:
            started = time.perf_counter()
            result = speech.synthesize(text, engine=engine, format="wav", use_cache=False)
            spent += time.perf_counter() - started
            produced += result.duration
            if engine == "piper":
                clips.append(result.audio)
        print(f"{engine:15s} RTF {spent / produced:.4f}  ({produced:.1f} s of audio in {spent:.2f} s)")

    print("== STT RTF and WER on the piper sentences ==")
    reference = [" ".join(jiwer.RemovePunctuation()(s.lower()).split()) for s in SENTENCES]
    total_audio = sum(io.decode(c).duration for c in clips)
    for engine in ("faster-whisper", "pocketsphinx", "whisper"):
        speech.transcribe(clips[0], engine=engine, language="en")  # warm-up (model load, first-call costs)
        started = time.perf_counter()
        heard = [speech.transcribe(c, engine=engine, language="en")["text"] for c in clips]
        spent = time.perf_counter() - started
        hypothesis = [" ".join(jiwer.RemovePunctuation()(h.lower()).split()) for h in heard]
        wer = jiwer.wer(reference, hypothesis)
        label = " (RANDOM weights, tiny dims: speed only, WER meaningless)" if engine == "whisper" else ""
        print(f"{engine:15s} RTF {spent / total_audio:.4f}  WER {wer:.3f}  ({total_audio:.1f} s audio in {spent:.2f} s){label}")

    print("== faster-whisper vs openai-whisper, tiny size, encoder forward on 30 s windows ==")
    import torch
    import whisper

    checkpoint = speech.registry.stt["whisper"].engine.load("whisper-tiny-random")
    samples = io.resample(io.decode(clips[1]).samples, 22050, 16000)
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(samples), 80).unsqueeze(0)
    with torch.inference_mode():
        checkpoint.encoder(mel)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            checkpoint.encoder(mel)
            times.append(time.perf_counter() - started)
    print(f"openai-whisper tiny (torch fp32) encoder: median {statistics.median(times) * 1000:.0f} ms per 30 s window")
    from faster_whisper.feature_extractor import FeatureExtractor

    fw = speech.registry.stt["faster-whisper"].engine.load("tiny.en")
    features = FeatureExtractor(feature_size=80)(samples)
    import ctranslate2

    window = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.pad(features, ((0, 0), (0, max(0, 3000 - features.shape[1]))))[:, :3000][None], dtype=np.float32))
    fw.model.encode(window)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        fw.model.encode(window)
        times.append(time.perf_counter() - started)
    print(f"faster-whisper tiny.en (CTranslate2 int8) encoder: median {statistics.median(times) * 1000:.0f} ms per 30 s window")

    print("== TTS cache: miss vs hit (piper, ogg) ==")
    misses, hits = [], []
    for text in SENTENCES:
        speech.clear_cache()
        started = time.perf_counter()
        speech.synthesize(text, engine="piper", format="ogg")
        misses.append(time.perf_counter() - started)
        for _ in range(20):
            started = time.perf_counter()
            assert speech.synthesize(text, engine="piper", format="ogg").cached
            hits.append(time.perf_counter() - started)
    miss, hit = statistics.median(misses), statistics.median(hits)
    print(f"memory cache: miss median {miss * 1000:.1f} ms, hit median {hit * 1000:.3f} ms -> {miss / hit:.0f}x faster")
    try:
        from kiln.audio.cache import RedisCache

        speech.cache = RedisCache("redis://127.0.0.1:6379/0", 60)
        rmisses, rhits = [], []
        for text in SENTENCES:
            speech.clear_cache()
            started = time.perf_counter()
            speech.synthesize(text, engine="piper", format="ogg")
            rmisses.append(time.perf_counter() - started)
            for _ in range(20):
                started = time.perf_counter()
                assert speech.synthesize(text, engine="piper", format="ogg").cached
                rhits.append(time.perf_counter() - started)
        speech.clear_cache()
        miss, hit = statistics.median(rmisses), statistics.median(rhits)
        print(f"redis cache:  miss median {miss * 1000:.1f} ms, hit median {hit * 1000:.3f} ms -> {miss / hit:.0f}x faster")
    except Exception as exc:
        print(f"redis cache: skipped ({type(exc).__name__}: {exc})")


if __name__ == "__main__":
    main()
