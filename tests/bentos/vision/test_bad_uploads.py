"""Uploads the vision routes refuse, each with a clear 4xx naming the problem; EXIF orientation applied."""

import io
import struct
import zlib

import pytest

from tests.bentos.vision.images import jpeg, upload

ROUTES = ["/api/image-recognition/classify", "/api/image-recognition/detect", "/api/face-recognition/detect",
          "/api/face-recognition/recognize"]


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height``, with (almost) no pixel data: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("route", ROUTES)
def test_no_image_is_a_422(client, route):
    response = client.post(route, data={"model": "efficientnet-lite0"} if "classify" in route else {})
    assert response.status_code == 422 and "image" in response.json()["detail"]


@pytest.mark.parametrize("route", ROUTES)
def test_not_an_image_is_a_415(client, route):
    response = client.post(route, files=upload(b"%PDF-1.4 not an image at all", "doc.pdf", "application/pdf"))
    assert response.status_code == 415 and "not an image" in response.json()["detail"]


def test_a_truncated_image_is_a_400(client):
    data = jpeg("coffee")
    response = client.post("/api/image-recognition/classify", files=upload(data[: len(data) // 3]))
    assert response.status_code == 400 and "corrupt or truncated" in response.json()["detail"]


def test_an_empty_file_is_a_422(client):
    response = client.post("/api/face-recognition/detect", files=upload(b""))
    assert response.status_code == 422 and "empty" in response.json()["detail"]


def test_too_many_bytes_is_a_413(client):
    response = client.post("/api/image-recognition/classify", files=upload(b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024 + 10)))
    assert response.status_code == 413 and "2 MB" in response.json()["detail"]


@pytest.mark.parametrize("side", [9_000, 60_000])  # beyond KILN_VISION_MAX_PIXELS; beyond PIL's own bomb limit too
def test_huge_dimensions_are_refused_before_decoding(client, side):
    response = client.post("/api/image-recognition/detect", files=upload(png_header(side, side), "bomb.png", "image/png"))
    assert response.status_code == 413 and "more than 50000000 pixels" in response.json()["detail"]


def test_a_bad_option_is_a_422(client):
    response = client.post("/api/image-recognition/classify", files=upload(jpeg("coffee")), data={"top_k": "0"})
    assert response.status_code == 422
    response = client.post("/api/image-recognition/detect", files=upload(jpeg("coffee")), data={"threshold": "2"})
    assert response.status_code == 422


def test_exif_orientation_is_applied(client):
    from PIL import Image

    from kiln.vision.samples import sample_image

    # The astronaut stored lying on her side, with the EXIF tag that says "rotate 90 degrees clockwise to view".
    stored = sample_image("astronaut").crop((0, 0, 512, 400)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    stored.save(out, format="JPEG", exif=exif.tobytes())
    assert stored.size == (400, 512)
    body = client.post("/api/face-recognition/detect", files=upload(out.getvalue())).json()
    assert (body["width"], body["height"]) == (512, 400)  # upright, as a viewer shows it
    assert len(body["faces"]) == 1  # dlib's frontal detector finds no face lying on its side
