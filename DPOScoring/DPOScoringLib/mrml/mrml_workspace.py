"""Work folders for the background process: the CT (and lobes) it reads, the files it writes.

Patient data must not linger: each folder is private (mode 0700, made by ``tempfile.mkdtemp``)
inside Slicer's own per-user temporary folder (``slicer.app.temporaryPath``, on Linux
``/tmp/Slicer-$USER`` by default) when running in Slicer, and is removed as soon as its process
has ended (success, failure or cancel). Whatever is still there when the module is cleaned up
(Slicer closing mid-run) or Python exits is removed then, and a folder of ours older than a day
(left by a crash) is removed when the next one is made. The CT is written through a
storage node of its own, so the CT's storage node keeps pointing at the user's file (a later scene
save never references a temporary copy).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
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


PREFIX = "dpo-work-"
STALE_SECONDS = 24 * 3600


def new_work_folder(base: str | Path | None = None, prefix: str = PREFIX) -> Path:
    """A new private folder, removed by ``remove_work_folder`` or at the latest when Python exits."""
    base = str(base) if base else default_base()
    remove_stale_work_folders(base)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    _LIVE.add(folder)
    return folder


def remove_stale_work_folders(base: str | Path | None = None, max_age_s: float = STALE_SECONDS) -> list[Path]:
    """Our folders (``dpo-work-*``, ``dpo-pip-*``) in ``base`` untouched for longer than ``max_age_s``: left by a crash
    (another user's cannot be removed: their folders are 0700 and ignored on error)."""
    base = Path(base or tempfile.gettempdir())
    now, removed = time.time(), []
    for folder in [*base.glob(PREFIX + "*"), *base.glob("dpo-pip-*")]:
        try:
            stale = folder.is_dir() and now - folder.stat().st_mtime > max_age_s
        except OSError:
            continue
        if stale and folder not in _LIVE:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def remove_all_work_folders() -> None:
    """The module is cleaned up (Slicer closing): nothing of ours stays behind."""
    _remove_all_at_exit()


def remove_work_folder(folder: str | Path | None) -> None:
    if folder is None:
        return
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    _LIVE.discard(folder)


def export_volume(volume, path: str | Path) -> Path:
    """Writes a volume node to ``path`` through a storage node of its own (not added to the scene),
    leaving the node's storage node and file name untouched."""
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(False)
    if not storage.WriteData(volume):
        from ..common.errors import DPOInputError

        raise DPOInputError(str(path), f"the volume {volume.GetName()} could not be written there")
    return Path(path)
