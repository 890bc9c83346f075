"""Compact calcific foci fused by blur with a bone at the lung surface (issue 9, point 3).

A PO abutting the pleura where a rib touches the lung is blurred into the rib's connected
structure and may have no core more than a voxel deep in the lung mask (the mask's edge runs
along the rib and the PO). It is still a focus of its own when, from a local maximum of HU near
the lung, it stays a separate compact piece (smaller than a PO can be, ``LARGE_SHORT_AXIS_MM``)
either at the seed level (joined to the bone only by blur below calcific attenuation) or above a
saddle ``FOCUS_PROMINENCE_HU`` below its peak while being brighter than every voxel of the bone
around it by ``BRIGHTER_THAN_BONE_HU``. A rib's cortex is a shell continuous at the seed level;
its brighter spots are not brighter than the rest of the rib nearby (on the real thorax CT, the
five local maxima of rib cortex at the lung that stand 100 HU above their saddle reach at most
40 HU above the brightest bone within 10 mm), and a rib's end is larger than a PO. A PO touching
the rib and dimmer than its cortex has neither: it is told by shape, standing out of the bone's
surface into the lung (``_protruding``: most of a ball a little larger than a PO around it is
lung, where a voxel of a flat or convex bone surface sees at most half), and compact. On the
four real CTs no voxel of bone near the lung stands out so (the highest lung share of that ball
is 0.36 on the thorax CT and 0.53 on A0002, against 0.6 asked).

This module only finds such pieces; candidates.py judges each as any other structure (airway
wall, hilar, measured, kept).
"""

from __future__ import annotations

import itertools

import cc3d
import edt
import numpy as np

from .measurements import LARGE_SHORT_AXIS_MM

LEVEL_STEP_HU = 25.0  # the threshold is lowered in these steps to find where a focus merges with the bone
FOCUS_PROMINENCE_HU = 100.0  # a focus brighter than the bone stands this far above its saddle to it
BRIGHTER_THAN_BONE_HU = 100.0  # and its peak this far above the bone's brightest voxel around it
BONE_RING_MM = 10.0  # "around it": within this distance
FOCUS_HALO_MM = 2.5  # but beyond the focus's own blur (a PO's radius, <= 2 mm, and the point spread)
PROTRUSION_RADIUS_MM = 2.5  # a ball a little larger than the largest PO's radius (2 mm): it reaches the bone behind
PROTRUSION_SHARE = 0.6  # lung share of that ball above which a voxel stands out of the bone's surface


def claim(taken: np.ndarray, window, piece: np.ndarray, spacing_kji) -> None:
    """Mark in ``taken`` what lies within ``FOCUS_HALO_MM`` of a finding's ``piece`` (a bool mask
    in ``taken[window]``): its own blur, where no second focus is looked for."""
    spacing_kji = np.asarray(spacing_kji, dtype=float)
    points = np.argwhere(piece) + [w.start for w in window]
    reach = np.ceil(FOCUS_HALO_MM / spacing_kji).astype(int)
    lo = np.maximum(points.min(axis=0) - reach, 0)
    hi = np.minimum(points.max(axis=0) + reach + 1, taken.shape)
    local = np.zeros(tuple(hi - lo), dtype=bool)
    local[tuple((points - lo).T)] = True
    taken[tuple(slice(a, b) for a, b in zip(lo, hi))] |= edt.edt(
        ~local, anisotropy=tuple(spacing_kji), black_border=False) <= FOCUS_HALO_MM


def _piece(values, component, peak, level):
    """The 26-connected part of ``component`` at or above ``level`` holding ``peak``."""
    labels = cc3d.connected_components(component & (values >= level), connectivity=26)
    return labels == labels[peak]


def _compact(piece: np.ndarray, spacing_kji: np.ndarray, window_shape) -> bool:
    """Smaller than a PO can be (``LARGE_SHORT_AXIS_MM`` in every direction) and not cut by the window."""
    points = np.argwhere(piece)
    if (points.min(axis=0) == 0).any() or (points.max(axis=0) == np.array(window_shape) - 1).any():
        return False
    extent = (points.max(axis=0) - points.min(axis=0) + 1) * spacing_kji
    return bool(extent.max() < LARGE_SHORT_AXIS_MM)


def _brighter_than_bone(values, component, window, piece, peak_hu, spacing_kji) -> bool:
    """The focus's peak exceeds by ``BRIGHTER_THAN_BONE_HU`` every voxel of the bone within
    ``BONE_RING_MM`` of it, beyond ``FOCUS_HALO_MM`` of the focus (its own blur)."""
    offset = np.array([w.start for w in window])
    points = np.argwhere(piece) + offset
    centre = np.round(points.mean(axis=0)).astype(int)
    reach = np.ceil(BONE_RING_MM / spacing_kji).astype(int)
    lo = np.maximum(centre - reach, 0)
    box = tuple(slice(a, c + r + 1) for a, c, r in zip(lo, centre, reach))
    focus = np.zeros(component[box].shape, dtype=bool)
    focus[tuple((points - lo).T)] = True
    halo = edt.edt(~focus, anisotropy=tuple(spacing_kji), black_border=False) <= FOCUS_HALO_MM
    bone = component[box] & ~halo
    return not bone.any() or peak_hu >= float(values[box][bone].max()) + BRIGHTER_THAN_BONE_HU


def _offsets_within(reach_mm: float, spacing_kji: np.ndarray) -> np.ndarray:
    """Index offsets (k, j, i) of the voxels whose centres lie within ``reach_mm`` of a voxel's."""
    reach = np.floor(reach_mm / spacing_kji).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), axis=-1).reshape(-1, 3)
    return grid[np.linalg.norm(grid * spacing_kji, axis=1) <= reach_mm + 1e-6]


def _gather(array: np.ndarray, points: np.ndarray, offsets: np.ndarray, outside) -> np.ndarray:
    """``array`` at every point + offset, ``outside`` where that falls off the array; shape
    (points, offsets)."""
    where = points[:, None, :] + offsets[None]
    off = ((where < 0) | (where >= np.array(array.shape))).any(axis=-1)
    values = array[tuple(np.moveaxis(np.clip(where, 0, np.array(array.shape) - 1), -1, 0))]
    values[off] = outside
    return values


def foci_on_bone(crop: np.ndarray, component: np.ndarray, lung_local: np.ndarray, spacing_kji,
                 seed_hu: float, reach_mm: float,
                 skip: np.ndarray | None = None) -> list[tuple[tuple[slice, ...], np.ndarray]]:
    """(window, piece) of each compact focus of ``component`` (a bone or mediastinal structure
    touching the lung) at the lung: a local maximum >= ``seed_hu`` within ``reach_mm`` of the
    lung mask that is a compact piece of its own either at ``seed_hu`` (joined to the bone only
    by blur below that level) or, when brighter than the bone around it by
    ``BRIGHTER_THAN_BONE_HU``, above a saddle ``FOCUS_PROMINENCE_HU`` below its peak; or a piece
    of bone voxels >= ``seed_hu`` there standing out of the bone's surface into the lung
    (``_protruding``). ``skip``: voxels already judged (around the structure's cores deep in the
    lung, ``claim``). ``window`` is a slice tuple into ``crop``; ``piece`` a bool mask in it."""
    spacing_kji = np.asarray(spacing_kji, dtype=float)
    candidates = component & (crop >= seed_hu)
    if skip is not None:
        candidates &= ~skip
    points = np.argwhere(candidates)
    if points.size == 0:
        return []
    floor = np.array(np.iinfo(np.int32).min, dtype=np.int32)
    values = np.where(component, crop.astype(np.int32, copy=False), floor)  # the bone's HU, nothing else
    points = points[_gather(lung_local, points, _offsets_within(reach_mm, spacing_kji), False).any(axis=1)]
    around = np.array(list(itertools.product((-1, 0, 1), repeat=3)))
    peaks = points[values[tuple(points.T)] >= _gather(values, points, around, floor).max(axis=1)]  # local maxima
    order = np.argsort(-values[tuple(peaks.T)], kind="stable")
    half = np.ceil(LARGE_SHORT_AXIS_MM / spacing_kji).astype(int) + 1
    taken = np.zeros(crop.shape, dtype=bool) if skip is None else skip.copy()
    found = []
    for peak in peaks[order]:
        if taken[tuple(peak)]:
            continue
        lo = np.maximum(peak - half, 0)
        window = tuple(slice(a, b) for a, b in zip(lo, np.minimum(peak + half + 1, crop.shape)))
        local_values, local_component = values[window], component[window]
        local_peak = tuple(peak - lo)
        top = float(local_values[local_peak])
        piece = _piece(local_values, local_component, local_peak, seed_hu)
        if not _compact(piece, spacing_kji, local_values.shape):  # fused with the bone at calcific attenuation
            level = top - FOCUS_PROMINENCE_HU
            piece = _piece(local_values, local_component, local_peak, level)
            if not _compact(piece, spacing_kji, local_values.shape):
                continue  # merges with the bone less than FOCUS_PROMINENCE_HU below its peak: a bump of the bone
            while level - LEVEL_STEP_HU >= seed_hu:
                lower = _piece(local_values, local_component, local_peak, level - LEVEL_STEP_HU)
                if not _compact(lower, spacing_kji, local_values.shape):
                    break
                level, piece = level - LEVEL_STEP_HU, lower
            if not _brighter_than_bone(values, component, window, piece, top, spacing_kji):
                continue  # no brighter than the bone's own cortex: a bright spot of the bone
        claim(taken, window, piece, spacing_kji)
        found.append((window, piece))
    return found + _protruding(values, points, lung_local, spacing_kji, taken)


def _protruding(values, points, lung_local, spacing_kji, taken) -> list[tuple[tuple[slice, ...], np.ndarray]]:
    """Pieces of the bone near the lung (``points``, outside the lung mask or on its edge) that
    stand out of the bone's surface into the lung: more than ``PROTRUSION_SHARE`` of the ball of
    radius ``PROTRUSION_RADIUS_MM`` around each voxel is lung (a voxel on a flat or convex bone
    surface sees at most half; a PO of radius r on that surface puts its centre r in front of it,
    and its ball is about 0.5 + 0.75 r / R lung: 0.69 for the smallest PO, r = 0.75 mm). Each
    connected piece of such voxels, compact and not yet taken, is a focus."""
    within_voxel = _offsets_within(float(spacing_kji[1:].max()) + 1e-6, spacing_kji)
    points = points[~_gather(lung_local, points, within_voxel, False).all(axis=1)]  # deep in the lung: the cores'
    if points.size == 0:
        return []
    share = _gather(lung_local, points, _offsets_within(PROTRUSION_RADIUS_MM, spacing_kji), False).mean(axis=1)
    points = points[(share > PROTRUSION_SHARE) & ~taken[tuple(points.T)]]
    if points.size == 0:
        return []
    standing = np.zeros(values.shape, dtype=bool)
    standing[tuple(points.T)] = True
    half = np.ceil(LARGE_SHORT_AXIS_MM / spacing_kji).astype(int) + 1
    found = []
    for point in points[np.argsort(-values[tuple(points.T)], kind="stable")]:
        if taken[tuple(point)]:
            continue
        lo = np.maximum(point - half, 0)
        window = tuple(slice(a, b) for a, b in zip(lo, np.minimum(point + half + 1, values.shape)))
        labels = cc3d.connected_components(standing[window], connectivity=26)
        piece = labels == labels[tuple(point - lo)]
        if _compact(piece, spacing_kji, piece.shape):
            claim(taken, window, piece, spacing_kji)
            found.append((window, piece))
        else:
            taken[window] |= piece
    return found
