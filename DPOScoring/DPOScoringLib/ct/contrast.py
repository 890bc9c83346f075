"""Is this a contrast-enhanced study? Judged from the blood pool between the lungs and from the
vessels inside the lungs, and how bright is its enhanced blood.

In the anterior two thirds of the mediastinum (between the two lungs, on the slices from 15 % to
60 % of the lungs' height) the heart and great vessels are about 40 HU without contrast and
150-400 HU with it.
The study counts as enhanced when at least ``ENHANCED_FRACTION`` of the soft-tissue voxels there
(-50 to 600 HU) lie between 130 and 600 HU. Bone (> 600 HU) is left out; the spine lies in the
posterior third, which is not looked at.

The mediastinum alone misses studies whose heart is not yet (or no longer) opacified while the
pulmonary arteries are: so the vessels inside the lungs (above 0 HU, 15 mm or more inside the lung
mask, where few POs lie) are judged too. Without contrast they stay below about 60 HU (real thorax CT in
../shared/data: none of them above 150 HU; a sharp B70f kernel: 10 %); on the real contrast CT
36 % of them lie above 150 HU. The study counts as enhanced when ``VESSEL_ENHANCED_SHARE`` (25 %)
or more do. ``brightest_blood_level`` gives the brightest blood (95th percentile of those vessel
voxels): a calcification must be brighter than that to be told from blood, in an enhanced study
and with a sharp kernel alike.
"""

from __future__ import annotations

import cc3d
import edt
import numpy as np

from .voxel_boxes import bounding_box, edt_threads, upsample_blocks

ENHANCED_HU = (130.0, 600.0)
SOFT_TISSUE_HU = (-50.0, 600.0)
ENHANCED_FRACTION = 0.25
VESSEL_HU = 0.0
VESSEL_ENHANCED_HU = 150.0
VESSEL_ENHANCED_SHARE = 0.25
VESSEL_DEPTH_MM = 15.0
CALCIUM_FLOOR_HU = 1000.0
VESSEL_TREE_MM3 = 3000.0  # as large as the largest calcified nodule a candidate may be (candidates.py)
VESSEL_TREE_HU = -300.0  # vessels are connected into trees at this level (partial volume of thin ones)
CONTRAST_WARNING = ("contrast-enhanced study detected (blood pool {fraction:.0%} above 130 HU): "
                    "contrast-filled vessels are suppressed; POs lying on enhanced vessels may be missed")
VESSEL_CONTRAST_WARNING = ("contrast-enhanced study detected (lung vessels {share:.0%} above 150 HU): "
                           "contrast-filled vessels are suppressed; POs no brighter than enhanced blood "
                           "cannot be told from vessels and are not shown")


def enhanced_fraction(hu: np.ndarray, lung_labels: np.ndarray) -> float | None:
    """Fraction of mediastinal soft tissue that is enhanced; None when the mediastinum is not in view."""
    slices = np.nonzero((lung_labels == 1).any(axis=(1, 2)) & (lung_labels == 2).any(axis=(1, 2)))[0]
    if len(slices) < 3:
        return None
    middle = slices[int(len(slices) * 0.15): int(len(slices) * 0.6) + 1]
    soft = enhanced = 0
    for k in middle[:: max(len(middle) // 12, 1)]:
        right = lung_labels[k] == 1
        left = lung_labels[k] == 2
        rows = np.nonzero((right | left).any(axis=1))[0]
        anterior = slice(rows[0], rows[0] + 2 * (rows[-1] - rows[0]) // 3)
        columns = np.arange(lung_labels.shape[2])
        # per row, the space between the right lung's medial edge and the left lung's
        right_edge = np.where(right[anterior].any(axis=1), np.max(np.where(right[anterior], columns, -1), axis=1), -1)
        left_edge = np.where(left[anterior].any(axis=1),
                             np.min(np.where(left[anterior], columns, columns.size), axis=1), -1)
        between = (columns[None, :] > right_edge[:, None]) & (columns[None, :] < left_edge[:, None])
        between &= (right_edge >= 0)[:, None] & (left_edge >= 0)[:, None]
        region = hu[k, anterior][between & (lung_labels[k, anterior] == 0)]
        tissue = region[(region >= SOFT_TISSUE_HU[0]) & (region <= SOFT_TISSUE_HU[1])]
        soft += tissue.size
        enhanced += int(((tissue >= ENHANCED_HU[0]) & (tissue <= ENHANCED_HU[1])).sum())
    return enhanced / soft if soft else None


def lung_vessel_values(hu: np.ndarray, lung_labels: np.ndarray, spacing_kji) -> np.ndarray:
    """HU of the vessel voxels: >= 0 HU, in the medullary lung (at least ``VESSEL_DEPTH_MM`` from
    its surface: 96 % of POs lie in the pleural and cortical zones, and fibrosis is subpleural), in
    a structure connected above -300 HU of at least ``VESSEL_TREE_MM3`` (a vessel tree, not a PO)."""
    voxel_mm3 = float(np.prod(spacing_kji))
    lungs = lung_labels > 0
    if not lungs.any():
        return np.zeros(0, dtype=hu.dtype)
    box = bounding_box(lungs)
    # the depth inside the lung from every other voxel in each direction (ample at 15 mm), the
    # vessel trees at full resolution (thin vessels would break apart on a coarser grid)
    steps = [2 if float(v) < 2.5 else 1 for v in spacing_kji]  # thick slices are taken whole
    coarse = lungs[tuple(slice(b.start, b.stop, n) for b, n in zip(box, steps))]
    depth = edt.edt(coarse, anisotropy=tuple(n * float(v) for n, v in zip(steps, spacing_kji)), black_border=True,
                    parallel=edt_threads())
    local = hu[box]
    inner = upsample_blocks(depth > VESSEL_DEPTH_MM, steps, local.shape)
    del depth
    trees = cc3d.connected_components(inner & (local >= VESSEL_TREE_HU), connectivity=26)
    labelled = trees[trees > 0]  # the trees are a small part of the box: only their voxels are counted
    sizes = np.bincount(labelled, minlength=int(labelled.max()) + 1 if labelled.size else 1)
    sizes[0] = 0
    vessel = sizes * voxel_mm3 >= VESSEL_TREE_MM3  # vessels are trees; POs and nodules are small separate blobs
    return local[vessel[trees] & (local >= VESSEL_HU)]


def vessel_enhanced_share(values: np.ndarray) -> float | None:
    """Share of the intrapulmonary vessel voxels (``lung_vessel_values``) above 150 HU; None when
    there are too few."""
    return float((values >= VESSEL_ENHANCED_HU).mean()) if values.size >= 200 else None


def brightest_blood_level(values: np.ndarray) -> float | None:
    """The brightest blood in the lungs' vessels (``lung_vessel_values``): the 95th percentile of
    the vessel voxels from 0 to 1,000 HU, or None. The 95th, not the maximum or the 99th, so that
    POs and calcified nodules on the vessel trees (a few per cent of those voxels) do not raise it.
    Measured on the real CTs in ../shared/data: 45 HU (soft kernel), 172 HU (sharp B70f kernel,
    whose overshoot at vessel edges and crossings reaches 300-400 HU), 383 HU (contrast CT)."""
    values = values[values < CALCIUM_FLOOR_HU]
    return float(np.percentile(values, 95)) if values.size >= 200 else None


def contrast_warning(fraction: float | None, vessel_share: float | None = None) -> str | None:
    if fraction is not None and fraction >= ENHANCED_FRACTION:
        return CONTRAST_WARNING.format(fraction=fraction)
    if vessel_share is not None and vessel_share >= VESSEL_ENHANCED_SHARE:
        return VESSEL_CONTRAST_WARNING.format(share=vessel_share)
    return None
