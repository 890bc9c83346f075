"""Right and left lung masks without learned weights, found from the body inward.

1. The body and the air outside it by shape and connectivity (``body_mask.py``): the air that
   lies mostly outside the body's per-slice convex hull is outside air, whatever its HU (noise,
   sharp kernels, padding at -2000/-3024, the table). The rest is air inside the body.
2. Trachea and main bronchi are tracked (``airways.py``) and cut out, with a 1.5 mm margin.
3. Lungs are the large air components inside the body that look like lung (>= 50 ml, mean above
   -960 HU: parenchyma, not trapped bowel gas); with less than 250 ml of them the scan is refused
   ("no lungs in the field of view"). Two lungs fused into one component are split at the
   trachea's x position; a lung seen alone is named by the side its mediastinal surface faces.
4. Each lung takes the small air spaces within 3 mm of it (honeycomb cysts, bullae) and is closed
   with a 6 mm ball, so that what the air threshold leaves out at its surface (a PO on the pleura,
   reticulation between subpleural cysts) is inside it; the smooth chest wall and the convex
   mediastinum stay out. Dense consolidation thicker than the ball at the surface stays out.
5. Holes in each axial slice of each lung (vessels, nodules, ossifications) up to 2,000 mm^2 are
   filled, except the top of the diaphragm dome (a hole of >= 150 mm^2 resting on non-lung that
   stayed open in the slice below). The right lung (label 1) is the one at lower LPS x; the left is label 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cc3d
import edt
import numpy as np
from scipy import ndimage
from skimage.draw import ellipsoid
from skimage.morphology import convex_hull_image

from ..common.anatomy import lung_volumes_ml
from ..common.errors import DPOInputError
from ..common.progress import Progress, ensure_progress
from .airways import track_airways
from .body_mask import body_hull, outside_air_labels
from .voxel_boxes import bounding_box, edt_threads, upsample_blocks

AIR_HU = -400
MIN_LUNG_FRACTION = 0.15
MIN_COMPONENT_ML = 50.0  # a lung seen in the field of view is larger than this
MIN_LUNGS_ML = 250.0  # refuse a scan with less lung than this (no thorax in the field of view)
GAS_MEAN_HU = -960.0  # trapped gas (bowel) is darker on average than lung parenchyma
CYST_REACH_MM = 3.0  # small air spaces this close to a lung are its cysts (honeycombing, bullae)
SIDE_PULL_FRACTION = 0.1  # the concavity's mean offset from the lung's centre, as a share of its width
PLEURAL_CLOSING_MM = 6.0  # ball that rolls along the lung surface: larger than a pleural calcified nodule's radius
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


def _fill_holes_per_slice(mask: np.ndarray, max_hole_voxels: int, big_hole_voxels: int) -> np.ndarray:
    """Fill 2-D holes (background not connected to the slice border) up to a size, slice by slice
    from the base upward. A big hole sitting on non-lung that was left open in the slice below
    is the top of the diaphragm dome, not a vessel, and stays open.

    All slices are labelled in one 2-D image: the slices one under the other, a row of lung
    between each pair, so that no background region spans two slices."""
    n_k, n_r, n_c = mask.shape
    background = np.zeros((n_k, n_r + 1, n_c), dtype=bool)
    background[:, :n_r] = ~mask
    labels, n = cc3d.connected_components(background.reshape(n_k * (n_r + 1), n_c), connectivity=4, return_N=True)
    del background
    labels = labels.reshape(n_k, n_r + 1, n_c)[:, :n_r]
    not_hole = np.zeros(n + 1, dtype=bool)
    not_hole[0] = True  # the lung itself
    for edge in (labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]):
        not_hole[edge] = True  # background reaching the slice border is no hole
    # the holes are a small part of the box: they alone are counted
    enclosed = ~not_hole[labels]
    enclosed_labels = labels[enclosed]
    sizes = np.bincount(enclosed_labels, minlength=n + 1)
    fill = ~not_hole & (sizes <= max_hole_voxels)
    big = fill & (sizes >= big_hole_voxels)
    kind = fill.astype(np.uint8) + big  # 0 not a hole to fill, 1 a hole, 2 a big hole
    kinds = kind[enclosed_labels]
    filled = mask.copy()
    filled[enclosed] = kinds == 1
    # big holes in slice order: the slice below is complete (its own big holes decided) first
    at = np.unravel_index(np.flatnonzero(enclosed)[kinds == 2], mask.shape)
    del kinds, enclosed, enclosed_labels
    big_labels = labels[at]
    unique, first = np.unique(big_labels, return_index=True)
    for index in np.argsort(at[0][first], kind="stable"):
        label, k = unique[index], int(at[0][first[index]])
        hole = labels[k] == label
        if k > 0 and (hole & ~filled[k - 1]).sum() >= 0.3 * sizes[label]:
            continue
        filled[k] |= hole
    return filled


def _lung_like(labels: np.ndarray, hu: np.ndarray, label_ids, counts: np.ndarray, voxel_ml: float) -> list[int]:
    """The components that look like lung: big enough, and parenchyma (vessels and interstitium
    raise lung above pure air: -700 to -930 HU on average, severe emphysema included) rather than
    trapped gas (bowel, about -1000 HU)."""
    ids = np.asarray(label_ids, dtype=np.int64)
    if ids.size == 0:
        return []
    # the size from the exact voxel ``counts`` of the labels; the mean HU from one voxel in eight (ample)
    sample = labels[::2, ::2, ::2].ravel()
    sampled = np.bincount(sample, minlength=len(counts))
    sums = np.bincount(sample, weights=np.maximum(hu[::2, ::2, ::2], -1024).ravel(), minlength=len(counts))
    means = sums / np.maximum(sampled, 1)
    return [int(label) for label in ids if counts[label] * voxel_ml >= MIN_COMPONENT_ML
            and sampled[label] > 0 and means[label] > GAS_MEAN_HU]


def _separate_lungs(hu: np.ndarray, spacing, origin_x_mm: float | None, progress: Progress):
    """Steps 1-3 on a (possibly coarse) grid: (labels, airway mask, airway zone, warnings, carina)."""
    warnings: list[str] = []
    voxel_ml = float(np.prod(spacing)) / 1000.0
    progress.step(0.0, "finding the body")
    hull = body_hull(hu)
    progress.step(0.2, "finding air inside the body")
    labels = cc3d.connected_components(hu < AIR_HU, connectivity=6)
    counts = np.bincount(labels.ravel())
    outside = outside_air_labels(labels, hull, counts)
    order = [int(label) for label in np.argsort(counts)[::-1] if label != 0 and label not in outside]
    lung_like = _lung_like(labels, hu, order[:8], counts, voxel_ml)
    largest = counts[lung_like[0]] if lung_like else 0
    kept = [label for label in lung_like[:4] if counts[label] >= MIN_LUNG_FRACTION * largest]
    if sum(counts[label] for label in kept) * voxel_ml < MIN_LUNGS_ML:
        raise DPOInputError("", f"no lungs in the field of view: air inside the body that looks like lung "
                                f"totals {sum(counts[label] for label in kept) * voxel_ml:.0f} ml "
                                f"(at least {MIN_LUNGS_ML:.0f} ml expected in a chest CT)")
    is_kept = np.zeros(len(counts), dtype=bool)
    is_kept[kept] = True
    is_outside = np.zeros(len(counts), dtype=bool)
    is_outside[list(outside)] = True
    inside_air = is_kept[labels]
    outside_air = is_outside[labels]
    small_air = (labels > 0) & ~inside_air & ~outside_air
    inside_body = hull & ~outside_air
    del outside_air
    del labels, hull
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
        airway_zone[box] = ndimage.binary_dilation(airway.mask[box], structure=ellipsoid(*np.maximum(margin, 1)))
    lungs_air = inside_air & ~airway_zone
    del inside_air
    if not airway_zone.any():
        airway_zone = np.zeros(hu.shape, dtype=bool)
    progress.step(0.6, "separating right and left lung")
    parts, n_parts = cc3d.connected_components(lungs_air, connectivity=6, return_N=True)
    part_counts = np.bincount(parts[lungs_air], minlength=n_parts + 1)  # label 0 (not lung air) not counted
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
            right_part, how = _split_fused(single, right_part, spacing)
            warnings.append(f"right and left lung touch; split {how}")
            result[right_part] = RIGHT_LABEL
            result[single & ~right_part] = LEFT_LABEL
        else:
            side, how = side_of_single_lung(single, share)
            result[single] = side
            warnings.append(f"only one lung in the field of view (taken as the "
                            f"{'right' if side == RIGHT_LABEL else 'left'} lung from {how})")
    del parts
    progress.step(0.75, "adding honeycomb cysts and the subpleural lung")
    _extend_to_pleura(result, small_air & ~airway_zone, airway_zone, spacing)
    return result, airway.mask, airway_zone, warnings, airway.carina_slice


def _split_fused(single: np.ndarray, by_midline: np.ndarray, spacing) -> tuple[np.ndarray, str]:
    """Two lungs joined at a thin junction (anterior or posterior junction line): erode by
    distance until the component falls into two large cores, then give every voxel to the nearer
    core. Falls back to the trachea's position when no such cores appear."""
    anisotropy = tuple(float(s) for s in spacing[::-1])
    threads = _threads()
    depth = edt.edt(single, anisotropy=anisotropy, black_border=False, parallel=threads)
    for threshold in np.arange(2.0, 22.0, 2.0):
        cores = cc3d.connected_components(depth > threshold, connectivity=6)
        sizes = np.bincount(cores.ravel())
        sizes[0] = 0
        if len(sizes) < 3:
            continue
        first, second = np.argsort(sizes)[::-1][:2]
        if sizes[second] < MIN_LUNG_FRACTION * sizes[first]:
            continue
        columns = {label: np.nonzero((cores == label).any(axis=(0, 1)))[0].mean() for label in (first, second)}
        right_core = cores == min(columns, key=columns.get)
        left_core = cores == max(columns, key=columns.get)
        to_right = edt.edt(~right_core, anisotropy=anisotropy, black_border=False, parallel=threads)
        to_left = edt.edt(~left_core, anisotropy=anisotropy, black_border=False, parallel=threads)
        return single & (to_right <= to_left), "where they join"
    return by_midline, "at the trachea's position"


def _extend_to_pleura(labels: np.ndarray, small_air: np.ndarray, airway_zone: np.ndarray, spacing) -> None:
    """In place: each lung takes the small air spaces within ``CYST_REACH_MM`` of it (honeycomb
    cysts and bullae walled off from the aerated lung), then is closed with a ball of
    ``PLEURAL_CLOSING_MM``: what the air threshold leaves out at the lung's surface (a PO on the
    pleura, reticulation between subpleural cysts, a dense strip between them) is lung, while the
    smooth chest wall and the convex mediastinum stay out."""
    anisotropy = tuple(float(s) for s in spacing[::-1])
    threads = _threads()
    for label in (RIGHT_LABEL, LEFT_LABEL):
        lung = labels == label
        if not lung.any():
            continue
        margin = np.ceil((PLEURAL_CLOSING_MM + CYST_REACH_MM) / np.array(anisotropy)).astype(int) + 2
        box = bounding_box(lung, margin)
        local = lung[box]
        outside = edt.edt(~local, anisotropy=anisotropy, black_border=False, parallel=threads)
        cysts, n_cysts = cc3d.connected_components(small_air[box], connectivity=6, return_N=True)
        if n_cysts:
            joins = np.zeros(n_cysts + 1, dtype=bool)
            joins[cysts[(cysts > 0) & (outside <= CYST_REACH_MM)]] = True
            if joins.any():
                joined = joins[cysts]
                local |= joined
                # the distance to the lung with its cysts is the smaller of the distances to each; the
                # cysts' own distance transform is needed only within the closing's reach of them
                near = bounding_box(joined, np.ceil(PLEURAL_CLOSING_MM / np.array(anisotropy)).astype(int) + 1)
                to_cysts = edt.edt(~joined[near], anisotropy=anisotropy, black_border=False, parallel=threads)
                np.minimum(outside[near], to_cysts, out=outside[near])
                del joined, to_cysts
        del cysts
        grown = outside <= PLEURAL_CLOSING_MM  # beyond the cysts' reach ``outside`` is the lung's distance alone
        del outside
        closed = edt.edt(grown, anisotropy=anisotropy, black_border=False, parallel=threads) > PLEURAL_CLOSING_MM
        target = labels[box]
        target[(closed | local) & (target == 0) & ~airway_zone[box]] = label


def side_of_single_lung(lung: np.ndarray, share_right_of_midline: float) -> tuple[int, str]:
    """Right or left for a lung seen alone (a cropped field of view): by anatomy, the side its
    medial concavity (where it wraps around the heart and mediastinum) faces; toward patient left
    (+x, higher columns) means a right lung. Falls back to its side of the image midline."""
    slices = np.nonzero(lung.any(axis=(1, 2)))[0]
    pull, hollow, width = 0.0, 0, 0.0
    for k in slices[len(slices) // 5: max(4 * len(slices) // 5, 1)]:
        section = lung[k, ::2, ::2]
        if section.sum() < 20:
            continue
        cols = np.nonzero(section)[1]
        hollow_cols = np.nonzero(convex_hull_image(section) & ~section)[1]
        pull += float((hollow_cols - cols.mean()).sum())
        hollow += hollow_cols.size
        width += float(np.ptp(cols) + 1) * hollow_cols.size
    if hollow and abs(pull / hollow) >= SIDE_PULL_FRACTION * width / hollow:
        return (RIGHT_LABEL if pull > 0 else LEFT_LABEL), "the side its mediastinal surface faces"
    side = RIGHT_LABEL if share_right_of_midline >= 0.5 else LEFT_LABEL
    return side, "its position in the image (its mediastinal surface could not be told)"


_upsample = upsample_blocks  # (the name the equivalence test and this module use)
_threads = edt_threads


def segment_lungs(hu: np.ndarray, spacing, origin_x_mm: float | None = None,
                  progress: Progress | None = None) -> LungMask:
    """Lung masks for an LPS-oriented (k, j, i) HU array (column index grows toward patient
    left; ``load_ct`` guarantees it). ``spacing`` is (x, y, z) mm; ``origin_x_mm`` the LPS x of
    column 0, used to tell right from left when only one lung is in the field of view.

    Large volumes are separated into lungs on a grid coarsened by 2 (fast, small); the lung
    boundary is then taken at full resolution from the air threshold, within one coarse voxel
    of the coarse lungs, and holes are filled at full resolution."""
    progress = ensure_progress(progress)
    factor = tuple(2 if hu.size > COARSE_ABOVE_VOXELS and n >= 64 else 1 for n in hu.shape)
    coarse_hu = np.ascontiguousarray(hu[::factor[0], ::factor[1], ::factor[2]])
    coarse_spacing = (spacing[0] * factor[2], spacing[1] * factor[1], spacing[2] * factor[0])
    labels, airways, airway_zone, warnings, carina = _separate_lungs(coarse_hu, coarse_spacing, origin_x_mm,
                                                                     progress.sub(0.0, 0.7))
    closing_added = (labels > 0) & (coarse_hu >= AIR_HU)  # the lung's dense surface, not air
    del coarse_hu
    if not labels.any():
        raise ValueError("no lungs found")
    progress.step(0.72, "lung boundary at full resolution")
    coarse_box = bounding_box(labels > 0, 1)
    box = tuple(slice(b.start * f, min(b.stop * f, n)) for b, f, n in zip(coarse_box, factor, hu.shape))
    shape = tuple(b.stop - b.start for b in box)
    result = np.zeros(hu.shape, dtype=np.uint8)
    inner = result[box]
    if factor != (1, 1, 1):
        local = labels[coarse_box]
        near = np.where(local > 0, local, ndimage.maximum_filter(local, size=3))
        # inside the coarse lung (away from its boundary) every full-resolution voxel is lung, whatever
        # its HU (cyst walls, reticulation, vessels, POs); at the boundary the air threshold decides,
        # plus what the closing added there. Both labels travel in one upsampled array (4 x + 1 x).
        interior = (local > 0) & (ndimage.minimum_filter(local, size=3) == local)
        packed = _upsample(4 * np.where(closing_added[coarse_box] | interior, local, np.uint8(0)) + near,
                           factor, shape)
        del near, interior
        np.bitwise_and(packed, 3, out=inner)
        inner *= (hu[box] < AIR_HU).view(np.uint8)  # lung where the full-resolution voxel is air
        dense_surface = np.right_shift(packed, 2, out=packed)
        del packed
        airways = _upsample_into(airways, factor, hu.shape, hu)
        zone_box, zone = _upsample_box(airway_zone, factor, hu.shape)
        carina = None if carina is None else carina * factor[0]
    else:
        inner[...] = labels[box]
        zone_box = bounding_box(airway_zone) if airway_zone.any() else None
        zone = None if zone_box is None else airway_zone[zone_box]
        dense_surface = None
    del labels, closing_added
    if zone_box is not None:
        result[zone_box][zone] = 0  # the airway zone is cleared again once the lungs are complete
    progress.step(0.8, "filling holes")
    max_hole = int(MAX_HOLE_MM2 / (spacing[0] * spacing[1]))
    big_hole = int(DOME_HOLE_MM2 / (spacing[0] * spacing[1]))
    for label in (RIGHT_LABEL, LEFT_LABEL):
        lung = inner == label
        if not lung.any():
            continue
        lung_box = bounding_box(lung)
        filled = _fill_holes_per_slice(lung[lung_box], max_hole, big_hole)
        del lung
        target = inner[lung_box]
        target[filled & (target == 0)] = label
        del filled
    if dense_surface is not None:
        np.copyto(inner, dense_surface, where=inner == 0)
        del dense_surface
    if zone_box is not None:
        result[zone_box][zone] = 0  # neither holes nor the lung's dense surface fill the airway zone
    volumes = lung_volumes_ml(inner, spacing)
    progress.step(1.0, "lungs ready")
    return LungMask(result, airways, volumes, warnings, carina)


def _upsample_box(mask: np.ndarray, factor, shape):
    """A sparse coarse mask at full resolution as (box, mask inside the box), or (None, None)."""
    if not mask.any():
        return None, None
    coarse_box = bounding_box(mask)
    box = tuple(slice(b.start * f, min(b.stop * f, n)) for b, f, n in zip(coarse_box, factor, shape))
    return box, _upsample(mask[coarse_box], factor, tuple(b.stop - b.start for b in box))


def _upsample_into(mask: np.ndarray, factor, shape, air_of: np.ndarray | None = None) -> np.ndarray:
    """Full-resolution copy of a sparse coarse mask, upsampled only inside its bounding box;
    with ``air_of`` (the HU array), kept only where the full-resolution voxel is air."""
    full = np.zeros(shape, dtype=bool)
    box, local = _upsample_box(mask, factor, shape)
    if box is None:
        return full
    full[box] = local
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
