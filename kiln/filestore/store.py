"""The files store: uploads and task outputs. Records in Kiln's database (owner, name, type checked
against the bytes, size, sha256); bytes under KILN_HOME/files, written in chunks (never held whole in
memory) to a temporary name and renamed when complete, so a file is never seen half written."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from kiln.db import Database
from kiln.errors import InvalidInput, KilnError, NotFound
from kiln.filestore import sniff
from kiln.filestore.models import StoredFile
from kiln.settings import Settings
from kiln.tasks.events import stamp

CHUNK = 1 << 20


class TooLarge(KilnError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class FileStore:
    def __init__(self, settings: Settings, database: Database):
        self.settings = settings
        self.database = database
        self.root = settings.file_store_dir

    # --- writing ---

    def save(self, source: IO[bytes], filename: str | None, declared_type: str | None, owner_id: str | None,
             description: str | None = None, task_id: str | None = None, status: str = "uploaded",
             allowed: list[str] | None = None) -> StoredFile:
        """Store what ``source`` yields (a binary file object), checked and counted on the way."""
        file_id = str(uuid.uuid4())
        key = f"{file_id[:2]}/{file_id}"
        final = self.root / key
        partial = final.with_name(f".{file_id}.part")
        partial.parent.mkdir(parents=True, exist_ok=True)
        limit = self.settings.max_upload_bytes
        name = sniff.safe_filename(filename)
        digest, size = hashlib.sha256(), 0
        try:
            head = source.read(sniff.HEAD_BYTES)
            if not head:
                raise InvalidInput("file", "the file is empty")
            content_type = sniff.check(declared_type, head, name, allowed or self.settings.files_allowed_types)
            with partial.open("wb") as out:
                chunk = head
                while chunk:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"The file is larger than {limit} bytes (KILN_MAX_UPLOAD_BYTES)", {"max_upload_bytes": limit})
                    digest.update(chunk)
                    out.write(chunk)
                    chunk = source.read(CHUNK)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        record = StoredFile(id=file_id, filename=name, content_type=content_type, size=size, sha256=digest.hexdigest(),
                            description=description, status=status, owner_id=owner_id, task_id=task_id, storage_key=key)
        try:
            with self.database.session() as session:
                session.add(record)
        except Exception:
            final.unlink(missing_ok=True)  # no record, no bytes
            raise
        return record

    def save_bytes(self, data: bytes, filename: str, content_type: str, owner_id: str | None,
                   description: str | None = None, task_id: str | None = None, status: str = "output") -> StoredFile:
        import io

        return self.save(io.BytesIO(data), filename, content_type, owner_id, description, task_id, status,
                         allowed=[sniff.normalize(content_type)] + self.settings.files_allowed_types)

    def save_path(self, path: Path, filename: str, content_type: str, owner_id: str | None,
                  description: str | None = None, task_id: str | None = None, status: str = "output") -> StoredFile:
        with path.open("rb") as source:
            return self.save(source, filename, content_type, owner_id, description, task_id, status,
                             allowed=[sniff.normalize(content_type)] + self.settings.files_allowed_types)

    def delete(self, file_id: str) -> bool:
        """Forget a file: its record and its bytes (e.g. a registered face's image). False if there was none."""
        with self.database.session() as session:
            record = session.get(StoredFile, file_id)
            if record is None:
                return False
            session.delete(record)
        path = (self.root / record.storage_key).resolve()
        if self.root.resolve() in path.parents:
            path.unlink(missing_ok=True)
        return True

    # --- reading ---

    def get(self, file_id: str, owner_id: str | None, see_all: bool) -> StoredFile:
        """The record, if the caller may see it; another owner's file is a 404."""
        with self.database.session() as session:
            record = session.get(StoredFile, file_id)
        if record is None or (not see_all and record.owner_id != owner_id):
            raise NotFound(f"No file with id '{file_id}'", {"file_id": file_id})
        return record

    def find(self, reference: str, owner_id: str | None, see_all: bool, field: str = "input_file") -> StoredFile:
        """A file named in task parameters: its id, or the name of the caller's newest file of that name."""
        try:
            return self.get(reference, owner_id, see_all)
        except NotFound:
            pass
        with self.database.session() as session:
            query = select(StoredFile).where(StoredFile.filename == sniff.safe_filename(reference))
            if not see_all:
                query = query.where(StoredFile.owner_id == owner_id if owner_id is not None else StoredFile.owner_id.is_(None))
            record = session.scalar(query.order_by(StoredFile.created_at.desc()).limit(1))
        if record is None:
            raise InvalidInput(field, f"no file with id or name {reference!r} among your files: upload it with POST /files/upload")
        return record

    def path(self, record: StoredFile) -> Path:
        path = (self.root / record.storage_key).resolve()
        if self.root.resolve() not in path.parents:
            raise NotFound(f"File '{record.id}' has no content")  # a key never leaves the store
        if not path.is_file():
            raise NotFound(f"The content of file '{record.id}' is missing from the store", {"file_id": record.id})
        return path

    def mark(self, record: StoredFile, status: str) -> None:
        with self.database.session() as session:
            stored = session.get(StoredFile, record.id)
            if stored is not None:
                stored.status = status

    def describe(self, record: StoredFile, base_url: str = "") -> dict[str, Any]:
        return {
            "id": record.id,
            "filename": record.filename,
            "size": record.size,
            "content_type": record.content_type,
            "sha256": record.sha256,
            "description": record.description,
            "upload_date": stamp(record.created_at),
            "status": record.status,
            "task_id": record.task_id,
            "download_url": f"{base_url.rstrip('/')}/files/{record.id}/download",
        }
