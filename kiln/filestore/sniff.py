"""What a file is, from its first bytes (and, for text, its name): the content type an upload is
checked against, whatever its sender declared."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

from kiln.errors import KilnError

HEAD_BYTES = 64 * 1024

SIGNATURES: list[tuple[bytes, int, str]] = [  # (magic, offset, type)
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"fLaC", 0, "audio/flac"),
    (b"OggS", 0, "audio/ogg"),
    (b"ID3", 0, "audio/mpeg"),
    (b"PK\x03\x04", 0, "application/zip"),
    (b"%PDF-", 0, "application/pdf"),
    (b"PAR1", 0, "application/vnd.apache.parquet"),
    (b"\x1f\x8b", 0, "application/gzip"),  # .tar.gz datasets
    (b"ustar", 257, "application/x-tar"),
]
# Declared types that mean "I do not know": the bytes decide.
GENERIC = {"", "application/octet-stream", "binary/octet-stream", "application/unknown"}
ALIASES = {"audio/x-wav": "audio/wav", "audio/wave": "audio/wav", "audio/vnd.wave": "audio/wav", "audio/mp3": "audio/mpeg",
           "audio/x-flac": "audio/flac", "application/jsonl": "application/x-ndjson", "application/jsonlines":
           "application/x-ndjson", "text/x-csv": "text/csv", "application/csv": "text/csv", "image/jpg": "image/jpeg",
           "application/x-zip-compressed": "application/zip",
           "application/x-gzip": "application/gzip", "application/x-gtar": "application/x-tar", "text/json": "application/json"}
TEXT_TYPES = {"text/csv", "application/json", "application/x-ndjson", "text/plain"}


class UnsupportedType(KilnError):
    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


def normalize(content_type: str | None) -> str:
    base = (content_type or "").split(";")[0].strip().lower()
    return ALIASES.get(base, base)


def _binary(head: bytes) -> str | None:
    for magic, offset, kind in SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG audio frame without ID3
        return "audio/mpeg"
    return None


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # only a character cut by the head's end
    return True


def _json_kind(text: str) -> str | None:
    """application/json or application/x-ndjson when the text reads as one; None otherwise."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    complete = lines[:-1] if len(lines) > 1 else lines  # the head may cut the last line
    if lines[0].lstrip().startswith("{") and len(lines) > 1:
        try:
            for line in complete[:20]:
                json.loads(line)
            return "application/x-ndjson"
        except ValueError:
            pass
    if text.lstrip()[:1] in "[{":
        try:
            json.loads(text)
        except ValueError as exc:
            # A head cut in the middle of a document still reads as JSON up to the cut.
            if exc.pos < len(text) - 64 and len(text) < HEAD_BYTES:
                return None
        return "application/json"
    return None


def sniff(head: bytes, filename: str = "") -> str:
    """The content type of a file from its first bytes; ``application/octet-stream`` when unknown."""
    kind = _binary(head)
    if kind:
        return kind
    if not _is_text(head):
        return "application/octet-stream"
    text = head.decode("utf-8", errors="ignore")
    suffix = PurePosixPath(filename.lower()).suffix
    json_kind = _json_kind(text)
    if suffix in (".jsonl", ".ndjson") and json_kind:
        return "application/x-ndjson"
    if json_kind:
        return json_kind
    if suffix == ".csv" or (suffix in ("", ".txt", ".tsv") and _looks_like_csv(text)):
        return "text/csv"
    return "text/plain"


def _looks_like_csv(text: str) -> bool:
    lines = [line for line in text.splitlines()[:10] if line.strip()]
    if len(lines) < 2:
        return False
    counts = {line.count(",") for line in lines[:-1]}
    return len(counts) == 1 and counts.pop() > 0


def check(declared: str | None, head: bytes, filename: str, allowed: list[str]) -> str:
    """The type to record for an upload: its bytes' type, which must be allowed and agree with what the
    sender declared (text types agree among themselves: a .txt declared as CSV is fine)."""
    found = sniff(head, filename)
    said = normalize(declared)
    if found == "application/octet-stream":
        raise UnsupportedType(f"The file's content is not a type Kiln accepts (allowed: {', '.join(allowed)})",
                              {"declared": said or None, "allowed": allowed})
    json_types = {"application/json", "application/x-ndjson"}
    # Among text, CSV and plain text cannot be told apart reliably: the sender's word counts. JSON can.
    agrees = said == found or (said in TEXT_TYPES - json_types and found in TEXT_TYPES) or (said in json_types and found in json_types)
    if said and said not in GENERIC and not agrees:
        raise UnsupportedType(f"The file was sent as {said} but its content is {found}", {"declared": said, "detected": found})
    kind = said if said in TEXT_TYPES and agrees else found
    if kind not in allowed:
        raise UnsupportedType(f"Files of type {kind} are not accepted here (KILN_FILES_ALLOWED_TYPES: {', '.join(allowed)})",
                              {"detected": kind, "allowed": allowed})
    return kind


UNSAFE = re.compile(r"[^\w.\- ()+,@]")


def safe_filename(name: str | None) -> str:
    """A name fit for a Content-Disposition header and a log line: the last path part, no control or
    separator characters, at most 200 characters; "upload" when nothing is left."""
    name = unicodedata.normalize("NFC", name or "")
    name = PureWindowsPath(PurePosixPath(name).name).name  # drops any directory part, / or \\
    name = UNSAFE.sub("_", name).strip(" .")
    return (name or "upload")[-200:]
