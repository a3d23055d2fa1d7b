"""Running a super-resolution network over an image: colour handling, tiles with overlap, the out-of-memory retry.

Only kiln.upscaling calls this (after its checks); it is a module of its own to keep torch off import paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from kiln.upscaling_arches import Network


@dataclass
class NetworkRun:
    image: Image.Image
    tiles: int
    tile_size: int
    oom_retries: int
    notes: list[str] = field(default_factory=list)


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA, and torch.cuda.OutOfMemoryError is the same class), or an allocator's RuntimeError."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def run_network(network: Network, image: Image.Image, device: torch.device, tile_size: int, pad: int,
                min_tile_size: int) -> NetworkRun:
    """Upscale ``image`` by the network's scale; on out-of-memory run again with half the tile size."""
    from kiln.upscaling import UpscaleOutOfMemory

    colour, alpha, notes = _split(image, network.in_channels)
    pixels = torch.from_numpy(np.asarray(colour, dtype=np.float32) / 255.0)
    dtype = next(network.module.parameters()).dtype  # the precision it was loaded in
    pixels = (pixels[None, None] if pixels.dim() == 2 else pixels.permute(2, 0, 1)[None]).to(device, dtype)
    # the first pass covers the image in one tile when it fits; tiles stay even for the x2 pixel-unshuffle grid
    tile = _even(min(tile_size, max(image.size)))
    retries, tried = 0, []
    while True:
        tried.append(tile)
        try:
            output, tiles = _tiled(network, pixels, tile, pad)
            break
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            failure = f"{type(exc).__name__}: {exc}"
        # out of the except block: its traceback held the failed pass's tensors, which the cache can now release
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if tile // 2 < min_tile_size:
            raise UpscaleOutOfMemory(
                f"Out of memory on {device} upscaling {image.width}x{image.height} even with {tile}x{tile} tiles "
                f"(tried {tried}); free memory on the device or send a smaller image",
                {"device": str(device), "tile_sizes_tried": tried, "error": failure},
            )
        tile, retries = _even(tile // 2), retries + 1
    result = Image.fromarray(output[..., 0] if output.shape[-1] == 1 else output)
    if image.mode in ("L", "LA") and result.mode != "L":  # a grey image stays grey
        result = result.convert("L")
    if alpha is not None:
        result.putalpha(alpha.resize(result.size, Image.Resampling.LANCZOS))
        notes.append("the alpha channel was resized with Lanczos")
    return NetworkRun(result, tiles, tile, retries, notes)


def _even(size: int) -> int:
    return max(2, size + size % 2)


def _split(image: Image.Image, channels: int) -> tuple[Image.Image, Image.Image | None, list[str]]:
    """The colour planes the network takes (RGB or L) and the alpha plane, if the image has one."""
    notes: list[str] = []
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA", "PA") else None
    if channels == 1:
        colour = image.convert("L")
        if image.mode not in ("L", "LA"):
            notes.append("the colour image was run through the one-channel network as greyscale")
    elif channels == 3:
        colour = image.convert("RGB")
    else:
        raise ValueError(f"a network taking {channels} channels is not supported (1 or 3)")
    return colour, alpha, notes


@torch.inference_mode()
def _tiled(network: Network, pixels: torch.Tensor, tile: int, pad: int) -> tuple[np.ndarray, int]:
    """Run the network tile by tile with ``pad`` pixels of context; returns HxWxC uint8 and the tile count."""
    _, channels, height, width = pixels.shape
    scale = network.scale
    output = np.empty((height * scale, width * scale, channels), dtype=np.uint8)
    tiles = 0
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            top_in, left_in = max(top - pad, 0), max(left - pad, 0)
            window = pixels[..., top_in: min(bottom + pad, height), left_in: min(right + pad, width)]
            piece = network.module(window.contiguous(memory_format=torch.channels_last))
            crop = piece[0, :, (top - top_in) * scale: (bottom - top_in) * scale,
                         (left - left_in) * scale: (right - left_in) * scale]
            output[top * scale: bottom * scale, left * scale: right * scale] = _to_bytes(crop)
            tiles += 1
    return output, tiles


def _to_bytes(planes: Any) -> np.ndarray:
    return planes.float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
