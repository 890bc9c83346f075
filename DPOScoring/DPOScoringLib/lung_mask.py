"""Right and left lung masks without learned weights.

1. Air (< -400 HU) components; those touching the side faces of the volume with a mean below
   -970 HU are outside air. The rest is air inside the body: lungs, airways, bowel gas.
2. Trachea and main bronchi are tracked (``airways.py``) and cut out, with a 1.5 mm margin.
3. Lungs are the large remaining components (the largest, and any other with >= 15 % of its
   volume). Two lungs fused into one component are split at the trachea's x position.
4. Holes in each axial slice of each lung (vessels, nodules, ossifications) up to 2,000 mm^2 are
   filled, except the top of the diaphragm dome (a hole of >= 150 mm^2 resting on non-lung that
   stayed open in the slice below). The right lung (label 1) is the one at lower LPS x; the left is label 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cc3d
import numpy as np
from scipy import ndimage

from .airways import track_airways
from .progress import Progress, ensure_progress

AIR_HU = -400
OUTSIDE_AIR_MEAN_HU = -970
MIN_LUNG_FRACTION = 0.15
AIRWAY_MARGIN_MM = 1.5
MAX_HOLE_MM2 = 2000.0
DOME_HOLE_MM2 = 150.0
RIGHT_LABEL, LEFT_LABEL = 1, 2


@dataclass
class LungMask:
    labels: np.ndarray  # uint8 (k, j, i): 0 background, 1 right lung, 2 left lung
    airways: np.ndarray  # bool: trachea and main bronchi (excluded from the lungs)
    volumes_ml: dict
    warnings: list = field(default_factory=list)
    carina_slice: int | None = None


def _side_touching(labels: np.ndarray) -> set[int]:
    faces = [labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]]
    return set(np.unique(np.concatenate([f.ravel() for f in faces]))) - {0}


def _fill_holes_per_slice(mask: np.ndarray, max_hole_voxels: int, big_hole_voxels: int) -> np.ndarray:
    """Fill 2-D holes (background not connected to the slice border) up to a size, slice by slice
    from the base upward. A big hole sitting on non-lung that was left open in the slice below
    is the top of the diaphragm dome, not a vessel, and stays open."""
    filled = mask.copy()
    for k in range(mask.shape[0]):
        if not mask[k].any():
            continue
        background = cc3d.connected_components(~mask[k], connectivity=4)
        border = set(np.unique(np.concatenate([background[0], background[-1], background[:, 0],
                                               background[:, -1]])))
        sizes = np.bincount(background.ravel())
        for label in range(1, len(sizes)):
            if label in border or sizes[label] > max_hole_voxels:
                continue
            hole = background == label
            on_open_below = k > 0 and (hole & ~filled[k - 1]).sum() >= 0.3 * sizes[label]
            if sizes[label] >= big_hole_voxels and on_open_below:
                continue
            filled[k] |= hole
    return filled


def _crop(mask: np.ndarray):
    coords = [np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0] for axis in range(3)]
    return tuple(slice(c[0], c[-1] + 1) for c in coords)


def segment_lungs(hu: np.ndarray, spacing, origin_x_mm: float | None = None,
                  progress: Progress | None = None) -> LungMask:
    """Lung masks for an LPS-oriented (k, j, i) HU array (column index grows toward patient
    left; ``load_ct`` guarantees it). ``spacing`` is (x, y, z) mm; ``origin_x_mm`` the LPS x of
    column 0, used to tell right from left when only one lung is in the field of view."""
    progress = ensure_progress(progress)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    warnings: list[str] = []
    progress.step(0.0, "finding air")
    air = hu < AIR_HU
    labels = cc3d.connected_components(air, connectivity=6)
    del air
    progress.step(0.3, "separating outside air")
    counts = np.bincount(labels.ravel())
    sub_labels = labels[::2, ::2, ::2].ravel()
    sums = np.bincount(sub_labels, weights=hu[::2, ::2, ::2].ravel(), minlength=len(counts))
    sub_counts = np.bincount(sub_labels, minlength=len(counts))
    means = sums / np.maximum(sub_counts, 1)
    outside = {label for label in _side_touching(labels) if means[label] < OUTSIDE_AIR_MEAN_HU}
    candidates = [label for label in np.argsort(counts)[::-1] if label != 0 and label not in outside]
    if not candidates:
        raise ValueError("no air inside the body: no lungs found")
    largest = counts[candidates[0]]
    kept = [label for label in candidates[:4] if counts[label] >= MIN_LUNG_FRACTION * largest]
    inside_air = np.isin(labels, kept)
    inside_body = ~np.isin(labels, list(outside))
    del labels
    progress.step(0.45, "tracking the trachea and main bronchi")
    airway = track_airways(hu, inside_body, spacing)
    del inside_body
    if not airway.trachea_found:
        warnings.append("trachea not found: airways are not excluded from the lung mask")
    margin = np.ceil(AIRWAY_MARGIN_MM / np.array(spacing[::-1])).astype(int)
    airway_zone = airway.mask
    if airway.mask.any():
        box = tuple(slice(max(s.start - m, 0), s.stop + m) for s, m in zip(_crop(airway.mask), margin))
        airway_zone = airway.mask.copy()
        airway_zone[box] = ndimage.binary_dilation(airway.mask[box], structure=_ellipsoid(margin))
    lungs_air = inside_air & ~airway_zone
    del inside_air
    if not airway_zone.any():
        airway_zone = np.zeros(hu.shape, dtype=bool)
    progress.step(0.6, "separating right and left lung")
    parts = cc3d.connected_components(lungs_air, connectivity=6)
    part_counts = np.bincount(parts.ravel())
    order = [label for label in np.argsort(part_counts)[::-1] if label != 0]
    big = [label for label in order[:3] if part_counts[label] >= MIN_LUNG_FRACTION * part_counts[order[0]]]
    result = np.zeros(hu.shape, dtype=np.uint8)
    midline = _midline_column(hu.shape[2], spacing[0], origin_x_mm, airway.trachea_centre_ijk)
    if len(big) >= 2:
        centres = {label: np.nonzero((parts == label).any(axis=(0, 1)))[0].mean() for label in big[:2]}
        right, left = sorted(centres, key=centres.get)
        result[parts == right] = RIGHT_LABEL
        result[parts == left] = LEFT_LABEL
    elif big:
        single = parts == big[0]
        columns = np.arange(hu.shape[2])[None, None, :]
        right_part = single & (columns < midline)
        share = right_part.sum() / single.sum()
        if airway.trachea_found and 0.2 < share < 0.8:
            warnings.append("right and left lung touch; split at the trachea's position")
            result[right_part] = RIGHT_LABEL
            result[single & ~right_part] = LEFT_LABEL
        else:
            side = RIGHT_LABEL if share >= 0.5 else LEFT_LABEL
            result[single] = side
            warnings.append(f"only one lung in the field of view (taken as the "
                            f"{'right' if side == RIGHT_LABEL else 'left'} lung from its position)")
    del parts
    progress.step(0.8, "filling holes")
    max_hole = int(MAX_HOLE_MM2 / (spacing[0] * spacing[1]))
    big_hole = int(DOME_HOLE_MM2 / (spacing[0] * spacing[1]))
    for label in (RIGHT_LABEL, LEFT_LABEL):
        lung = result == label
        if not lung.any():
            continue
        box = _crop(lung)
        filled = _fill_holes_per_slice(lung[box], max_hole, big_hole)
        result[box][filled & (result[box] == 0) & ~airway_zone[box]] = label
    volumes = {"right": round(float((result == RIGHT_LABEL).sum()) * voxel_ml, 1),
               "left": round(float((result == LEFT_LABEL).sum()) * voxel_ml, 1)}
    progress.step(1.0, "lungs ready")
    return LungMask(result, airway.mask, volumes, warnings, airway.carina_slice)


def _midline_column(n_columns: int, spacing_x: float, origin_x_mm: float | None, trachea_centre) -> float:
    """The column of the body midline: the trachea, else LPS x = 0 (the scanner's isocentre,
    where patients are centred), else the middle of the image."""
    if trachea_centre is not None:
        return trachea_centre[0]
    if origin_x_mm is not None:
        return -origin_x_mm / spacing_x
    return n_columns / 2.0


def _ellipsoid(radius_voxels) -> np.ndarray:
    rk, rj, ri = (max(int(r), 1) for r in radius_voxels)
    k, j, i = np.ogrid[-rk:rk + 1, -rj:rj + 1, -ri:ri + 1]
    return (k / rk) ** 2 + (j / rj) ** 2 + (i / ri) ** 2 <= 1.0
