"""Six lobes for a CT by one of three methods: ``fissures`` (no weights; points movable),
``lungmask`` (LTRCLobes + R231, lingula split), ``import`` (lungmask, TotalSegmentator, Slicer
or DPOScoring files). Output: spec label values 1-6 on the CT's LPS-oriented grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..common.anatomy import lobe_volumes_ml
from ..common.errors import DPOInputError
from ..common.progress import Progress, ensure_progress
from ..common.safe_files import atomic_target
from ..ct.ct_image import CTVolume, orient_lps
from ..ct.label_maps import check_grid
from ..ct.lung_mask import segment_lungs
from .fissures import assign_lobes, load_points
from .lingula_split import split_lingula
from .lobe_files import PROVENANCE_SCHEMA, read_lobe_source, to_spec_labels, write_label_map, write_segmentation

METHODS = ("fissures", "lungmask", "import")


@dataclass
class LobeResult:
    lobes: np.ndarray
    method: str
    points: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    def fissure_confidence(self) -> dict[str, float]:
        """Per fissure code, the share of its surface supported by image evidence (fissure method)."""
        return {name: item["confidence"] for name, item in self.provenance.get("fissures", {}).items()}

    def volumes_ml(self, spacing) -> dict[str, float]:
        return lobe_volumes_ml(self.lobes, spacing)

    def provenance_document(self, warnings=()) -> dict:
        """How the lobes were made, as ``lobes --provenance-out`` writes it (per fissure its
        supported share and whether the template was kept are in ``provenance["fissures"]``)."""
        return {"schema": PROVENANCE_SCHEMA, "method": self.method, "provenance": self.provenance,
                "warnings": list(warnings) or list(self.warnings)}


def _imported(ct: CTVolume, source: str | Path, numbering: str) -> LobeResult:
    image, mapping, description = read_lobe_source(source, numbering)
    check_grid(image, ct, str(source))
    oriented = orient_lps(image)
    lobes, needs_split = to_spec_labels(sitk.GetArrayFromImage(oriented), mapping)
    points = {}
    warnings = []
    if needs_split:
        lobes, lingular = split_lingula(lobes, ct.geometry, hu=ct.array)
        points["LG"] = lingular
        warnings.append("the source has no lingula: the left upper lobe was split at the default "
                        "lingular boundary (adjust its points if needed)")
    missing = [code for code, volume in lobe_volumes_ml(lobes, ct.spacing).items() if volume == 0]
    if missing:
        warnings.append(f"no voxels for lobe(s) {', '.join(missing)}")
    return LobeResult(lobes, "import", points, warnings,
                      {"method": "import", "source": str(source), "format": description,
                       "mapping": {str(k): v for k, v in mapping.items()}})


def compute_lobes(ct: CTVolume, method: str = "fissures", source: str | Path | None = None,
                  weights_dir: str | Path | None = None, points_path: str | Path | None = None,
                  device: str = "auto", numbering: str = "auto", lungs: np.ndarray | None = None,
                  progress: Progress | None = None, download: bool | None = None,
                  carina_slice: int | None = None) -> LobeResult:
    progress = ensure_progress(progress)
    if method not in METHODS:
        raise DPOInputError("--method", f"{method!r} is not one of {', '.join(METHODS)}")
    if method == "import":
        if source is None:
            raise DPOInputError("--from", "is required with --method import")
        return _imported(ct, source, numbering)
    if method == "lungmask":
        from .lungmask_backend import run_lungmask

        given = load_points(points_path)["LG"] if points_path else None
        result = run_lungmask(ct.image, weights_dir, device, given, progress, download=download)
        return LobeResult(result.lobes, "lungmask", {"LG": result.lingular_points},
                          list(result.provenance.get("warnings", [])), result.provenance)
    warnings = []
    if lungs is None:
        mask = segment_lungs(ct.array, ct.spacing, ct.image.GetOrigin()[0], progress.sub(0.0, 0.3))
        lungs, warnings, carina_slice = mask.labels, list(mask.warnings), mask.carina_slice
    elif lungs.shape != ct.array.shape:
        raise DPOInputError("--lungs", f"grid {lungs.shape[::-1]} does not match the CT's {ct.array.shape[::-1]}")
    if points_path:
        points = load_points(points_path)
        provenance = {"method": "fissures", "points": f"given ({Path(points_path).name})"}
    else:
        from .fissure_fit import fissures_from_image

        points, provenance, more = fissures_from_image(ct.array, lungs, ct.geometry, carina_slice,
                                                       progress.sub(0.3, 0.9))
        warnings += more
    lobes = assign_lobes(lungs, ct.geometry, points, progress.sub(0.9, 1.0))
    return LobeResult(lobes, "fissures", points, warnings, provenance)


def write_lobes(path: str | Path, lobes: np.ndarray, ct: CTVolume, overwrite: bool = False) -> Path:
    """A label map (values 1-6), or a Slicer segmentation when the name ends in ``.seg.nrrd``."""
    path = Path(path)
    writer = write_segmentation if path.name.endswith(".seg.nrrd") else write_label_map
    with atomic_target(path, overwrite, keep_suffixes=True) as temporary:
        writer(temporary, lobes, ct.image)
    return path
