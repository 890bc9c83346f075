"""Memory per case for ``dpo-score batch``: a worker's peak measured while a case runs, the need of a
case estimated from its volume size, and ``--memory-per-case`` parsed.

The estimate is a straight line fitted to the peak resident memory of ``dpo-score run`` (weight-free
lobes) on the three real CTs of ../shared/data, each in a fresh process (Python, numpy, SciPy and
SimpleITK loaded: 205 MB before the case):

    512 x 512 x 30  (7.9 M voxels)   peak 377 MB
    512 x 512 x 64  (16.8 M voxels)  peak 501 MB
    512 x 512 x 141 (37.0 M voxels)  peak 729 MB

i.e. 282 MB + 12.1 bytes per voxel for the whole process. The estimate adds 25 % to the slope and
the intercept (a margin for other CTs' anatomy; a worker that runs out of memory is killed, the
case is retried once and then recorded as failed). lungmask's need was not measured here (no
weights on this machine): every case's measured peak is written to ``batch.log``, from which
``--memory-per-case`` can be set.
"""

from __future__ import annotations

import os
import re
import threading

from ..common.errors import DPOInputError

FIT_BASE_BYTES = 282e6  # intercept of the fit above (process with libraries loaded)
FIT_BYTES_PER_VOXEL = 12.1  # slope of the fit above
MARGIN = 1.25
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def parse_size(text: str) -> float | None:
    """``auto`` -> None, else bytes from '6GB', '800 MiB', '2e9'; a DPOInputError naming the option."""
    if text.strip().lower() == "auto":
        return None
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise DPOInputError("--memory-per-case", f"{text!r} is not a size such as 6GB, 800MB or auto")
    try:
        value = float(match.group(1)) * _UNITS[unit]
    except ValueError:
        raise DPOInputError("--memory-per-case", f"{text!r} is not a size such as 6GB, 800MB or auto") from None
    if not 50e6 <= value < 1e15:
        raise DPOInputError("--memory-per-case", f"{text!r} is not between 50 MB and 1 PB")
    return value


def estimated_need(voxels: int) -> float:
    """Bytes a worker needs for one case of this many voxels (weight-free path; see the module text)."""
    return MARGIN * (FIT_BASE_BYTES + FIT_BYTES_PER_VOXEL * voxels)


def volume_voxels(path: str) -> int | None:
    """Voxel count from the file header (no voxel data read); None for DICOM folders or unreadable files
    (the case itself then reports what is wrong)."""
    import SimpleITK as sitk

    if os.path.isdir(path):
        try:
            names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(path)
            if not names:
                return None
            reader = sitk.ImageFileReader()
            reader.SetFileName(names[0])
            reader.ReadImageInformation()
            size = reader.GetSize()
            return int(size[0] * size[1] * len(names))
        except RuntimeError:
            return None
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    voxels = 1
    for extent in reader.GetSize():
        voxels *= int(extent)
    return voxels


class PeakMemory:
    """This process's resident memory before a case (``start``) and its peak during it (``peak``), in
    bytes (a context manager). On Linux the kernel's own high-water mark is reset before the case and
    read after it (exact, no thread); elsewhere the memory is sampled every 100 ms by a thread."""

    def __init__(self, interval: float = 0.1):
        import psutil  # a dependency of dask.distributed

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self._thread = None
        self.start = self.peak = self._process.memory_info().rss

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        try:
            with open("/proc/self/clear_refs", "w") as stream:
                stream.write("5")  # resets VmHWM, the peak resident set size (Linux >= 4.0)
        except OSError:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        else:
            self.peak = max(self.peak, _kernel_peak() or 0)
        self.peak = max(self.peak, self._process.memory_info().rss)


def _kernel_peak() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
