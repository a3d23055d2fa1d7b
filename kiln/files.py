"""File helpers: checksums, and hard links so one checkpoint is stored once on disk."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(root: Path) -> list[Path]:
    """Regular files under ``root``, relative and sorted (stable for digests)."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def link_or_copy(src: Path, dst: Path) -> bool:
    """Hard-link ``src`` to ``dst``; copy when linking is impossible (other filesystem). True if linked."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copy2(src, dst)
        return False


def link_tree(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> None:
    for rel in list_files(src):
        if rel.parts[0] in skip or rel.name in skip:
            continue
        link_or_copy(src / rel, dst / rel)


def replace_duplicates_with_links(target: Path, canonical: dict[str, Path]) -> int:
    """Swap each file under ``target`` whose sha256 is a key of ``canonical`` for a hard link to it.

    Used after MLflow or BentoML copied weights into their own stores. Returns bytes reclaimed.
    """
    sizes = {path.stat().st_size for path in canonical.values()}
    reclaimed = 0
    for rel in list_files(target):
        path = target / rel
        stat = path.stat()
        if stat.st_size not in sizes or stat.st_size == 0:
            continue
        original = canonical.get(sha256_file(path))
        if original is None or os.path.samefile(original, path):
            continue
        temporary = path.with_name(path.name + ".kiln-link")
        try:
            os.link(original, temporary)
        except OSError:
            continue  # other filesystem: keep the copy
        os.replace(temporary, path)
        reclaimed += stat.st_size
    return reclaimed


def directory_size(root: Path) -> int:
    return sum((root / rel).stat().st_size for rel in list_files(root))
