"""Audio I/O and signal edits: decode/encode (wav, mp3, ogg, flac) with soundfile, resampling,
speed, pitch and volume. Audio is always mono float32 in [-1, 1] inside Kiln."""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from kiln.errors import BadRequest, InvalidInput, TooLarge

# format -> (soundfile format, subtype, MIME type)
FORMATS: dict[str, tuple[str, str | None, str]] = {
    "wav": ("WAV", "PCM_16", "audio/wav"),
    "mp3": ("MP3", "MPEG_LAYER_III", "audio/mpeg"),
    "ogg": ("OGG", "VORBIS", "audio/ogg"),
    "flac": ("FLAC", "PCM_16", "audio/flac"),
}
# MP3 (MPEG layer III) only takes these sample rates; others are resampled to the nearest above.
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_DECODED_SECONDS = 60 * 60
# frames x channels a decode may read (Settings.audio_max_decoded_samples): an hour of 16 kHz stereo, 33 min
# of 48 kHz mono; the mono float32 result is at most 4 bytes per sample of it.
DEFAULT_MAX_DECODED_SAMPLES = 96_000_000
DECODE_BLOCK_FRAMES = 1 << 14  # frames read and downmixed at a time
RESAMPLE_BLOCK = 1 << 18  # input samples resampled at a time


@dataclass
class Audio:
    samples: np.ndarray  # mono float32
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate if self.sample_rate else 0.0


def mime_type(fmt: str) -> str:
    return FORMATS[check_format(fmt)][2]


def check_format(fmt: str, field: str = "format") -> str:
    name = (fmt or "").lower().lstrip(".")
    if name == "mpeg":
        name = "mp3"
    if name not in FORMATS:
        raise InvalidInput(field, f"unsupported audio format '{fmt}'; use one of {', '.join(FORMATS)}")
    return name


def decode(data: bytes, field: str = "file", max_samples: int = DEFAULT_MAX_DECODED_SAMPLES) -> Audio:
    """Decode an uploaded file (any format libsndfile reads) to mono float32. Non-audio is a 422.

    A small upload can expand enormously (a 285 KB FLAC of 3 min at 192 kHz in 8 channels is 276 million
    samples), so the header is read first: frames x channels over ``max_samples`` is a 413 before anything
    is decoded. Then blocks are read and downmixed one at a time, so only the mono signal is ever held.
    """
    import soundfile as sf

    if not data:
        raise InvalidInput(field, "the uploaded file is empty")
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            frames, channels, rate = handle.frames, handle.channels, handle.samplerate
            if frames > MAX_DECODED_SECONDS * rate:
                raise InvalidInput(field, f"audio longer than {MAX_DECODED_SECONDS} s is not accepted")
            if frames * channels > max_samples:
                raise TooLarge(
                    f"{field}: the audio decodes to {frames * channels:,} samples ({frames:,} frames x {channels} "
                    f"channels at {rate} Hz), over the limit of {max_samples:,} (KILN_AUDIO_MAX_DECODED_SAMPLES)",
                    {"field": field, "samples": frames * channels, "max_samples": max_samples})
            mono = _read_mono(handle, frames, field)
    except (InvalidInput, TooLarge):
        raise
    except Exception as exc:  # libsndfile's errors (sf.LibsndfileError, RuntimeError) all mean "not audio"
        reason = str(exc).rsplit(": ", 1)[-1] or type(exc).__name__  # drop libsndfile's "Error opening <BytesIO>"
        raise InvalidInput(field, f"not a readable audio file (wav, mp3, ogg or flac): {reason}") from exc
    if mono.size == 0:
        raise InvalidInput(field, "the audio file holds no samples")
    return Audio(mono, int(rate))


def _read_mono(handle, frames: int, field: str) -> np.ndarray:
    """The file's samples downmixed block by block into one preallocated mono array."""
    mono = np.empty(max(frames, 0), dtype=np.float32)
    position = 0
    for block in handle.blocks(blocksize=DECODE_BLOCK_FRAMES, dtype="float32", always_2d=True):
        if not np.all(np.isfinite(block)):
            raise InvalidInput(field, "the audio holds non-finite samples")
        if position + len(block) > len(mono):  # a header that undercounts (some MP3s): grow, still bounded
            if position + len(block) > MAX_DECODED_SECONDS * handle.samplerate:
                raise InvalidInput(field, f"audio longer than {MAX_DECODED_SECONDS} s is not accepted")
            mono = np.concatenate([mono[:position], np.empty(max(len(block), len(mono) // 2), dtype=np.float32)])
        mono[position:position + len(block)] = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
        position += len(block)
    return mono[:position]


def probe(data: bytes) -> dict:
    """What an upload is, without keeping the samples: format, duration, rate, channels."""
    import soundfile as sf

    with sf.SoundFile(io.BytesIO(data)) as handle:
        return {
            "format": handle.format.lower(),
            "subtype": handle.subtype,
            "sample_rate": handle.samplerate,
            "channels": handle.channels,
            "frames": handle.frames,
            "duration": handle.frames / handle.samplerate if handle.samplerate else 0.0,
        }


def encode(audio: Audio, fmt: str) -> bytes:
    import soundfile as sf

    fmt = check_format(fmt)
    container, subtype, _ = FORMATS[fmt]
    samples, rate = audio.samples, audio.sample_rate
    if fmt == "mp3" and rate not in MP3_RATES:
        target = next((r for r in MP3_RATES if r >= rate), MP3_RATES[-1])
        samples, rate = resample(samples, rate, target), target
    if len(samples) == 0:
        raise BadRequest("Nothing to encode: the synthesized audio is empty")
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), rate, format=container, subtype=subtype)
    return buffer.getvalue()


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling, block by block for long signals (with enough context on each side of a block
    that the result is the whole-signal one), so a long upload is never expanded whole in float64."""
    if source_rate == target_rate or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    ratio = Fraction(target_rate, source_rate).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    # resample_poly's filter reaches 10 * max(up, down) taps each side at the upsampled rate.
    context = (-(-10 * max(up, down) // (up * down)) + 1) * down  # input samples, a multiple of down
    block = -(-RESAMPLE_BLOCK // down) * down
    if len(samples) <= block + 2 * context:
        return resample_poly(samples, up, down).astype(np.float32)
    total = -(-len(samples) * up // down)
    out = np.empty(total, dtype=np.float32)
    for start in range(0, len(samples), block):
        low, high = max(0, start - context), min(len(samples), start + block + context)
        part = resample_poly(samples[low:high], up, down)
        skip = (start - low) * up // down
        first, count = start * up // down, -(-min(block, len(samples) - start) * up // down)
        count = min(count, total - first)
        out[first:first + count] = part[skip:skip + count]
    return out


def time_stretch(samples: np.ndarray, rate: float, sample_rate: int) -> np.ndarray:
    """Play ``rate`` times faster without changing pitch (WSOLA: overlap-add of windows aligned by
    cross-correlation, so periodic speech is not smeared)."""
    if abs(rate - 1.0) < 1e-3 or len(samples) == 0:
        return samples
    frame = int(0.04 * sample_rate)
    hop_out = frame // 2
    hop_in = hop_out * rate
    tolerance = int(0.01 * sample_rate)
    window = np.hanning(frame).astype(np.float32)
    padded = np.concatenate([samples, np.zeros(frame + tolerance * 2, dtype=np.float32)])
    count = max(1, int((len(samples) - frame) / hop_in) + 1)
    out = np.zeros(count * hop_out + frame, dtype=np.float32)
    norm = np.zeros_like(out)
    previous = padded[:frame]
    position = 0
    for index in range(count):
        nominal = int(index * hop_in)
        if index == 0:
            start = nominal
        else:
            # Pick the shift within +-tolerance whose frame best continues what was written.
            target = previous[hop_out:hop_out + frame - hop_out]
            low = max(0, nominal - tolerance)
            region = padded[low:nominal + tolerance + len(target)]
            if len(region) < len(target) + 1:
                start = nominal
            else:
                scores = np.correlate(region, target, mode="valid")
                start = low + int(np.argmax(scores))
        chunk = padded[start:start + frame]
        if len(chunk) < frame:
            chunk = np.pad(chunk, (0, frame - len(chunk)))
        out[position:position + frame] += chunk * window
        norm[position:position + frame] += window
        previous = padded[start:start + frame + hop_out]
        if len(previous) < frame:
            previous = np.pad(previous, (0, frame - len(previous)))
        position += hop_out
    out /= np.maximum(norm, 1e-3)
    return out[: int(len(samples) / rate)].astype(np.float32)


def pitch_shift(samples: np.ndarray, semitones: float, sample_rate: int) -> np.ndarray:
    """Shift pitch by ``semitones`` and keep the duration: resample, then stretch time back."""
    if abs(semitones) < 1e-3 or len(samples) == 0:
        return samples
    factor = 2.0 ** (semitones / 12.0)
    # Played at sample_rate, the resampled signal is `factor` times higher and shorter...
    shifted = resample(samples, int(round(sample_rate * factor)), sample_rate)
    # ...so slow it back down to the original length.
    return time_stretch(shifted, 1.0 / factor, sample_rate)[: len(samples)]


def apply_effects(audio: Audio, rate: float = 1.0, pitch: float = 0.0, volume: float = 1.0,
                  native_rate: bool = False, native_pitch: bool = False) -> Audio:
    samples = audio.samples
    if not native_pitch:
        samples = pitch_shift(samples, pitch, audio.sample_rate)
    if not native_rate:
        samples = time_stretch(samples, rate, audio.sample_rate)
    if volume != 1.0:
        samples = np.clip(samples * volume, -1.0, 1.0)
    return Audio(samples.astype(np.float32, copy=False), audio.sample_rate)


def concatenate(parts: list[Audio], pause_seconds: float = 0.0) -> Audio:
    if not parts:
        raise BadRequest("Nothing was synthesized")
    rate = parts[0].sample_rate
    gap = np.zeros(int(pause_seconds * rate), dtype=np.float32)
    pieces: list[np.ndarray] = []
    for index, part in enumerate(parts):
        if index:
            pieces.append(gap)
        pieces.append(resample(part.samples, part.sample_rate, rate))
    return Audio(np.concatenate(pieces).astype(np.float32), rate)
