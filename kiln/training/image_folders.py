"""Image-folder datasets for the ``image_classifier`` model type: ``class_name/*.jpg|png``, given as an uploaded
.zip/.tar archive of the files store or as a directory under one of the allowed dataset roots.

Archives are read member by member, never with ``extractall``: only regular image files are written, every
name is checked (no absolute paths, no ``..``, no links), and the member count and unpacked size are capped
before anything is written. One wrapping top-level folder (``my_dataset/cat/1.jpg``) is allowed."""

from __future__ import annotations

import shutil
import tarfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kiln.errors import InvalidInput

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FIELD = "dataset_path"
IGNORED_PARTS = ("__MACOSX",)


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 100_000
    max_total_bytes: int = 2 * 1024**3  # unpacked
    max_member_bytes: int = 50 * 1024**2


@dataclass(frozen=True)
class ImageFolder:
    """The dataset as found: sorted class names and, per image, its file and class index."""

    root: Path
    classes: list[str]
    files: list[Path]
    targets: list[int]


def _bad(message: str) -> InvalidInput:
    return InvalidInput(FIELD, message)


def member_parts(name: str) -> tuple[str, ...] | None:
    """The path parts of an archive member if it is an image worth reading; None for what is skipped
    (folders, hidden files, other files). A name that could escape the target folder is refused."""
    name = name.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or (path.parts and ":" in path.parts[0]):  # /etc/x, C:/x
        raise _bad(f"the archive member {name!r} has an absolute path")
    if ".." in path.parts:
        raise _bad(f"the archive member {name!r} points outside the archive ('..')")
    parts = tuple(p for p in path.parts if p not in ("", "."))
    if not parts or any(p.startswith(".") or p in IGNORED_PARTS for p in parts):
        return None
    return parts if parts[-1].lower().endswith(IMAGE_SUFFIXES) else None


def class_layout(paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """``paths`` as (class, file): one common wrapping folder is dropped; anything else must be class/file."""
    if paths and all(len(p) == 3 for p in paths) and len({p[0] for p in paths}) == 1:
        paths = [p[1:] for p in paths]
    deep = [p for p in paths if len(p) != 2]
    if deep:
        raise _bad(f"images must sit in one folder per class (class_name/image.jpg); found {'/'.join(deep[0])!r}")
    return paths


def _members(archive: Path) -> list[tuple[str, int, bool]]:
    """(name, size, is_regular_file) for every member of a zip or tar archive."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as opened:
            return [(info.filename, info.file_size, not info.is_dir() and not _zip_symlink(info))
                    for info in opened.infolist()]
    try:
        with tarfile.open(archive) as opened:
            return [(member.name, member.size, member.isreg()) for member in opened.getmembers()]
    except tarfile.TarError as exc:
        raise _bad(f"the file is neither a zip nor a tar archive of images ({exc})") from None


def _zip_symlink(info: zipfile.ZipInfo) -> bool:
    return (info.external_attr >> 16) & 0o170000 == 0o120000


def inspect_archive(archive: Path, limits: ArchiveLimits = ArchiveLimits()) -> dict[str, int]:
    """Check an archive without unpacking it: limits, safe names, class layout. Returns images per class."""
    members = _members(archive)
    if len(members) > limits.max_members:
        raise _bad(f"the archive has {len(members)} members; at most {limits.max_members} are accepted")
    total, images = 0, []
    for name, size, regular in members:
        parts = member_parts(name)
        if parts is None or not regular:
            continue
        if size > limits.max_member_bytes:
            raise _bad(f"{name!r} unpacks to {size} bytes; an image may have at most {limits.max_member_bytes}")
        total += size
        if total > limits.max_total_bytes:
            raise _bad(f"the archive unpacks to more than {limits.max_total_bytes} bytes of images")
        images.append(parts)
    counts: dict[str, int] = {}
    for label, _ in class_layout(images):
        counts[label] = counts.get(label, 0) + 1
    _check_classes(counts)
    return counts


def _check_classes(counts: dict[str, int]) -> None:
    if len(counts) < 2 or sum(counts.values()) < 4:
        raise _bad(f"an image classifier needs at least 2 class folders and 4 images (found {len(counts)} classes, "
                   f"{sum(counts.values())} .jpg/.png images)")


def extract_archive(archive: Path, target: Path, limits: ArchiveLimits = ArchiveLimits()) -> Path:
    """Unpack the archive's images into ``target`` as class/file (once: an unpacked ``target`` is reused)."""
    if (target / ".complete").is_file():
        return target
    inspect_archive(archive, limits)
    staging = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.partial")
    staging.mkdir(parents=True)
    try:
        for parts, read in _image_streams(archive):
            label, filename = parts
            destination = staging / label / filename
            destination.parent.mkdir(exist_ok=True)
            with read() as source, destination.open("wb") as sink:
                shutil.copyfileobj(_capped(source, limits.max_member_bytes), sink)
        (staging / ".complete").write_text("ok")
        if target.exists() and not (target / ".complete").is_file():
            shutil.rmtree(target, ignore_errors=True)  # what an interrupted unpacking left
        try:
            staging.rename(target)
        except OSError:  # another run unpacked the same archive meanwhile: theirs is as good
            if not (target / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class _capped:
    """A reader that refuses to give more than ``limit`` bytes (a member lying about its size)."""

    def __init__(self, source, limit: int):
        self.source, self.left = source, limit

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(64 * 1024 if size < 0 else min(size, 64 * 1024))
        self.left -= len(chunk)
        if self.left < 0:
            raise _bad("an archive member unpacks to more bytes than its header says")
        return chunk


def _image_streams(archive: Path):
    """(class, file) parts and an opener for every image member, laid out as ``class_layout`` says."""
    found = []
    if zipfile.is_zipfile(archive):
        opened_zip = zipfile.ZipFile(archive)
        for info in opened_zip.infolist():
            parts = member_parts(info.filename)
            if parts is not None and not info.is_dir() and not _zip_symlink(info):
                found.append((parts, lambda info=info: opened_zip.open(info)))
        closer = opened_zip
    else:
        opened_tar = tarfile.open(archive)
        for member in opened_tar.getmembers():
            parts = member_parts(member.name)
            if parts is not None and member.isreg():
                found.append((parts, lambda member=member: opened_tar.extractfile(member)))
        closer = opened_tar
    with closer:
        layout = class_layout([parts for parts, _ in found])
        for parts, (_, opener) in zip(layout, found):
            yield parts, opener


def within(path: Path, roots: list[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == root.resolve() or root.resolve() in resolved.parents for root in roots)


def dataset_directory(reference: str, roots: list[Path]) -> Path:
    """A dataset directory named by path: absolute, or relative to the first root; it must lie under a root."""
    if not roots:
        raise _bad("no dataset roots are configured (KILN_DATASET_ROOTS): upload the dataset as a .zip or .tar "
                   "with POST /files/upload and give its file id")
    path = Path(reference)
    path = path if path.is_absolute() else roots[0] / path
    allowed = ", ".join(str(root) for root in roots)
    if not within(path, roots):
        raise _bad(f"{reference!r} is not under an allowed dataset root ({allowed})")
    if not path.is_dir():
        raise _bad(f"{reference!r} is not a directory under the dataset roots ({allowed})")
    return path.resolve()


def read_image_folder(root: Path) -> ImageFolder:
    """The images of ``root/class_name/*``; links that leave ``root`` are not followed."""
    by_class: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = [f for f in sorted(folder.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
                 and f.is_file() and within(f, [root])]
        if files:
            by_class[folder.name] = files
    _check_classes({label: len(files) for label, files in by_class.items()})
    classes = sorted(by_class)
    files, targets = [], []
    for index, label in enumerate(classes):
        files.extend(by_class[label])
        targets.extend([index] * len(by_class[label]))
    return ImageFolder(root, classes, files, targets)


def stratified_split(targets: list[int], share: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, validation) indices: per class, ``share`` of its images held out (at least one when it has two)."""
    import numpy as np

    random = np.random.RandomState(seed)
    train, held = [], []
    for label in sorted(set(targets)):
        members = [i for i, t in enumerate(targets) if t == label]
        random.shuffle(members)
        count = max(1, int(round(len(members) * share))) if len(members) >= 2 else 0
        held.extend(members[:count])
        train.extend(members[count:])
    return sorted(train), sorted(held)


ARCHIVE_TYPES = ("application/zip", "application/x-tar", "application/gzip")


def listing_digest(root: Path) -> str:
    """Stands for a directory dataset's content in the run's fingerprint: names, sizes and times of its images."""
    from kiln.store import fingerprint_of

    folder = read_image_folder(root)
    return fingerprint_of([(str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns) for f in folder.files])


def resolve_dataset(reference: str, inputs, settings) -> tuple[str, str]:
    """(the archive or directory on disk, a digest of its content) for an image_classifier's ``dataset_path``:
    a path (it has a '/') names a directory under the dataset roots; anything else is a file of the caller's."""
    if "/" in reference:
        directory = dataset_directory(reference, settings.training_dataset_roots)
        return str(directory), listing_digest(directory)
    record = inputs.file(reference, field=FIELD)
    if record.content_type not in ARCHIVE_TYPES:
        raise _bad(f"file {reference!r} is {record.content_type}: an image_classifier trains on a .zip or .tar "
                   "(.tar.gz) of class_name/*.jpg|png, or a directory under the dataset roots")
    path = inputs.files.path(record)
    inspect_archive(path, ArchiveLimits(max_total_bytes=settings.training_archive_max_bytes))
    return str(path), record.sha256
