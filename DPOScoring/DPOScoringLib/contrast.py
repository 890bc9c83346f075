"""Is this a contrast-enhanced study? Judged from the blood pool between the lungs.

In the anterior two thirds of the mediastinum (between the two lungs, on the slices from 15 % to
60 % of the lungs' height) the heart and great vessels are about 40 HU without contrast and
150-400 HU with it.
The study counts as enhanced when at least ``ENHANCED_FRACTION`` of the soft-tissue voxels there
(-50 to 600 HU) lie between 130 and 600 HU. Bone (> 600 HU) is left out; the spine lies in the
posterior third, which is not looked at.
"""

from __future__ import annotations

import numpy as np

ENHANCED_HU = (130.0, 600.0)
SOFT_TISSUE_HU = (-50.0, 600.0)
ENHANCED_FRACTION = 0.25
CONTRAST_WARNING = ("contrast-enhanced study detected (blood pool {fraction:.0%} above 130 HU): "
                    "contrast-filled vessels are suppressed; POs lying on enhanced vessels may be missed")


def enhanced_fraction(hu: np.ndarray, lung_labels: np.ndarray) -> float | None:
    """Fraction of mediastinal soft tissue that is enhanced; None when the mediastinum is not in view."""
    slices = np.nonzero((lung_labels == 1).any(axis=(1, 2)) & (lung_labels == 2).any(axis=(1, 2)))[0]
    if len(slices) < 3:
        return None
    middle = slices[int(len(slices) * 0.15): int(len(slices) * 0.6) + 1]
    soft = enhanced = 0
    for k in middle[:: max(len(middle) // 12, 1)]:
        right_cols = np.nonzero((lung_labels[k] == 1).any(axis=0))[0]
        left_cols = np.nonzero((lung_labels[k] == 2).any(axis=0))[0]
        rows = np.nonzero((lung_labels[k] > 0).any(axis=1))[0]
        if right_cols.max() + 2 >= left_cols.min():
            continue
        anterior_end = rows[0] + 2 * (rows[-1] - rows[0]) // 3
        region = hu[k, rows[0]:anterior_end, right_cols.max() + 1:left_cols.min()]
        region = region[lung_labels[k, rows[0]:anterior_end, right_cols.max() + 1:left_cols.min()] == 0]
        tissue = region[(region >= SOFT_TISSUE_HU[0]) & (region <= SOFT_TISSUE_HU[1])]
        soft += tissue.size
        enhanced += int(((tissue >= ENHANCED_HU[0]) & (tissue <= ENHANCED_HU[1])).sum())
    return enhanced / soft if soft else None


def contrast_warning(fraction: float | None) -> str | None:
    if fraction is not None and fraction >= ENHANCED_FRACTION:
        return CONTRAST_WARNING.format(fraction=fraction)
    return None
