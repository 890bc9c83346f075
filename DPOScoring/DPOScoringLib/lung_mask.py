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
from .voxel_boxes import bounding_box

AIR_HU = -400
OUTSIDE_AIR_MEAN_HU = -970
MIN_LUNG_FRACTION = 0.15
AIRWAY_MARGIN_MM = 1.5
MAX_HOLE_MM2 = 2000.0
DOME_HOLE_MM2 = 150.0
COARSE_ABOVE_VOXELS = 16_000_000  # larger volumes are separated into lungs on a 2x coarser grid
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


def _separate_lungs(hu: np.ndarray, spacing, origin_x_mm: float | None, progress: Progress):
    """Steps 1-3 on a (possibly coarse) grid: (labels, airway mask, airway zone, warnings, carina)."""
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
        box = bounding_box(airway.mask, margin)
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
    return result, airway.mask, airway_zone, warnings, airway.carina_slice


def _upsample(coarse: np.ndarray, factor, shape) -> np.ndarray:
    up = coarse
    for axis, f in enumerate(factor):
        if f > 1:
            up = np.repeat(up, f, axis=axis)
    return up[:shape[0], :shape[1], :shape[2]]


def segment_lungs(hu: np.ndarray, spacing, origin_x_mm: float | None = None,
                  progress: Progress | None = None) -> LungMask:
    """Lung masks for an LPS-oriented (k, j, i) HU array (column index grows toward patient
    left; ``load_ct`` guarantees it). ``spacing`` is (x, y, z) mm; ``origin_x_mm`` the LPS x of
    column 0, used to tell right from left when only one lung is in the field of view.

    Large volumes are separated into lungs on a grid coarsened by 2 (fast, small); the lung
    boundary is then taken at full resolution from the air threshold, within one coarse voxel
    of the coarse lungs, and holes are filled at full resolution."""
    progress = ensure_progress(progress)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    factor = tuple(2 if hu.size > COARSE_ABOVE_VOXELS and n >= 64 else 1 for n in hu.shape)
    coarse_hu = np.ascontiguousarray(hu[::factor[0], ::factor[1], ::factor[2]])
    coarse_spacing = (spacing[0] * factor[2], spacing[1] * factor[1], spacing[2] * factor[0])
    labels, airways, airway_zone, warnings, carina = _separate_lungs(coarse_hu, coarse_spacing, origin_x_mm,
                                                                     progress.sub(0.0, 0.7))
    del coarse_hu
    if not labels.any():
        raise ValueError("no lungs found")
    progress.step(0.72, "lung boundary at full resolution")
    coarse_box = bounding_box(labels > 0, 1)
    box = tuple(slice(b.start * f, min(b.stop * f, n)) for b, f, n in zip(coarse_box, factor, hu.shape))
    shape = tuple(b.stop - b.start for b in box)
    result = np.zeros(hu.shape, dtype=np.uint8)
    zone = np.zeros(hu.shape, dtype=bool)
    if factor != (1, 1, 1):
        local = labels[coarse_box]
        near = np.where(local > 0, local, ndimage.maximum_filter(local, size=3))
        result[box] = np.where(hu[box] < AIR_HU, _upsample(near, factor, shape), np.uint8(0))
        del near
        airways = _upsample_into(airways, factor, hu.shape, hu)
        zone = _upsample_into(airway_zone, factor, hu.shape)
        carina = None if carina is None else carina * factor[0]
    else:
        result[box] = labels[box]
        zone = airway_zone
    result[box][zone[box]] = 0
    progress.step(0.8, "filling holes")
    max_hole = int(MAX_HOLE_MM2 / (spacing[0] * spacing[1]))
    big_hole = int(DOME_HOLE_MM2 / (spacing[0] * spacing[1]))
    inner = result[box]
    for label in (RIGHT_LABEL, LEFT_LABEL):
        lung = inner == label
        if not lung.any():
            continue
        lung_box = bounding_box(lung)
        filled = _fill_holes_per_slice(lung[lung_box], max_hole, big_hole)
        inner[lung_box][filled & (inner[lung_box] == 0) & ~zone[box][lung_box]] = label
    counts = np.bincount(inner.ravel(), minlength=3)
    volumes = {"right": round(float(counts[RIGHT_LABEL]) * voxel_ml, 1),
               "left": round(float(counts[LEFT_LABEL]) * voxel_ml, 1)}
    progress.step(1.0, "lungs ready")
    return LungMask(result, airways, volumes, warnings, carina)


def _upsample_into(mask: np.ndarray, factor, shape, air_of: np.ndarray | None = None) -> np.ndarray:
    """Full-resolution copy of a sparse coarse mask, upsampled only inside its bounding box;
    with ``air_of`` (the HU array), kept only where the full-resolution voxel is air."""
    full = np.zeros(shape, dtype=bool)
    if not mask.any():
        return full
    coarse_box = bounding_box(mask)
    box = tuple(slice(b.start * f, min(b.stop * f, n)) for b, f, n in zip(coarse_box, factor, shape))
    full[box] = _upsample(mask[coarse_box], factor, tuple(b.stop - b.start for b in box))
    if air_of is not None:
        full[box] &= air_of[box] < AIR_HU
    return full


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
