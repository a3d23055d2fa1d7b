"""No upload that exhausts memory: the decoded-samples limit is read from the header before decoding, and
decoding, downmixing and resampling go block by block."""

import io as bytes_io
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from kiln.audio import io
from kiln.errors import TooLarge


def flac(seconds: float, rate: int, channels: int) -> bytes:
    rng = np.random.default_rng(0)
    samples = (0.1 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32)
    buffer = bytes_io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def test_samples_over_the_limit_are_413_from_the_header():
    data = flac(3, 48000, 8)  # 1,152,000 samples
    with pytest.raises(TooLarge) as refused:
        io.decode(data, max_samples=1_000_000)
    assert refused.value.status_code == 413 and "KILN_AUDIO_MAX_DECODED_SAMPLES" in refused.value.message
    assert io.decode(data, max_samples=2_000_000).duration == pytest.approx(3.0)


def test_decoding_holds_only_the_mono_signal():
    data = flac(10, 48000, 8)  # 3.84 M samples: 15.4 MB as float32 in 8 channels, 1.9 MB downmixed
    tracemalloc.start()
    try:
        audio = io.decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(audio.samples) == 480_000
    assert peak < 7_700_000, peak  # half of all channels at once: the mono array and one block


@pytest.mark.parametrize(("source", "target"), [(44100, 16000), (192000, 16000), (8000, 16000)])
def test_block_wise_resampling_equals_the_whole_signal(source, target):
    samples = np.random.default_rng(1).standard_normal(700_001).astype(np.float32)
    ratio = Fraction(target, source).limit_denominator(1000)
    whole = resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)
    blocks = io.resample(samples, source, target)
    assert blocks.shape == whole.shape and np.allclose(blocks, whole, atol=1e-6)
