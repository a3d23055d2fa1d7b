"""Kiln's model store: ``KILN_HOME/models/<name>/<version>/``, the one place weights live on disk.

A version is identified by a fingerprint of everything that produced it (source and revision, or
training recipe and hyperparameters), so re-running the pipeline with unchanged inputs reuses it.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kiln.files import directory_size, list_files, sha256_file

MANIFEST = "kiln-model.json"


@dataclass
class StoredModel:
    name: str
    version: str
    path: Path
    task: str
    fingerprint: str
    sha256: str
    size_bytes: int
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    created: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def file_by_digest(self) -> dict[str, Path]:
        return {digest: self.path / rel for rel, digest in self.files.items()}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    @classmethod
    def read(cls, path: Path) -> StoredModel:
        data = json.loads((path / MANIFEST).read_text())
        data["path"] = path
        return cls(**data)


def fingerprint_of(*parts: Any) -> str:
    import hashlib

    payload = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()


class ModelStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def versions(self, name: str) -> list[StoredModel]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        found = [StoredModel.read(p) for p in folder.iterdir() if (p / MANIFEST).is_file()]
        return sorted(found, key=lambda model: model.created)

    def latest(self, name: str) -> StoredModel | None:
        versions = self.versions(name)
        return versions[-1] if versions else None

    def find(self, name: str, fingerprint: str) -> StoredModel | None:
        path = self.root / name / fingerprint[:12]
        if (path / MANIFEST).is_file():
            model = StoredModel.read(path)
            if model.fingerprint == fingerprint:
                return model
        return None

    @contextmanager
    def stage(self, name: str, fingerprint: str, task: str, info: dict[str, Any] | None = None) -> Iterator[Path]:
        """Yield an empty staging folder; on success it is checksummed and moved into place atomically.

        A failure leaves nothing behind, so a half-written model is never picked up.
        """
        staging = self.root / ".staging" / f"{name}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            yield staging
            files = {str(rel): sha256_file(staging / rel) for rel in list_files(staging)}
            if not files:
                raise ValueError(f"Nothing was written for model '{name}'")
            tree_digest = fingerprint_of(sorted(files.items()))
            model = StoredModel(
                name=name,
                version=fingerprint[:12],
                path=self.root / name / fingerprint[:12],
                task=task,
                fingerprint=fingerprint,
                sha256=tree_digest,
                size_bytes=directory_size(staging),
                files=files,
                created=time.time(),
                info=info or {},
            )
            (staging / MANIFEST).write_text(json.dumps(model.to_json(), indent=2))
            model.path.parent.mkdir(parents=True, exist_ok=True)
            if model.path.exists():
                shutil.rmtree(model.path)
            staging.rename(model.path)
        finally:
            if staging.exists():
                shutil.rmtree(staging)

    def set_info(self, model: StoredModel, **info: Any) -> StoredModel:
        """Record facts about a stored model (e.g. its MLflow run) in its manifest, atomically."""
        model.info.update(info)
        manifest = model.path / MANIFEST
        temporary = manifest.with_suffix(".tmp")
        temporary.write_text(json.dumps(model.to_json(), indent=2))
        temporary.replace(manifest)
        return model
