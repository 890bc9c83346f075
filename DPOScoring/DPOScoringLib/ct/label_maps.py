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


def read_image_file(path: str | Path, where: str) -> sitk.Image:
    """The image in a file, or a ``DPOInputError`` for ``where`` (the option and path) saying why not."""
    if not Path(path).is_file():
        raise DPOInputError(where, "no such file")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError:
        raise DPOInputError(where, "is not an image this tool can read") from None


def read_label_image(path: str | Path, option: str) -> sitk.Image:
    return read_image_file(path, f"{option} {path}")


def check_grid(image: sitk.Image, ct: CTVolume, where: str) -> None:
    """A label map must lie on the CT's own grid (size, spacing, origin, direction): never resampled."""
    geometry = Geometry.of(image)
    if not geometry.matches(ct.original):
        raise DPOInputError(where, f"grid {geometry.describe()} does not match the CT's {ct.original.describe()}")


def label_array_for(ct: CTVolume, image: sitk.Image, where: str, allowed: frozenset[int]) -> np.ndarray:
    """The label map as a uint8 (k, j, i) array in the CT's oriented grid."""
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetDimension() != 3:
        raise DPOInputError(where, "must be a 3-D scalar label map")
    check_grid(image, ct, where)
    values = sitk.GetArrayViewFromImage(image)
    if values.dtype.kind == "f" and not np.all(np.equal(np.mod(values, 1), 0)):
        raise DPOInputError(where, "holds non-integer values; a label map is needed")
    present = set(np.unique(values).astype(int).tolist())
    unexpected = sorted(present - allowed)
    if unexpected:
        raise DPOInputError(where, f"holds label values {unexpected[:8]} outside "
                            f"{min(allowed)}-{max(allowed)}")
    return sitk.GetArrayFromImage(orient_lps(sitk.Cast(image, sitk.sitkUInt8)))


def load_label_map(path: str | Path, ct: CTVolume, option: str, allowed: frozenset[int]) -> np.ndarray:
    return label_array_for(ct, read_label_image(path, option), f"{option} {path}", allowed)
