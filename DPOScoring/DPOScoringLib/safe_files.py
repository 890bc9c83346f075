"""Atomic, never-silent file writes: a reader's work is never half-written or overwritten unasked."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import DPOInputError


def refuse_existing(path: str | Path, overwrite: bool) -> None:
    """A file the user already has is never replaced unless they said so."""
    if Path(path).exists() and not overwrite:
        raise DPOInputError(str(path), "already exists; not overwritten (use --force to replace it)")


def atomic_write_bytes(path: str | Path, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic
    rename. Refuses to replace an existing file unless ``overwrite`` is true."""
    path = Path(path)
    refuse_existing(path, overwrite)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DPOInputError(str(path), f"folder {folder} does not exist")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def to_json_text(document) -> str:
    return json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | Path, document, overwrite: bool = False) -> Path:
    return atomic_write_bytes(path, to_json_text(document).encode("utf-8"), overwrite=overwrite)
