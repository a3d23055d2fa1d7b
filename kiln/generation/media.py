"""Encoding generated frames: PNG for images, MP4 (H.264 through PyAV) or GIF for videos."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

VIDEO_TYPES = {"mp4": "video/mp4", "gif": "image/gif"}


def to_pil(image: Any, size: int | None = None):
    """A PIL image from a (C, H, W) or (H, W) array in -1..1, or a PIL image; optionally scaled up
    (nearest: a 16x16 digit stays crisp)."""
    import numpy as np
    from PIL import Image

    if not isinstance(image, Image.Image):
        array = np.asarray(image, dtype=np.float32)
        if array.ndim == 3 and array.shape[0] in (1, 3):
            array = array.transpose(1, 2, 0)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        image = Image.fromarray(((np.clip(array, -1, 1) + 1) * 127.5).round().astype(np.uint8))
    if size and image.size != (size, size) and image.width < size:
        image = image.resize((size, size), Image.NEAREST)
    return image


def png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def video_bytes(frames: Sequence[Any], fps: int, fmt: str = "mp4") -> bytes:
    if fmt not in VIDEO_TYPES:
        raise ValueError(f"unknown video format {fmt!r}")
    images = [to_pil(frame).convert("RGB") for frame in frames]
    if fmt == "gif":
        buffer = io.BytesIO()
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        return buffer.getvalue()
    return _mp4(images, fps)


def _mp4(images: list, fps: int) -> bytes:
    import av

    # H.264 in yuv420p needs even sides; frames smaller than 64 px are scaled up so players show them
    from PIL import Image

    width, height = images[0].size
    scale = max(1, -(-64 // min(width, height)))
    width, height = width * scale, height * scale
    width, height = width + width % 2, height + height % 2
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in images:
            frame = av.VideoFrame.from_image(image.resize((width, height), Image.NEAREST))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
