"""Reading uploaded images safely: size limit, known formats only, the pixel count checked from the header
before any decoding (decompression bombs), EXIF orientation applied, always RGB out.

Errors: 413 (too many bytes or pixels), 415 (not an image format Kiln reads), 400 (a known format whose
bytes are corrupt or truncated).
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass
from typing import Any

from kiln.errors import BadRequest, InvalidInput, KilnError, TooLarge

# What PIL may open here: never its long tail of exotic decoders (EPS runs Ghostscript, for one).
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


class UnsupportedImage(KilnError):
    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class CorruptImage(BadRequest):
    code = "CORRUPT_IMAGE"


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000

    @classmethod
    def from_settings(cls, settings: Any) -> ImageLimits:
        return cls(settings.vision_max_upload_mb * 1024 * 1024, settings.vision_max_pixels)


def sniff_format(data: bytes) -> str | None:
    """The image format the bytes start with, or None."""
    for magic, name in MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _checked_format(data: bytes, limits: ImageLimits, field: str) -> str:
    """The upload's format, after the checks every path makes first: not empty, not too many bytes, a known format."""
    if not data:
        raise InvalidInput(field, "the uploaded image is empty")
    if len(data) > limits.max_bytes:
        raise TooLarge(f"{field}: the image is larger than {limits.max_bytes // (1024 * 1024)} MB (KILN_VISION_MAX_UPLOAD_MB)",
                       {"field": field, "max_bytes": limits.max_bytes})
    kind = sniff_format(data)
    if kind is None:
        raise UnsupportedImage(f"{field}: not an image Kiln reads (JPEG, PNG, WebP, BMP, GIF, TIFF)", {"field": field})
    return kind


def decode_image(data: bytes, limits: ImageLimits = ImageLimits(), field: str = "image") -> Any:
    """The upload as an upright RGB ``PIL.Image`` (EXIF orientation applied)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    kind = _checked_format(data, limits, field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below decides
            image = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
            width, height = image.size
            if width * height > limits.max_pixels:
                raise TooLarge(f"{field}: {width}x{height} is more than {limits.max_pixels} pixels (KILN_VISION_MAX_PIXELS)",
                               {"field": field, "width": width, "height": height, "max_pixels": limits.max_pixels})
            image.load()
            upright = ImageOps.exif_transpose(image)
    except KilnError:
        raise
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"{field}: more than {limits.max_pixels} pixels (KILN_VISION_MAX_PIXELS): {exc}", {"field": field}) from None
    except UnidentifiedImageError:
        raise CorruptImage(f"{field}: the bytes look like {kind} but cannot be read as an image", {"field": field}) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise CorruptImage(f"{field}: the {kind} image is corrupt or truncated ({exc})", {"field": field}) from None
    return upright.convert("RGB") if upright.mode != "RGB" else upright


def check_image(data: bytes, limits: ImageLimits = ImageLimits(), field: str = "image") -> tuple[str, int, int]:
    """(format, width, height) from the bytes' header alone, with the same limits as ``decode_image``: cheap
    enough for the gateway to refuse bad uploads before they reach a model. Corrupt pixel data shows on decoding."""
    from PIL import Image, UnidentifiedImageError

    kind = _checked_format(data, limits, field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below decides
            width, height = Image.open(io.BytesIO(data), formats=FORMATS).size
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"{field}: more than {limits.max_pixels} pixels (KILN_VISION_MAX_PIXELS): {exc}", {"field": field}) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise CorruptImage(f"{field}: the bytes look like {kind} but its header cannot be read", {"field": field}) from None
    if width * height > limits.max_pixels:
        raise TooLarge(f"{field}: {width}x{height} is more than {limits.max_pixels} pixels (KILN_VISION_MAX_PIXELS)",
                       {"field": field, "width": width, "height": height, "max_pixels": limits.max_pixels})
    return kind, width, height


def image_from_base64(value: str, limits: ImageLimits = ImageLimits(), field: str = "image") -> Any:
    return decode_image(b64decode(value, field), limits, field)


def b64decode(value: str, field: str = "image") -> bytes:
    if "," in value[:100] and value.startswith("data:"):  # a data URL, as browsers make them
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(field, "not valid base64") from None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def to_rgb_array(image: Any) -> Any:
    """(height, width, 3) uint8, C-contiguous (what dlib and OpenCV take)."""
    import numpy as np

    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def encode_png(array_or_image: Any) -> bytes:
    from PIL import Image

    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
