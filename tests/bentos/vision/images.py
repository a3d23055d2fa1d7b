"""The sample photographs as upload bytes."""

from __future__ import annotations

import io
from functools import lru_cache

from kiln.vision.samples import sample_image


@lru_cache(maxsize=None)
def jpeg(name: str, mirror: bool = False, scale: float = 1.0) -> bytes:
    from PIL import ImageOps

    image = sample_image(name)
    if mirror:
        image = ImageOps.mirror(image)
    if scale != 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92)
    return out.getvalue()


def upload(data: bytes, name: str = "photo.jpg", kind: str = "image/jpeg") -> dict:
    return {"image": (name, data, kind)}
