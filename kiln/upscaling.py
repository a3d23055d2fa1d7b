"""Image upscaling: a super-resolution network from Kiln's model store, or a named classical resampling.

Where upscalers come from
- Classical: ``lanczos`` and ``bicubic`` (PIL resampling, on the CPU). They are reported with
  ``method="classical"``, never as a model.
- Models: every model in the store (``<home>/models/<name>/<version>/``, see kiln.store) whose manifest
  task is ``super-resolution``; the latest version of each name is used. The version folder holds one
  Real-ESRGAN-type state dict (``.pth``/``.pt`` read with ``torch.load(weights_only=True)``, or
  ``.safetensors``); if it holds several, the manifest's ``info["weights"]`` names the one to use.
  Such a model gets there like any other: a catalog entry, e.g.
  ``{name: realesrgan_x4plus, source: path, id: /models/RealESRGAN_x4plus.pth, task: super-resolution}``
  (or ``source: huggingface`` with ``allow_patterns: ["RealESRGAN_x4plus.pth"]``) fetched by the pipeline.
  Names are matched case-insensitively, so the seed's ``RealESRGAN_x4plus`` finds ``realesrgan_x4plus``.
  A stored model named like a classical method is shadowed by it.

``home`` is Kiln's data directory, ``Settings.data_dir`` (KILN_HOME unless KILN_SHARED_DIR is set), whose
``models/`` folder is ``Settings.model_store_dir``.

The networks (SRVGGNetCompact and RRDBNet) are built in plain torch by kiln.upscaling_arches, not with
spandrel: spandrel cannot be imported without torchvision (its docstring says why).

Scale: a network upscales by a fixed factor. Asked for that factor, its output is the answer; asked for
less (factor 2 from a x4 network), its output is downsampled with Lanczos and ``note`` says so; asked for
more, the request is refused (a x2 network cannot make 4x) rather than mixing in a classical step.

Tiling: the input is cut into ``tile_size`` squares, each run with ``TILE_PAD`` pixels of context on
every side that are cropped off afterwards, so seams match the untiled output (exactly for networks
whose receptive field fits in the pad, as SRVGGNetCompact's does; closely for RRDBNet). When torch runs
out of memory the whole image is run again with half the tile size, down to ``MIN_TILE_SIZE``, where it
gives up with ``UpscaleOutOfMemory``.

Precision: ``auto`` runs fp16 on CUDA (as Real-ESRGAN's own inference does: half the memory, tensor
cores) and fp32 elsewhere; ``fp32``, ``fp16`` and ``bf16`` can be asked for.

Loaded networks are kept in a small LRU (``CACHE_SIZE`` entries) keyed by stored version, device and
precision.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from kiln.errors import KilnError, ModelNotAvailable, NotFound
from kiln.store import ModelStore, StoredModel

CLASSICAL = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC}
SUPER_RESOLUTION_TASK = "super-resolution"
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors")
MIN_FACTOR, MAX_FACTOR = 2, 4
MAX_INPUT_PIXELS = 2048 * 2048
MAX_OUTPUT_PIXELS = 4096 * 4096
MAX_WORK_PIXELS = 4 * MAX_OUTPUT_PIXELS  # a network's own output before it is downsampled to the factor asked
DEFAULT_TILE_SIZE = 512  # input pixels per tile side
MIN_TILE_SIZE = 16  # the smallest tile side, asked for or reached by out-of-memory retries
TILE_PAD = 16  # context pixels around each tile (even, so x2 RRDBNet's pixel-unshuffle grid stays aligned)
CACHE_SIZE = 2
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass
class UpscaleResult:
    image: Image.Image
    upscaler: str  # the canonical name: a classical method or the stored model's name
    method: str  # "model" | "classical"
    tiles: int  # tiles the network ran on in the pass that succeeded; 0 for classical resampling
    oom_retries: int  # times the tile size was halved after running out of memory
    seconds: float  # the whole call, loading included
    device: str = "cpu"  # where the work ran (classical resampling always runs on the CPU)
    precision: str | None = None  # the network's dtype: "fp32" | "fp16" | "bf16"
    scale: int | None = None  # the network's own factor
    architecture: str | None = None  # "SRVGGNetCompact" | "RRDBNet"
    tile_size: int | None = None  # the tile side of the pass that succeeded
    load_seconds: float = 0.0  # 0 when the network came from the cache
    note: str = ""  # what was done besides the plain method (downsampling, alpha)


class UnknownUpscaler(NotFound, KeyError):
    """An upscaler name that is neither a classical method nor a stored super-resolution model."""

    code = "UNKNOWN_UPSCALER"

    def __init__(self, name: str, available: list[str]):
        self.name = name
        self.available = available
        super().__init__(f"Unknown upscaler '{name}'. Available: {', '.join(available)}",
                         {"upscaler": name, "available": available})

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class InvalidUpscale(ValueError):
    """A request this module refuses: a factor outside 2..4, a size over the limits, a device torch cannot use.

    A plain ValueError (what callers catch for bad input); ``field`` names the argument, in this module's
    words (factor, image, device, tile_size, precision), and ``details`` holds field, value and constraint
    so an HTTP surface can answer them under its own field names.
    """

    def __init__(self, field: str, message: str, value: Any = None, constraint: str = ""):
        super().__init__(message)
        self.field = field
        self.details = {"field": field, "value": value, "constraint": constraint}


class UpscaleOutOfMemory(KilnError):
    """Out of memory even at the smallest tile size."""

    code = "OUT_OF_MEMORY"


class UnusableUpscaler(ModelNotAvailable):
    """A stored super-resolution model whose files cannot be loaded (no weights, unknown architecture)."""


def stored_upscalers(home: Path) -> dict[str, StoredModel]:
    """The latest super-resolution version of every stored model name, by name."""
    store = ModelStore(Path(home) / "models")
    found: dict[str, StoredModel] = {}
    if not store.root.is_dir():
        return found
    for folder in sorted(store.root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir() or folder.name.lower() in CLASSICAL:
            continue
        try:
            versions = store.versions(folder.name)
        except (OSError, ValueError, TypeError):  # a damaged manifest hides that model, not the whole list
            continue
        upscalers = [version for version in versions if version.task == SUPER_RESOLUTION_TASK]
        if upscalers:
            found[upscalers[-1].name] = upscalers[-1]
    return found


def available_upscalers(home: Path) -> list[str]:
    """The classical methods, then the stored super-resolution models' names."""
    return [*CLASSICAL, *stored_upscalers(home)]


def upscale(image: Image.Image, upscaler: str, factor: int, device: str, home: Path, *,
            tile_size: int = DEFAULT_TILE_SIZE, precision: str = "auto") -> UpscaleResult:
    """Upscale ``image`` by ``factor`` with the named upscaler (see the module docstring for what names mean)."""
    started = time.perf_counter()
    _check_factor(factor)
    _check_size(image, factor)
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < MIN_TILE_SIZE:
        raise InvalidUpscale("tile_size", f"the tile size must be a whole number of at least {MIN_TILE_SIZE} pixels, "
                                          f"got {tile_size!r}", tile_size if isinstance(tile_size, int) else repr(tile_size),
                             f">= {MIN_TILE_SIZE}")
    if not isinstance(upscaler, str):
        raise InvalidUpscale("upscaler", f"the upscaler must be a name, got {upscaler!r}", repr(upscaler), "a name")
    key = upscaler.strip().lower()
    if key in CLASSICAL:
        if image.mode in ("P", "1"):  # PIL resizes these nearest-neighbour whatever it is asked: convert first
            image = image.convert("L" if image.mode == "1" else "RGBA" if "transparency" in image.info else "RGB")
        resized = image.resize((image.width * factor, image.height * factor), CLASSICAL[key])
        return UpscaleResult(resized, key, "classical", 0, 0, time.perf_counter() - started)
    models = stored_upscalers(home)
    stored = next((model for name, model in models.items() if name.lower() == key), None)
    if stored is None:
        raise UnknownUpscaler(upscaler, [*CLASSICAL, *models])
    from kiln.upscaling_run import run_network

    loaded, load_seconds = load_upscaler(stored, device, precision)
    if loaded.scale < factor:
        raise InvalidUpscale("factor", f"'{stored.name}' is a x{loaded.scale} network and cannot upscale {factor}x; "
                                       f"ask for factor {loaded.scale} or use lanczos", factor, f"<= {loaded.scale}")
    if image.width * image.height * loaded.scale ** 2 > MAX_WORK_PIXELS:
        raise InvalidUpscale("image", f"{image.width}x{image.height} through a x{loaded.scale} network would make "
                                      f"more than {MAX_WORK_PIXELS} pixels; send a smaller image",
                             [image.width, image.height], f"width * height * {loaded.scale ** 2} <= {MAX_WORK_PIXELS}")
    run = run_network(loaded.network, image, loaded.device, tile_size, TILE_PAD, MIN_TILE_SIZE)
    output, notes = run.image, list(run.notes)
    if loaded.scale > factor:
        output = output.resize((image.width * factor, image.height * factor), Image.Resampling.LANCZOS)
        notes.insert(0, f"the x{loaded.scale} network's output was downsampled to {factor}x with Lanczos")
    return UpscaleResult(output, stored.name, "model", run.tiles, run.oom_retries, time.perf_counter() - started,
                         device=str(loaded.device), precision=loaded.precision, scale=loaded.scale,
                         architecture=loaded.network.architecture, tile_size=run.tile_size, load_seconds=load_seconds,
                         note="; ".join(notes))


def _check_factor(factor: Any) -> None:
    if isinstance(factor, bool) or not isinstance(factor, int) or not MIN_FACTOR <= factor <= MAX_FACTOR:
        raise InvalidUpscale("factor", f"the upscale factor must be a whole number from {MIN_FACTOR} to {MAX_FACTOR}, "
                                       f"got {factor!r}", factor if isinstance(factor, int | float) else repr(factor),
                             f"{MIN_FACTOR}..{MAX_FACTOR}")


def _check_size(image: Image.Image, factor: int) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidUpscale("image", f"the image is empty ({width}x{height})", [width, height], ">= 1x1")
    if width * height > MAX_INPUT_PIXELS:
        raise InvalidUpscale("image", f"the image is {width}x{height} = {width * height} pixels, over the limit of "
                                      f"{MAX_INPUT_PIXELS} input pixels", [width, height],
                             f"width * height <= {MAX_INPUT_PIXELS}")
    if width * height * factor * factor > MAX_OUTPUT_PIXELS:
        raise InvalidUpscale("image", f"{width}x{height} upscaled {factor}x would be {width * factor}x{height * factor}, "
                                      f"over the limit of {MAX_OUTPUT_PIXELS} output pixels", [width, height],
                             f"width * height * factor^2 <= {MAX_OUTPUT_PIXELS}")


@dataclass
class LoadedUpscaler:
    stored: StoredModel
    network: Any  # kiln.upscaling_arches.Network, its module on ``device``
    device: Any  # torch.device
    precision: str  # "fp32" | "fp16" | "bf16"

    @property
    def scale(self) -> int:
        return self.network.scale


_cache: OrderedDict[tuple[str, str, str], LoadedUpscaler] = OrderedDict()
_cache_lock = threading.Lock()


def load_upscaler(stored: StoredModel, device: str, precision: str = "auto") -> tuple[LoadedUpscaler, float]:
    """The stored network on ``device``, from the LRU or loaded now; returns it and the seconds loading took."""
    import torch

    torch_device = _torch_device(device)
    if precision not in PRECISIONS:
        raise InvalidUpscale("precision", f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}",
                             repr(precision), " | ".join(PRECISIONS))
    if precision == "auto":
        precision = "fp16" if torch_device.type == "cuda" else "fp32"
    key = (str(stored.path), stored.sha256, str(torch_device), precision)
    with _cache_lock:  # one load at a time: two requests for a new model must not load it twice
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key], 0.0
        started = time.perf_counter()
        network = _read_network(stored)
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        # channels-last runs these convolutions faster on CPUs (oneDNN) and on GPUs' tensor cores: 25-40% here
        network.module.to(torch_device, dtype, memory_format=torch.channels_last)
        loaded = LoadedUpscaler(stored, network, torch_device, precision)
        _cache[key] = loaded
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return loaded, time.perf_counter() - started


def clear_cache() -> int:
    """Drop every loaded network (their memory goes back once nothing else holds them); returns their bytes."""
    with _cache_lock:
        freed = sum(entry["bytes"] for entry in _describe(_cache.values()))
        _cache.clear()
    return freed


def loaded_upscalers() -> list[dict[str, Any]]:
    """What the LRU holds, least recently used first: name, version, device, precision and parameter bytes."""
    with _cache_lock:
        return _describe(list(_cache.values()))


def _describe(entries: Any) -> list[dict[str, Any]]:
    return [{"name": entry.stored.name, "version": entry.stored.version, "device": str(entry.device),
             "precision": entry.precision, "bytes": sum(p.numel() * p.element_size() for p in entry.network.module.parameters())}
            for entry in entries]


def _torch_device(device: str) -> Any:
    import torch

    try:
        torch_device = torch.device(device)
        torch.empty(1, device=torch_device)
    except (RuntimeError, AssertionError, ValueError) as exc:  # torch raises AssertionError for CUDA on a CPU build
        raise InvalidUpscale("device", f"torch cannot use device '{device}' here: {exc}", device,
                             "a device torch can allocate on") from exc
    return torch_device


def _weights_file(stored: StoredModel) -> Path:
    named = stored.info.get("weights")
    candidates = [named] if named else sorted(rel for rel in stored.files if rel.endswith(WEIGHT_SUFFIXES))
    if len(candidates) != 1:
        why = "holds no" if not candidates else f"holds several ({', '.join(candidates)}) and names none of the"
        raise UnusableUpscaler(stored.name, f"Its stored version {stored.version} {why} {'/'.join(WEIGHT_SUFFIXES)} "
                                            "weights; store one state dict (or set info['weights'] in its manifest).")
    path = stored.path / candidates[0]
    if not path.is_file():
        raise UnusableUpscaler(stored.name, f"Its weights file {path} is missing; fetch the model again.")
    return path


def _read_network(stored: StoredModel) -> Any:
    import torch

    from kiln.upscaling_arches import UnsupportedWeights, build_network, unwrap_state_dict

    path = _weights_file(stored)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)  # never runs pickled code
        return build_network(unwrap_state_dict(raw))
    except UnsupportedWeights as exc:
        raise UnusableUpscaler(stored.name, f"{path.name} cannot be used: {exc}.") from exc
    except Exception as exc:  # a truncated or foreign file: say which, never crash the caller
        raise UnusableUpscaler(stored.name, f"{path.name} could not be read ({type(exc).__name__}: {exc}).") from exc
