"""Audio I/O, signal edits, text preparation and the synthesis cache (no engines)."""

import time

import numpy as np
import pytest

from kiln.audio import io, text
from kiln.audio.cache import MemoryCache, RedisCache, cache_key
from kiln.errors import InvalidInput


def tone(freq=440.0, seconds=1.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return io.Audio((0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


def peak_hz(samples, rate):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)]


@pytest.mark.parametrize("fmt", ["wav", "mp3", "ogg", "flac"])
def test_every_format_round_trips(fmt):
    audio = tone(seconds=0.5, rate=22050)
    data = io.encode(audio, fmt)
    back = io.decode(data)
    assert back.sample_rate == 22050 and abs(back.duration - 0.5) < 0.06
    assert abs(peak_hz(back.samples[:10000], 22050) - 440) < 10
    assert io.probe(data)["format"] == {"wav": "wav", "mp3": "mp3", "ogg": "ogg", "flac": "flac"}[fmt]


def test_mp3_rates_are_fixed_up():
    data = io.encode(tone(rate=16500), "mp3")
    assert io.decode(data).sample_rate == 22050


@pytest.mark.parametrize("payload", [b"", b"not audio at all", b"RIFF\x00\x00\x00\x00WAVEjunk", bytes(range(256)) * 10])
def test_non_audio_is_422(payload):
    with pytest.raises(InvalidInput) as error:
        io.decode(payload)
    assert error.value.status_code == 422 and "file" in error.value.message


def test_unknown_format_is_refused():
    with pytest.raises(InvalidInput):
        io.check_format("aac")
    assert io.check_format("MPEG") == "mp3"


def test_resample_keeps_pitch_and_duration():
    out = io.resample(tone(1000, 1.0, 22050).samples, 22050, 16000)
    assert len(out) == 16000 and abs(peak_hz(out, 16000) - 1000) < 5


def test_time_stretch_changes_duration_not_pitch():
    audio = tone(300, 1.0)
    fast = io.time_stretch(audio.samples, 2.0, audio.sample_rate)
    slow = io.time_stretch(audio.samples, 0.5, audio.sample_rate)
    assert abs(len(fast) / 16000 - 0.5) < 0.02 and abs(len(slow) / 16000 - 2.0) < 0.05
    assert abs(peak_hz(fast, 16000) - 300) < 10 and abs(peak_hz(slow, 16000) - 300) < 10


def test_pitch_shift_changes_pitch_not_duration():
    audio = tone(300, 1.0)
    up = io.pitch_shift(audio.samples, 12, 16000)
    down = io.pitch_shift(audio.samples, -12, 16000)
    assert abs(len(up) - 16000) < 400 and abs(len(down) - 16000) < 400
    assert abs(peak_hz(up, 16000) - 600) < 15 and abs(peak_hz(down, 16000) - 150) < 8


def test_volume():
    louder = io.apply_effects(tone(), volume=1.5).samples
    assert np.isclose(np.abs(louder).max(), 0.75, atol=1e-3)


def test_normalize_spells_english_numbers_and_symbols():
    assert text.normalize("I  have 3 cats & 21 dogs, 50% of $2.5") == \
        "I have three cats and twenty-one dogs, fifty percent of two point five dollars"
    assert text.number_to_words(1_204_007) == "one million two hundred four thousand seven"
    assert text.normalize("۳ سلام\x00  دنیا 4", "fa") == "۳ سلام دنیا 4"  # digits left to the language's engine


def test_chunking_respects_the_limit_and_keeps_every_word():
    long = " ".join(f"Sentence number {i} is here, and it goes on for a while." for i in range(40))
    chunks = text.chunk(long, 120)
    assert all(len(c) <= 120 for c in chunks) and len(chunks) > 10
    assert " ".join(chunks).split() == long.split()
    assert text.chunk("x" * 250, 100) == ["x" * 100, "x" * 100, "x" * 50]


def test_memory_cache_ttl_lru_and_stats():
    cache = MemoryCache(ttl=1, max_entries=2)
    key = cache_key(text="a", lang="en", engine="piper", voice="v", rate=1.0, pitch=0.0, format="wav")
    assert key != cache_key(text="a", lang="en", engine="piper", voice="v", rate=1.0, pitch=0.0, format="ogg")
    assert cache.get(key) is None
    cache.set(key, b"abc", {"duration": 1.0})
    assert cache.get(key) == (b"abc", {"duration": 1.0})
    cache.set("k2", b"1", {}), cache.set("k3", b"2", {})  # evicts the least recently used
    assert cache.describe()["entries"] == 2 and cache.get("k2") == (b"1", {})
    time.sleep(1.1)
    assert cache.get("k2") is None
    stats = cache.describe()
    assert stats["hits"] == 2 and stats["misses"] == 2 and stats["hit_rate"] == 0.5


def test_redis_cache_shares_entries_with_ttl():
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1).ping()
    except Exception:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    first, second = RedisCache("redis://127.0.0.1:6379/0", ttl=2), RedisCache("redis://127.0.0.1:6379/0", ttl=2)
    first.clear()
    first.set("k", b"\x00audio", {"duration": 0.5})
    assert second.get("k") == (b"\x00audio", {"duration": 0.5})
    assert second.describe()["entries"] == 1 and 0 < first.client.ttl("kiln:tts:k") <= 2
    assert first.clear() == 1 and second.get("k") is None
