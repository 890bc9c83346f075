"""Work folders for the background process: the CT (and lobes) it reads, the files it writes.

Patient data must not linger: each folder is private (mode 0700, made by ``tempfile.mkdtemp``)
inside Slicer's own per-user temporary folder (``slicer.app.temporaryPath``) when running in
Slicer, is removed as soon as its process has ended (success, failure or cancel), and whatever is
still there when Python exits (Slicer closed mid-run) is removed then. The CT is written through a
storage node of its own, so the CT's storage node keeps pointing at the user's file (a later scene
save never references a temporary copy).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import slicer

_LIVE: set[Path] = set()


def _remove_all_at_exit() -> None:
    for folder in list(_LIVE):
        remove_work_folder(folder)


atexit.register(_remove_all_at_exit)


def default_base() -> str | None:
    """Slicer's per-user temporary folder inside the application, else the system's."""
    if not hasattr(slicer, "app"):  # slicer-core (headless): no application
        return None
    path = slicer.app.temporaryPath
    return str(path) if path else None


def new_work_folder(base: str | Path | None = None, prefix: str = "dpo-work-") -> Path:
    """A new private folder, removed by ``remove_work_folder`` or at the latest when Python exits."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=str(base) if base else default_base()))
    _LIVE.add(folder)
    return folder


def remove_work_folder(folder: str | Path | None) -> None:
    if folder is None:
        return
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    _LIVE.discard(folder)


def live_work_folders() -> set[Path]:
    return set(_LIVE)


def export_volume(volume, path: str | Path) -> Path:
    """Writes a volume node to ``path`` through a storage node of its own (not added to the scene),
    leaving the node's storage node and file name untouched."""
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(False)
    if not storage.WriteData(volume):
        from .errors import DPOInputError

        raise DPOInputError(str(path), f"the volume {volume.GetName()} could not be written there")
    return Path(path)
