"""Label maps given by the user (``--lobes``, ``--lungs``): read, checked against the CT, oriented.

Lobe label maps use the spec's values 1-6 (0 background). Lung label maps use 1 = right lung,
2 = left lung (lungmask R231's convention). The grid must be the CT's: same size, spacing, origin
and direction; a mismatch is an error naming both grids, never a silent resampling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..common.errors import DPOInputError
from .ct_image import CTVolume, Geometry, orient_lps

LOBE_VALUES = frozenset(range(0, 7))
LUNG_VALUES = frozenset(range(0, 3))


def read_label_image(path: str | Path, option: str) -> sitk.Image:
    path = Path(path)
    if not path.is_file():
        raise DPOInputError(f"{option} {path}", "no such file")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError:
        raise DPOInputError(f"{option} {path}", "is not an image this tool can read") from None


def label_array_for(ct: CTVolume, image: sitk.Image, where: str, allowed: frozenset[int]) -> np.ndarray:
    """The label map as a uint8 (k, j, i) array in the CT's oriented grid."""
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetDimension() != 3:
        raise DPOInputError(where, "must be a 3-D scalar label map")
    geometry = Geometry.of(image)
    if not geometry.matches(ct.original):
        raise DPOInputError(where, f"grid {geometry.describe()} does not match the CT's "
                            f"{ct.original.describe()}")
    values = sitk.GetArrayViewFromImage(image)
    if values.dtype.kind == "f" and not np.all(np.equal(np.mod(values, 1), 0)):
        raise DPOInputError(where, "holds non-integer values; a label map is needed")
    present = set(np.unique(values).astype(int).tolist())
    unexpected = sorted(present - allowed)
    if unexpected:
        raise DPOInputError(where, f"holds label values {unexpected[:8]} outside "
                            f"{min(allowed)}-{max(allowed)}")
    oriented = orient_lps(sitk.Cast(image, sitk.sitkUInt8))
    oriented.CopyInformation(ct.image) if Geometry.of(oriented).matches(ct.geometry) else None
    return sitk.GetArrayFromImage(oriented)


def load_label_map(path: str | Path, ct: CTVolume, option: str, allowed: frozenset[int]) -> np.ndarray:
    return label_array_for(ct, read_label_image(path, option), f"{option} {path}", allowed)
