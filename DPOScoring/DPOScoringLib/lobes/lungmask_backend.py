"""lungmask (LTRCLobes fused with R231) as a lobe backend, with the lingula split out.

Weights are looked for on disk first: a folder given by the caller (the Slicer setting or
``--weights``), the ``DPO_LUNGMASK_WEIGHTS`` environment variable, or torch's hub cache
(``$TORCH_HOME/hub/checkpoints``, where lungmask itself keeps them). When they are absent and the
user agreed to a download (``download=True``: ``--download-weights`` on the command line, the
consent dialog in Slicer, or ``DPO_LUNGMASK_DOWNLOAD=1``), they are fetched once into torch's hub
cache, as lungmask and SlicerTotalSegmentator do, with the SHA-256 prefix in the file name checked
(torch.hub's own convention). Without consent, or when the download fails (no network, a proxy),
the error names the files, the folders searched and where to get them; without consent it comes
before torch is even imported. The device lungmask really used (it falls back to the CPU without
CUDA) is what the provenance records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..common.errors import DPOInputError
from ..common.progress import Progress, ensure_progress
from ..ct.voxel_boxes import bounding_box
from .lingula_split import split_lingula
from .lobe_files import LUNGMASK_LTRC, to_spec_labels

LUNGMASK_VERSION = "0.2.22"
WEIGHT_FILES = {
    "LTRCLobes": ("unet_ltrclobes-3a07043d.pth",
                  "https://github.com/JoHof/lungmask/releases/download/v0.0/unet_ltrclobes-3a07043d.pth"),
    "R231": ("unet_r231-d5d2fc3d.pth",
             "https://github.com/JoHof/lungmask/releases/download/v0.0/unet_r231-d5d2fc3d.pth"),
}
WEIGHTS_ENV = "DPO_LUNGMASK_WEIGHTS"
DOWNLOAD_ENV = "DPO_LUNGMASK_DOWNLOAD"
DENSE_HU = 100.0
DENSE_MAX_MM3 = 3000.0


@dataclass
class LungmaskResult:
    lobes: np.ndarray  # spec labels 1-6, same grid as the input image
    raw: np.ndarray  # lungmask's own labels (1 LUL with lingula, 2 LLL, 3 RUL, 4 RML, 5 RLL)
    lingular_points: np.ndarray
    provenance: dict = field(default_factory=dict)


def weight_folders(weights_dir: str | Path | None = None) -> list[Path]:
    folders = []
    if weights_dir:
        folders.append(Path(weights_dir))
    if os.environ.get(WEIGHTS_ENV):
        folders.append(Path(os.environ[WEIGHTS_ENV]))
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    folders.append(torch_home / "hub" / "checkpoints")
    return folders


def download_consented(download: bool | None) -> bool:
    """An explicit ``download`` wins; otherwise the ``DPO_LUNGMASK_DOWNLOAD`` environment variable."""
    if download is not None:
        return bool(download)
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in {"1", "yes", "true", "on"}


def hub_folder() -> Path:
    """torch's hub checkpoint folder (what ``torch.hub.get_dir()`` returns, without importing torch)."""
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    return torch_home / "hub" / "checkpoints"


def download_weights(models, progress: Progress | None = None) -> dict[str, Path]:
    """Fetch the weight files of ``models`` into torch's hub cache (a file is written under a
    temporary name and renamed only once complete and its SHA-256 prefix matches)."""
    import re

    from torch.hub import download_url_to_file

    progress = ensure_progress(progress)
    folder = hub_folder()
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for n, model in enumerate(models):
        filename, url = WEIGHT_FILES[model]
        progress.step(n / max(len(models), 1), f"downloading lungmask weights {filename}")
        match = re.search(r"-([0-9a-f]{6,})\.", filename)
        target = folder / filename
        partial = folder / f".{filename}.part"
        try:
            download_url_to_file(url, str(partial), hash_prefix=match.group(1) if match else None, progress=False)
        except RuntimeError as error:  # torch's hash mismatch
            partial.unlink(missing_ok=True)
            raise DPOInputError("lungmask weights", f"{url}: the download is not the expected file ({error})") from None
        except OSError as error:  # no network, proxy, HTTP error, missing file
            partial.unlink(missing_ok=True)
            raise DPOInputError("lungmask weights", f"could not download {url} ({error}); download it on a machine "
                                f"with internet access and put it in {folder} (or pass --weights DIR)") from None
        partial.replace(target)
        paths[model] = target
    return paths


def find_weights(weights_dir: str | Path | None = None, download: bool | None = False,
                 progress: Progress | None = None) -> dict[str, Path]:
    """Paths of both weight files (downloaded first when missing and ``download`` consents), or a
    ``DPOInputError`` saying what to put where."""
    folders = weight_folders(weights_dir)
    found, missing = {}, []
    for model, (filename, _) in WEIGHT_FILES.items():
        hit = next((folder / filename for folder in folders if (folder / filename).is_file()), None)
        if hit is None:
            missing.append(model)
        else:
            found[model] = hit
    if missing and download_consented(download):
        found.update(download_weights(missing, progress))
        missing = []
    if missing:
        files = ", ".join(WEIGHT_FILES[m][0] for m in missing)
        urls = " and ".join(WEIGHT_FILES[m][1] for m in missing)
        raise DPOInputError("lungmask weights", f"not found: {files}; looked in {', '.join(map(str, folders))}. "
                            f"Allow the download (--download-weights, or {DOWNLOAD_ENV}=1), or download {urls} "
                            "on a machine with internet access and put the files in one of these folders "
                            f"(or pass --weights DIR, or set {WEIGHTS_ENV})")
    return found


def include_dense_findings(lobes: np.ndarray, hu: np.ndarray, spacing) -> tuple[np.ndarray, int]:
    """lungmask leaves very dense voxels out of its lobes. Small dense structures (>= 100 HU,
    < 3,000 mm^3) touching a lobe are given the lobe they touch most; returns the count."""
    if not lobes.any():
        return lobes, 0
    box = bounding_box(lobes > 0, 3)
    local_lobes = lobes[box]
    dense = (hu[box] >= DENSE_HU) & (local_lobes == 0)
    components = cc3d.connected_components(dense, connectivity=26)
    voxel = float(np.prod(spacing))
    counts = np.bincount(components.ravel())
    result = lobes.copy()
    added = 0
    for label, bbox in enumerate(ndimage.find_objects(components), start=1):
        if bbox is None or counts[label] * voxel > DENSE_MAX_MM3:
            continue
        grown = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in bbox)
        part = components[grown] == label
        ring = ndimage.binary_dilation(part) & ~part
        touching = local_lobes[grown][ring]
        touching = touching[touching > 0]
        if touching.size:
            result[box][grown][part] = np.bincount(touching).argmax()
            added += 1
    return result, added


def run_lungmask(image: sitk.Image, weights_dir: str | Path | None = None, device: str = "auto",
                 lingular_points: np.ndarray | None = None, progress: Progress | None = None,
                 download: bool | None = None) -> LungmaskResult:
    """Six lobes for an LPS-oriented CT image (``ct_image.load_ct(...).image``)."""
    progress = ensure_progress(progress)
    if not download_consented(download):
        weights = find_weights(weights_dir, download=False)  # fails fast, before torch is imported
    try:
        import torch
        from lungmask import LMInferer
    except ImportError as error:
        raise DPOInputError("lungmask", f"is not installed ({error.name}); install it with pip install "
                            "'dpo-scoring[lungmask]' (in Slicer: the module offers to install it)") from None
    if download_consented(download):
        weights = find_weights(weights_dir, download=True, progress=progress.sub(0.0, 0.05))
    progress.step(0.05, "loading lungmask models")
    force_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    inferer = LMInferer(modelname="LTRCLobes", modelpath=str(weights["LTRCLobes"]), fillmodel="R231",
                        fillmodel_path=str(weights["R231"]), force_cpu=force_cpu, tqdm_disable=True)
    used = getattr(getattr(inferer, "device", None), "type", "cpu")
    warnings = []
    if device == "gpu" and used == "cpu":
        warnings.append("lungmask ran on the CPU: no GPU (CUDA) is available to torch")
    progress.step(0.1, f"running lungmask (LTRCLobes fused with R231) on the {used.upper()}")
    raw = np.asarray(inferer.apply(image), dtype=np.uint8)
    progress.step(0.8, "mapping labels and splitting the lingula")
    raw = np.where(np.isin(raw, list(LUNGMASK_LTRC)), raw, 0).astype(np.uint8)
    lobes, _ = to_spec_labels(raw, {v: LUNGMASK_LTRC[v] for v in LUNGMASK_LTRC})
    from ..ct.ct_image import Geometry

    lobes, points = split_lingula(lobes, Geometry.of(image), lingular_points, sitk.GetArrayViewFromImage(image))
    lobes, dense = include_dense_findings(lobes, sitk.GetArrayViewFromImage(image), image.GetSpacing()[::-1])
    progress.step(1.0, "lobes ready")
    return LungmaskResult(lobes, raw, points, {
        "method": "lungmask", "lungmask_version": LUNGMASK_VERSION, "models": ["LTRCLobes", "R231"],
        "weights": {m: str(p) for m, p in weights.items()}, "device": used, "device_requested": device,
        "dense_structures_added": dense, "warnings": warnings})
