"""Trachea and main bronchi, found without learned weights by tracking the airway lumen down
from the top of the chest, slice by slice.

The trachea is the most circular air region of 80-900 mm^2 near the body midline on the upper
slices. Each next slice keeps the lumen components (< -900 HU) that overlap the current airway
and have not exploded in area (a leak into lung). After the carina (the airway splits in two),
each main bronchus is followed for ``MAIN_BRONCHUS_MM`` further.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage

LUMEN_HU = -900
TRACHEA_AREA_MM2 = (80.0, 900.0)
MAX_GROWTH = 3.0
MAX_CROSS_SECTION_MM2 = 1200.0
MAIN_BRONCHUS_MM = 30.0
TISSUE_RING_FRACTION = 0.6
MIN_TRACHEA_LENGTH_MM = 20.0
CROPPED_EDGE_SHARE = 0.2  # body along this share of a side edge of the slice: the field of view cuts the chest


@dataclass
class AirwayResult:
    mask: np.ndarray  # bool (k, j, i): trachea and main bronchi lumen
    trachea_found: bool
    carina_slice: int | None
    trachea_centre_ijk: tuple[float, float, float] | None


def _components_2d(mask2d: np.ndarray):
    labels = cc3d.connected_components(mask2d.astype(np.uint8), connectivity=4)
    return labels, int(labels.max())


def _circularity(component: np.ndarray, pixel_area: float, pixel: float) -> float:
    area = component.sum() * pixel_area
    rows, cols = np.nonzero(component)
    extent = max(np.ptp(rows) + 1, np.ptp(cols) + 1) * pixel
    return area / (np.pi * (extent / 2.0) ** 2 + 1e-9)


def _surrounded_by_tissue(hu_slice: np.ndarray, component: np.ndarray, pixel: float) -> bool:
    """The trachea runs through the neck and mediastinum: a 3-6 mm ring around it is mostly
    soft tissue, unlike a bronchus or an air pocket inside lung."""
    near = ndimage.binary_dilation(component, iterations=max(int(round(3.0 / pixel)), 1))
    ring = ndimage.binary_dilation(near, iterations=max(int(round(3.0 / pixel)), 1)) & ~near
    return ring.any() and float((hu_slice[ring] > -500).mean()) >= TISSUE_RING_FRACTION


def _body_in_slice(hu_slice: np.ndarray) -> np.ndarray:
    """Everything but the air connected to the slice's edge."""
    air = cc3d.connected_components((hu_slice < -400).astype(np.uint8), connectivity=4)
    edge = np.unique(np.concatenate([air[0], air[-1], air[:, 0], air[:, -1]]))
    return ~np.isin(air, edge[edge > 0]) if edge.any() else np.ones(hu_slice.shape, dtype=bool)


def _find_trachea_seed(hu, inside_body, spacing):
    """Search the upper 45 % of slices (top = highest k) for the trachea cross-section.
    ``inside_body`` may be None: the body is then found slice by slice."""
    n_slices = hu.shape[0]
    pixel = float(np.mean(spacing[:2]))
    pixel_area = float(spacing[0] * spacing[1])
    for k in range(n_slices - 1, int(n_slices * 0.55), -1):
        body = inside_body[k] if inside_body is not None else _body_in_slice(hu[k])
        if not body.any():
            continue
        cols = np.nonzero(body.any(axis=0))[0]
        mid, half = (cols[0] + cols[-1]) / 2.0, (cols[-1] - cols[0]) / 2.0
        # a field of view cropped through the chest cuts the body at a side of the image: its
        # midline is unknown there, and the trachea may be cut by the image edge
        cropped = body[:, 0].mean() > CROPPED_EDGE_SHARE or body[:, -1].mean() > CROPPED_EDGE_SHARE
        labels, n = _components_2d((hu[k] < LUMEN_HU) & body)
        best, best_score = None, 0.0
        for label in range(1, n + 1):
            component = labels == label
            area = component.sum() * pixel_area
            if not TRACHEA_AREA_MM2[0] <= area <= TRACHEA_AREA_MM2[1]:
                continue
            centre_col = np.nonzero(component.any(axis=0))[0].mean()
            if not cropped and abs(centre_col - mid) > 0.25 * half:
                continue
            score = _circularity(component, pixel_area, pixel)
            at_edge = cropped and (component[:, 0].any() or component[:, -1].any())
            needed = 0.45 / 2.0 if at_edge else 0.45  # cut by the image edge: about half a circle
            if score > best_score and score > needed and _surrounded_by_tissue(hu[k], component, pixel):
                best, best_score = component, score
        if best is not None:
            return k, best
    return None, None


MIN_BRANCH_MM2 = 25.0
SEARCH_MARGIN_MM = 25.0


def _lumen_components(hu_slice: np.ndarray, near: np.ndarray, spacing) -> tuple[np.ndarray, int, tuple]:
    """Lumen components (< -900 HU after a light smoothing) in a window around ``near``."""
    rows, cols = np.nonzero(near)
    margin_r = int(SEARCH_MARGIN_MM / spacing[1])
    margin_c = int(SEARCH_MARGIN_MM / spacing[0])
    window = (slice(max(rows.min() - margin_r, 0), rows.max() + margin_r + 1),
              slice(max(cols.min() - margin_c, 0), cols.max() + margin_c + 1))
    smooth = ndimage.gaussian_filter(hu_slice[window].astype(np.float32), 0.8)
    labels, n = _components_2d(smooth < LUMEN_HU)
    return labels, n, window


def _next_cross_sections(hu_slice, branches, spacing, pixel_area):
    """Lumen components of this slice continuing the branches of the previous one."""
    union = np.logical_or.reduce(branches)
    labels, _, window = _lumen_components(hu_slice, union, spacing)
    result = []
    for branch in branches:
        local = branch[window]
        for label in np.unique(labels[local & (labels > 0)]):
            component = labels == label
            area = component.sum() * pixel_area
            if area < MIN_BRANCH_MM2 or area < 0.15 * local.sum() * pixel_area:
                continue  # a noise fragment beside the lumen
            if area > MAX_CROSS_SECTION_MM2 or area > MAX_GROWTH * local.sum() * pixel_area + 50:
                continue  # leaked into lung: this branch stops here
            full = np.zeros_like(branch)
            full[window] = component
            if not any((full & other).any() for other in result):
                result.append(full)
    return result


def track_airways(hu: np.ndarray, inside_body: np.ndarray | None, spacing) -> AirwayResult:
    """``hu`` and ``inside_body`` (or None) indexed (k, j, i); ``spacing`` (x, y, z) mm."""
    mask = np.zeros(hu.shape, dtype=bool)
    k0, seed = _find_trachea_seed(hu, inside_body, spacing)
    if seed is None:
        return AirwayResult(mask, False, None, None)
    pixel_area = float(spacing[0] * spacing[1])
    rows, cols = np.nonzero(seed)
    centre = (float(cols.mean()), float(rows.mean()), float(k0))
    mask[k0] = seed
    branches = [seed]
    for k in range(k0 + 1, hu.shape[0]):  # the trachea above the seed slice
        branches = _next_cross_sections(hu[k], branches, spacing, pixel_area)[:1]
        if not branches:
            break
        mask[k] = branches[0]
    branches = [seed]
    carina = None
    split_slices = 0
    below_carina = 0.0
    for k in range(k0 - 1, -1, -1):
        next_branches = _next_cross_sections(hu[k], branches, spacing, pixel_area)
        if not next_branches:
            break
        if carina is None:
            split_slices = split_slices + 1 if len(next_branches) >= 2 else 0
            if split_slices * spacing[2] >= 2.0 or split_slices >= 2:
                carina = k + split_slices - 1
        if carina is not None:
            below_carina += spacing[2]
            if below_carina > MAIN_BRONCHUS_MM:
                break
        for component in next_branches:
            mask[k] |= component
        branches = next_branches
    length = mask.any(axis=(1, 2)).sum() * spacing[2]
    if length < MIN_TRACHEA_LENGTH_MM:
        return AirwayResult(np.zeros(hu.shape, dtype=bool), False, None, None)
    return AirwayResult(mask, True, carina, centre)
