"""kiln/vision without a server: image decoding limits and orientation, the face index, the face records
kept in step across processes and owners, and the camera's newest-frame slot."""

import asyncio
import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from kiln.errors import InvalidInput, TooLarge
from kiln.vision.camera import Frame, LatestFrame, parse_operations
from kiln.vision.images import CorruptImage, ImageLimits, UnsupportedImage, check_image, decode_image, image_from_base64
from kiln.vision.index import FaceIndex
from kiln.vision.samples import iou


def encoded(image: Image.Image, kind: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=kind, **options)
    return out.getvalue()


def test_decode_gives_rgb_for_every_accepted_format():
    for kind in ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"):
        image = decode_image(encoded(Image.new("L", (31, 17), 128), kind))
        assert image.mode == "RGB" and image.size == (31, 17), kind


def test_decode_applies_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    data = encoded(Image.new("RGB", (40, 10)), "JPEG", exif=exif.tobytes())
    assert decode_image(data).size == (10, 40)


def test_limits_are_checked_before_decoding():
    big = encoded(Image.new("RGB", (300, 300)))
    with pytest.raises(TooLarge, match="pixels"):
        check_image(big, ImageLimits(max_pixels=300 * 299))
    with pytest.raises(TooLarge, match="pixels"):
        decode_image(big, ImageLimits(max_pixels=300 * 299))
    with pytest.raises(TooLarge, match="MB"):
        decode_image(big, ImageLimits(max_bytes=100))
    assert check_image(big) == ("PNG", 300, 300)


def test_what_is_not_an_image_or_is_broken_is_named():
    with pytest.raises(UnsupportedImage):
        decode_image(b"GIF-ish? no: plain text")
    with pytest.raises(CorruptImage):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    with pytest.raises(InvalidInput, match="empty"):
        decode_image(b"")
    with pytest.raises(InvalidInput, match="base64"):
        image_from_base64("***")
    data_url = "data:image/png;base64," + base64.b64encode(encoded(Image.new("RGB", (5, 6)))).decode()
    assert image_from_base64(data_url).size == (5, 6)


def test_iou():
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(50 / 150)
    assert iou([0, 0, 10, 10], [20, 20, 5, 5]) == 0.0


def test_face_index_finds_the_nearest_of_the_callers_faces():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 128)).astype(np.float32)
    index = FaceIndex()
    for i, vector in enumerate(vectors):  # grows past its first buffer
        index.add(f"f{i}", "alice" if i % 2 else "bob", vector)
    query = vectors[101] + 0.01
    [match] = index.nearest(query[None])
    assert match.face_id == "f101" and match.distance == pytest.approx(np.linalg.norm(query - vectors[101]), abs=1e-3)
    [bobs] = index.nearest(query[None], owner_id="bob", see_all=False)
    assert bobs.face_id != "f101" and int(bobs.face_id[1:]) % 2 == 0
    assert index.nearest(query[None], owner_id="carol", see_all=False) == [None]
    assert index.remove("f101") and not index.remove("f101")
    assert index.nearest(query[None])[0].face_id != "f101" and len(index) == 299
    exact = [int(np.argmin(np.linalg.norm(vectors - v, axis=1))) for v in vectors[:5]]
    assert [m.face_id for m in index.nearest(vectors[:5])] == [f"f{i}" for i in exact]


@pytest.fixture
def registries(tmp_path):
    """Two face registries on one database and files store: two gateway processes."""
    from kiln.db import Database
    from kiln.filestore.store import FileStore
    from kiln.settings import Settings
    from kiln.vision.records import FaceRegistry

    settings = Settings(home=tmp_path)
    database = Database(settings.records_database_url)
    database.migrate()
    files = FileStore(settings, database)
    yield FaceRegistry(database, files), FaceRegistry(database, files), files
    database.dispose()


def test_face_records_stay_in_step_across_processes_and_owners(registries):
    one, two, files = registries
    alice = np.full(128, 0.05, dtype=np.float32)
    png = encoded(Image.new("RGB", (8, 8)))
    record = one.register("Alice", alice, [1, 2, 3, 4], png, "image/png", "alice.png", "user-a", "dlib-faces")
    assert files.path(files.get(record.image_file_id, "user-a", False)).read_bytes() == png
    [seen] = two.recognize([alice + 0.01], "user-a", see_all=False)  # the other process reloads its index
    assert seen["name"] == "Alice" and seen["face_id"] == record.id and seen["confidence"] == pytest.approx(1 - 0.01 * 128 ** 0.5 / 0.6, abs=1e-3)
    [stranger] = two.recognize([alice], "user-b", see_all=False)  # another owner never matches Alice
    assert stranger["name"] == "unknown"
    [far] = two.recognize([alice + 0.2], "user-a", see_all=False)  # distance 2.26 > 0.6
    assert far["name"] == "unknown" and far["distance"] > 0.6
    with pytest.raises(Exception, match="No registered face"):
        two.forget(record.id, "user-b", see_all=False)
    assert two.list("user-a", False)[1] == 1 and two.list("user-b", False)[1] == 0
    two.forget(record.id, "user-a", see_all=False)
    assert one.recognize([alice], "user-a", see_all=False)[0]["name"] == "unknown"
    with pytest.raises(Exception, match="No file"):
        files.get(record.image_file_id, "user-a", False)


def test_the_newest_frame_wins_and_the_rate_is_bounded():
    async def scenario():
        slot = LatestFrame(max_fps=20)
        assert not slot.put(Frame(1, b"a", ("faces",)))
        assert slot.put(Frame(2, b"b", ("faces",)))  # replaces the waiting one
        first = await slot.take()
        slot.put(Frame(3, b"c", ("faces",)))
        started = time.perf_counter()
        second = await slot.take()
        waited = time.perf_counter() - started
        slot.close()
        return first.frame_id, second.frame_id, waited, slot.skipped, await slot.take()

    first, second, waited, skipped, after_close = asyncio.run(scenario())
    assert (first, second, skipped, after_close) == (2, 3, 1, None)
    assert waited >= 0.04  # 20 frames/s: 50 ms apart


def test_operations_are_checked():
    assert parse_operations("faces,detect,faces") == ("faces", "detect")
    with pytest.raises(InvalidInput, match="teleport"):
        parse_operations(["teleport"])
    with pytest.raises(InvalidInput):
        parse_operations([])
