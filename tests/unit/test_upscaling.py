"""kiln.upscaling on tiny Real-ESRGAN-shaped networks built here and stored the way a fetched model is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from kiln import upscaling
from kiln.store import ModelStore, fingerprint_of
from kiln.upscaling import (
    InvalidUpscale,
    UnknownUpscaler,
    UnusableUpscaler,
    UpscaleOutOfMemory,
    available_upscalers,
    upscale,
)
from kiln.upscaling_arches import RRDBNet, SRVGGNetCompact


@pytest.fixture(autouse=True)
def fresh_cache():
    upscaling.clear_cache()
    yield
    upscaling.clear_cache()


def store_network(home, name, network, file_name="weights.pth", task="super-resolution"):
    """Save ``network`` as Real-ESRGAN ships its weights ({"params_ema": state dict}) into the model store."""
    torch.manual_seed(len(name))
    for parameter in network.parameters():
        parameter.data.normal_(0, 0.05)
    with ModelStore(home / "models").stage(name, fingerprint_of(name), task) as staging:
        if file_name.endswith(".safetensors"):
            from safetensors.torch import save_file

            save_file(network.state_dict(), str(staging / file_name))
        else:
            torch.save({"params_ema": network.state_dict()}, staging / file_name)
    return network.eval()


@pytest.fixture
def home(tmp_path):
    store_network(tmp_path, "tiny-x4", SRVGGNetCompact(features=8, convs=3, scale=4))
    store_network(tmp_path, "tiny-x2", SRVGGNetCompact(features=8, convs=2, scale=2), "tiny.safetensors")
    store_network(tmp_path, "tiny-rrdb-x2", RRDBNet(scale=2, features=8, blocks=1, growth=4))
    with ModelStore(tmp_path / "models").stage("classifier", fingerprint_of("c"), "classification") as staging:
        (staging / "model.pt").write_bytes(b"not an upscaler")
    return tmp_path


def photo(width=40, height=30, mode="RGB"):
    rng = np.random.default_rng(width * height)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def pixels_of(image):
    return np.asarray(image).astype(np.int16)


def test_lists_classical_methods_then_stored_super_resolution_models(home):
    assert available_upscalers(home) == ["lanczos", "bicubic", "tiny-rrdb-x2", "tiny-x2", "tiny-x4"]
    assert available_upscalers(home / "empty") == ["lanczos", "bicubic"]
    damaged = home / "models" / "half-written" / "0123456789ab"
    damaged.mkdir(parents=True)
    (damaged / "kiln-model.json").write_text('{"name": "half-wri')
    assert available_upscalers(home)[-1] == "tiny-x4"  # the damaged one is skipped, the others still listed


def test_classical_methods_are_pil_resampling_reported_as_classical(home):
    image = photo()
    for name, resample in (("lanczos", Image.Resampling.LANCZOS), ("Bicubic", Image.Resampling.BICUBIC)):
        result = upscale(image, name, 3, "cpu", home)
        assert (result.method, result.upscaler, result.tiles, result.architecture) == ("classical", name.lower(), 0, None)
        assert result.image.size == (120, 90)
        assert np.array_equal(pixels_of(result.image), pixels_of(image.resize((120, 90), resample)))
    palette = image.quantize(16)  # PIL would resize a palette image nearest-neighbour: it is converted first
    result = upscale(palette, "lanczos", 2, "cpu", home)
    assert result.image.mode == "RGB"
    expected = palette.convert("RGB").resize((80, 60), Image.Resampling.LANCZOS)
    assert np.array_equal(pixels_of(result.image), pixels_of(expected))


def test_stored_network_upscales_by_its_scale_and_is_really_run(home):
    image = photo()
    result = upscale(image, "tiny-x4", 4, "cpu", home)
    assert (result.method, result.upscaler, result.architecture, result.scale) == ("model", "tiny-x4", "SRVGGNetCompact", 4)
    assert result.image.size == (160, 120) and result.image.mode == "RGB"
    assert (result.tiles, result.oom_retries, result.note, result.device) == (1, 0, "", "cpu")
    network = upscaling.load_upscaler(upscaling.stored_upscalers(home)["tiny-x4"], "cpu")[0].network.module
    with torch.inference_mode():
        expected = network(torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None])
    expected = expected[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.abs(pixels_of(result.image) - expected.astype(np.int16)).max() <= 1  # channels-last vs plain rounding
    assert not np.array_equal(pixels_of(result.image), pixels_of(image.resize((160, 120), Image.Resampling.NEAREST)))


def test_lower_factor_downsamples_the_network_output_and_says_so(home):
    result = upscale(photo(), "tiny-x4", 2, "cpu", home)
    assert result.image.size == (80, 60) and result.scale == 4
    assert "downsampled to 2x with Lanczos" in result.note
    with pytest.raises(ValueError, match="x2 network and cannot upscale 4x"):
        upscale(photo(), "tiny-x2", 4, "cpu", home)


def test_safetensors_and_rrdbnet_weights_load_and_odd_sizes_work(home):
    assert upscale(photo(), "tiny-x2", 2, "cpu", home).image.size == (80, 60)
    result = upscale(photo(37, 23), "TINY-RRDB-X2", 2, "cpu", home)  # names match case-insensitively
    assert (result.upscaler, result.architecture, result.image.size) == ("tiny-rrdb-x2", "RRDBNet", (74, 46))


@pytest.mark.parametrize("name, tolerance", [("tiny-x4", 1), ("tiny-rrdb-x2", 2)])
def test_tiled_output_matches_untiled(home, name, tolerance):
    image = photo(70, 50)
    factor = 4 if name == "tiny-x4" else 2
    whole = upscale(image, name, factor, "cpu", home)
    tiled = upscale(image, name, factor, "cpu", home, tile_size=16)
    assert (whole.tiles, tiled.tiles, tiled.tile_size) == (1, 5 * 4, 16)
    difference = np.abs(pixels_of(whole.image) - pixels_of(tiled.image))
    assert difference.max() <= tolerance  # rounding to bytes at most; the pad covers the receptive field


def test_out_of_memory_halves_the_tile_size_and_retries(home, monkeypatch):
    image = photo(100, 100)
    untiled = upscale(image, "tiny-x2", 2, "cpu", home)
    module = upscaling.load_upscaler(upscaling.stored_upscalers(home)["tiny-x2"], "cpu")[0].network.module
    forward, seen = module.forward, []

    def short_of_memory(x):  # as a GPU would: tiles over 90 pixels do not fit
        seen.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 90:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(x)

    monkeypatch.setattr(module, "forward", short_of_memory)
    result = upscale(image, "tiny-x2", 2, "cpu", home, tile_size=512)
    assert (result.oom_retries, result.tile_size, result.tiles) == (1, 50, 4)
    assert seen[0] == 100 and max(seen[1:]) <= 90
    assert np.abs(pixels_of(result.image) - pixels_of(untiled.image)).max() <= 1


def test_out_of_memory_runtime_error_is_retried_and_gives_up_at_the_floor(home, monkeypatch):
    upscale(photo(), "tiny-x2", 2, "cpu", home)
    module = upscaling.load_upscaler(upscaling.stored_upscalers(home)["tiny-x2"], "cpu")[0].network.module
    calls = []

    def never_fits(x):
        calls.append(max(x.shape[-2:]))
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(module, "forward", never_fits)
    with pytest.raises(UpscaleOutOfMemory, match="even with 20x20 tiles") as raised:
        upscale(photo(80, 80), "tiny-x2", 2, "cpu", home)
    assert raised.value.details["tile_sizes_tried"] == [80, 40, 20]  # the next, 10, is under MIN_TILE_SIZE
    assert len(calls) == 3 and raised.value.details["error"] == "RuntimeError: CUDA error: out of memory"

    def broken(x):
        raise RuntimeError("Given groups=1, weight of size [8, 3, 3, 3], expected input to have 3 channels")

    monkeypatch.setattr(module, "forward", broken)
    with pytest.raises(RuntimeError, match="expected input"):  # not memory: no retry, the error as it is
        upscale(photo(80, 80), "tiny-x2", 2, "cpu", home)


def test_a_loaded_network_is_reused(home):
    first = upscale(photo(), "tiny-x4", 4, "cpu", home)
    second = upscale(photo(), "tiny-x4", 4, "cpu", home)
    assert first.load_seconds > 0 and second.load_seconds == 0
    stored = upscaling.stored_upscalers(home)
    assert upscaling.load_upscaler(stored["tiny-x4"], "cpu")[0] is upscaling.load_upscaler(stored["tiny-x4"], "cpu")[0]
    for name in ("tiny-x2", "tiny-rrdb-x2"):
        upscaling.load_upscaler(stored[name], "cpu")
    held = upscaling.loaded_upscalers()
    assert [entry["name"] for entry in held] == ["tiny-x2", "tiny-rrdb-x2"]  # the least recently used went first
    assert held[0] == {"name": "tiny-x2", "version": stored["tiny-x2"].version, "device": "cpu", "precision": "fp32",
                       "bytes": 4 * sum(p.numel() for p in SRVGGNetCompact(features=8, convs=2, scale=2).parameters())}
    assert upscaling.clear_cache() == sum(entry["bytes"] for entry in held) and upscaling.loaded_upscalers() == []


def test_precision_is_fp32_on_the_cpu_unless_asked(home):
    image = photo()
    fp32 = upscale(image, "tiny-x4", 4, "cpu", home)
    fp16 = upscale(image, "tiny-x4", 4, "cpu", home, precision="fp16")
    assert (fp32.precision, fp16.precision, fp16.load_seconds > 0) == ("fp32", "fp16", True)  # cached apart
    assert np.abs(pixels_of(fp32.image) - pixels_of(fp16.image)).max() <= 2
    with pytest.raises(InvalidUpscale, match="precision must be one of auto, fp32, fp16, bf16"):
        upscale(image, "tiny-x4", 4, "cpu", home, precision="int4")


@pytest.mark.parametrize("tile_size", [8, 0, 100.5, None])
def test_a_tile_size_under_the_floor_is_refused(home, tile_size):
    with pytest.raises(InvalidUpscale, match="at least 16 pixels"):
        upscale(photo(), "tiny-x4", 4, "cpu", home, tile_size=tile_size)


def test_alpha_and_grey_images_keep_their_mode(home):
    rgba = upscale(photo(mode="RGBA"), "tiny-x2", 2, "cpu", home)
    assert rgba.image.mode == "RGBA" and "alpha" in rgba.note
    assert upscale(photo(mode="L"), "tiny-x2", 2, "cpu", home).image.mode == "L"


def test_unknown_upscaler_lists_the_available_ones(home):
    with pytest.raises(UnknownUpscaler) as raised:
        upscale(photo(), "RealESRGAN_x4plus", 2, "cpu", home)
    assert isinstance(raised.value, KeyError) and raised.value.status_code == 404
    assert raised.value.available == ["lanczos", "bicubic", "tiny-rrdb-x2", "tiny-x2", "tiny-x4"]
    assert str(raised.value).startswith("Unknown upscaler 'RealESRGAN_x4plus'. Available: lanczos, bicubic")
    with pytest.raises(UnknownUpscaler):
        upscale(photo(), "classifier", 2, "cpu", home)  # stored, but not a super-resolution model


@pytest.mark.parametrize("factor", [1, 5, 0, -2, 2.5, True, "2", None])
def test_factor_outside_two_to_four_is_refused(home, factor):
    with pytest.raises(ValueError, match="from 2 to 4") as raised:
        upscale(photo(), "lanczos", factor, "cpu", home)
    assert raised.value.field == "factor" and raised.value.details["constraint"] == "2..4"
    assert not hasattr(raised.value, "status_code")  # a plain ValueError: the HTTP surface names the field


def test_images_over_the_size_limits_are_refused(home):
    with pytest.raises(ValueError, match="over the limit of 4194304 input pixels"):
        upscale(Image.new("RGB", (2049, 2048)), "lanczos", 2, "cpu", home)
    with pytest.raises(ValueError, match="would be 6000x6000, over the limit of 16777216 output pixels"):
        upscale(Image.new("RGB", (1500, 1500)), "tiny-x4", 4, "cpu", home)
    with pytest.raises(ValueError, match="empty"):
        upscale(Image.new("RGB", (0, 0)), "lanczos", 2, "cpu", home)


@pytest.mark.parametrize("device", ["cuda:7", "no-such-device"])
def test_a_device_torch_cannot_use_is_refused(home, device):
    with pytest.raises(InvalidUpscale, match=f"torch cannot use device '{device}'"):
        upscale(photo(), "tiny-x2", 2, device, home)


def test_unusable_stored_weights_answer_a_clear_error(tmp_path):
    store = ModelStore(tmp_path / "models")
    with store.stage("garbage", fingerprint_of("g"), "super-resolution") as staging:
        (staging / "RealESRGAN_x4plus.pth").write_bytes(b"\x00truncated download")
    with store.stage("foreign", fingerprint_of("f"), "super-resolution") as staging:
        torch.save({"encoder.weight": torch.zeros(3, 3)}, staging / "foreign.pth")
    with store.stage("two-files", fingerprint_of("t"), "super-resolution") as staging:
        for file_name in ("a.pth", "b.pth"):
            torch.save(SRVGGNetCompact(features=4, convs=1, scale=2).state_dict(), staging / file_name)
    expected = {"garbage": "could not be read", "foreign": "architecture is not recognised",
                "two-files": r"holds several \(a.pth, b.pth\)"}
    for name, message in expected.items():
        with pytest.raises(UnusableUpscaler, match=message) as raised:
            upscale(photo(), name, 2, "cpu", tmp_path)
        assert raised.value.status_code == 503


def test_concurrent_calls_share_one_loaded_network(home):
    from concurrent.futures import ThreadPoolExecutor

    image = photo(60, 40)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: upscale(image, "tiny-x4", 4, "cpu", home, tile_size=32), range(4)))
    assert sum(result.load_seconds > 0 for result in results) == 1  # loaded once, under the lock
    assert all(np.array_equal(pixels_of(result.image), pixels_of(results[0].image)) for result in results)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch here is a CPU build)")
def test_on_a_gpu_auto_precision_is_fp16_and_agrees_with_the_cpu(home):
    image = photo(70, 50)
    on_cpu = upscale(image, "tiny-rrdb-x2", 2, "cpu", home)
    on_gpu = upscale(image, "tiny-rrdb-x2", 2, "cuda:0", home, tile_size=32)
    assert (on_gpu.device, on_gpu.precision, on_gpu.tiles) == ("cuda:0", "fp16", 6)
    assert np.abs(pixels_of(on_cpu.image) - pixels_of(on_gpu.image)).max() <= 3


def test_architecture_and_hyperparameters_are_read_from_the_weights():
    from kiln.upscaling_arches import build_network

    torch.manual_seed(0)
    x4 = RRDBNet(scale=4, features=8, blocks=2, growth=4).eval()
    old_names = (("conv_body.", "trunk_conv."), ("body.", "RRDB_trunk."), (".rdb", ".RDB"), ("conv_up", "upconv"),
                 ("conv_hr.", "HRconv."))
    renamed = {}
    for key, value in x4.state_dict().items():
        for new, old in old_names:
            key = old + key.removeprefix(new) if key.startswith(new) else key.replace(new, old)
        renamed[key] = value
    assert {"RRDB_trunk.1.RDB3.conv5.weight", "trunk_conv.bias", "upconv2.weight", "HRconv.weight"} <= set(renamed)
    network = build_network(renamed)
    assert (network.architecture, network.hyperparameters) == ("RRDBNet", {"features": 8, "blocks": 2, "growth": 4, "scale": 4})
    sample = torch.rand(1, 3, 12, 10)
    with torch.inference_mode():
        assert torch.equal(network.module(sample), x4(sample))
    assert build_network(RRDBNet(scale=8, features=8, blocks=1, growth=4).state_dict()).scale == 8
    compact = build_network(SRVGGNetCompact(features=8, convs=5, scale=3).state_dict())
    assert compact.hyperparameters == {"features": 8, "convs": 5, "activation": "prelu", "scale": 3}
