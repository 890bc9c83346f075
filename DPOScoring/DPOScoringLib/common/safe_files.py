"""Atomic, never-silent file writes: a reader's work is never half-written or overwritten unasked.

Every output is checked before work starts (``check_output_file``, ``check_output_folder``):
its folder can be written, nothing is in the way, an existing result is kept unless --force,
and the disk has room for the expected size. A failure while writing (a full disk) removes
what was being written and is reported in one line (``DPOOutputError``).

One file-mode policy: every file written gets the mode the user's umask gives a new file
(0666 & ~umask, e.g. 0644), as ``open()`` would; ``mkstemp``'s private 0600 is not kept.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import DPOInputError, DPOOutputError

SPACE_MARGIN_BYTES = 1 << 20  # beyond the expected size: logs, temporary names, file-system overhead


def file_mode() -> int:
    """The mode a new file gets under the user's umask (what ``open(..., 'w')`` gives)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def apply_file_mode(path: str | Path) -> None:
    os.chmod(path, file_mode())


def expected_label_map_bytes(voxels: int) -> int:
    """A generous size for a gzip-compressed lobe label map (uint8) of ``voxels`` voxels: one
    byte in 16 (a real 512x512x141 thorax's label maps compress to well under that)."""
    return int(voxels) // 16 + (256 << 10)


def refuse_existing(path: str | Path, overwrite: bool) -> None:
    """A file the user already has is never replaced unless they said so."""
    if Path(path).exists() and not overwrite:
        raise DPOInputError(str(path), "already exists; not overwritten (use --force to replace it)")


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists; refuses when a regular file is in the way."""
    current = path
    while not current.exists():
        if current.is_symlink():
            raise DPOOutputError(str(path), f"{current} is a broken symbolic link")
        if current.parent == current:
            break
        current = current.parent
    if not current.is_dir():
        raise DPOOutputError(str(path), f"cannot be created: {current} is a file, not a folder")
    return current


def _probe_writable(folder: Path, where: str) -> None:
    """Create and remove a file in ``folder`` (``os.access`` says yes to root on read-only mounts)."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".dpo-write-test.", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == errno.ENOSPC:
            reason = "the disk is full"
        raise DPOOutputError(where, f"cannot be written: {folder} is not writable ({reason})") from None


def _check_space(folder: Path, expected_bytes: int, where: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < expected_bytes + SPACE_MARGIN_BYTES:
        raise DPOOutputError(where, f"not enough free space: {free / 1e6:.1f} MB free on the disk of {folder}, "
                             f"about {(expected_bytes + SPACE_MARGIN_BYTES) / 1e6:.1f} MB needed")


def check_output_file(path: str | Path, overwrite: bool, expected_bytes: int = 0) -> None:
    """Before work: ``path`` can be written as a file (its folder exists and is writable, no
    folder in its place, not existing unless ``overwrite``, room for ``expected_bytes``)."""
    path = Path(path)
    if path.is_dir():
        raise DPOOutputError(str(path), "is a folder; a file name is expected")
    refuse_existing(path, overwrite)
    folder = path.parent if str(path.parent) else Path(".")
    existing = _nearest_existing(folder)
    if existing != folder:
        raise DPOOutputError(str(path), f"cannot be written: folder {folder} does not exist")
    _probe_writable(folder, str(path))
    _check_space(folder, expected_bytes, str(path))


def check_output_folder(path: str | Path, overwrite: bool, expected_bytes: int = 0,
                        reuse: bool = False, occupied: str = "already exists and is not empty") -> None:
    """Before work: ``path`` can be (or already is) a folder this command may fill: not a file,
    not a non-empty folder unless ``overwrite`` or ``reuse`` (a batch resuming), writable, room
    for ``expected_bytes``. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DPOOutputError(str(path), "is a file; a folder is expected")
    if path.is_dir() and any(path.iterdir()) and not (overwrite or reuse):
        raise DPOInputError(str(path), f"{occupied}; not overwritten (use --force to replace it)")
    existing = _nearest_existing(path)
    _probe_writable(existing, str(path))
    _check_space(existing, expected_bytes, str(path))


def write_failure(path: str | Path, error: BaseException) -> DPOOutputError:
    """One line for a write that failed midway (the caller has removed what it had written)."""
    if isinstance(error, OSError):
        reason = "the disk is full" if error.errno in (errno.ENOSPC, errno.EDQUOT) else (error.strerror or str(error))
    else:  # SimpleITK's writers say only "failed to write": look at the disk
        text = str(error).strip().splitlines()
        reason = text[-1][:160] if text else type(error).__name__
        with contextlib.suppress(OSError, DPOInputError):
            if shutil.disk_usage(_nearest_existing(Path(path))).free < SPACE_MARGIN_BYTES:
                reason = "the disk is full"
    return DPOOutputError(str(path), f"could not be written ({reason}); nothing was left half-written")


def atomic_write_bytes(path: str | Path, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic
    rename. Refuses to replace an existing file unless ``overwrite`` is true."""
    path = Path(path)
    if path.is_dir():
        raise DPOOutputError(str(path), "is a folder; a file name is expected")
    refuse_existing(path, overwrite)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DPOInputError(str(path), f"folder {folder} does not exist")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as error:
        raise write_failure(path, error) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        apply_file_mode(temporary)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise write_failure(path, error) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def to_json_text(document) -> str:
    return json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | Path, document, overwrite: bool = False) -> Path:
    return atomic_write_bytes(path, to_json_text(document).encode("utf-8"), overwrite=overwrite)
