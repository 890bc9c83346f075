"""The body, and the air outside it, found by shape and connectivity rather than by a mean HU.

Outside air on real scans is not a clean -1000 HU: sharp kernels and noise put its mean at -940
to -970 HU, scanners pad outside the reconstruction circle with -2000 or -3024, and the table and
mattress lie below the patient. What does not change is geometry: the lungs lie inside the body,
the outside air around it.

1. Body tissue is everything above ``TISSUE_HU`` (fat, muscle, bone, table); the body is its
   largest 3-D connected component (noise specks and streaks in the outside air are small and
   separate; the table is kept when it touches the patient, which does no harm below).
2. In every axial slice the body's convex hull is the space inside the body.
3. An air component (3-D, below the air threshold, padding included) lies outside the body when
   at least ``OUTSIDE_SHARE`` of its voxels fall outside the hull of their slice. Lungs lie inside
   the hull of the chest wall; in a field of view cropped through the chest, the cut edge can leave
   a corner of a lung outside the hull, never most of it.
"""

from __future__ import annotations

import cc3d
import numpy as np
from scipy.spatial import ConvexHull, QhullError

TISSUE_HU = -500.0
OUTSIDE_SHARE = 0.5
HULL_STEP = 2  # the body and its hull are found on every other row and column: ample for a hull


def body_component(hu: np.ndarray) -> np.ndarray:
    """The largest 3-D connected component of tissue (bool, same shape as ``hu``)."""
    labels = cc3d.connected_components(hu > TISSUE_HU, connectivity=6)
    counts = np.bincount(labels.ravel())
    if len(counts) < 2:
        return np.zeros(hu.shape, dtype=bool)
    counts[0] = 0
    return labels == int(np.argmax(counts))


def inside_hull(body: np.ndarray) -> np.ndarray:
    """Per axial slice, the convex hull of the body (bool, same shape): the pixels of
    ``skimage.morphology.convex_hull_image`` (pixel edges' midpoints as the hull's points, the
    hull's border included), found row by row. A convex polygon covers one run of columns per
    row: its ends come from the hull's edges, so only rows x edges are visited, not every pixel
    against every edge (the test compares the two on real slices)."""
    hull = np.zeros(body.shape, dtype=bool)
    rows_of = body.any(axis=2)
    counts = body.sum(axis=(1, 2))
    columns = np.arange(body.shape[2])
    for k in np.nonzero(counts >= 3)[0]:
        rows = np.nonzero(rows_of[k])[0]
        section = body[k, rows]
        first = np.argmax(section, axis=1)
        last = body.shape[2] - 1 - np.argmax(section[:, ::-1], axis=1)
        # the hull of every pixel's edge midpoints is the hull of the midpoints of the pixels at
        # the corners of the hull of the row ends
        ends = np.concatenate([np.stack([rows, first], axis=1), np.stack([rows, last], axis=1)]).astype(float)
        try:
            ends = ends[ConvexHull(ends).vertices]
        except QhullError:  # the row ends lie on one line
            pass
        points = _unique_points((ends[:, None, :] + _DIAMOND).reshape(-1, 2))
        try:
            equations = ConvexHull(points).equations  # a_r * r + a_c * c + b <= 0 inside
        except QhullError:
            continue
        lo, hi = _column_runs(equations, np.arange(body.shape[1], dtype=float))
        hull[k] = (columns[None, :] >= lo[:, None]) & (columns[None, :] <= hi[:, None])
    return hull


_DIAMOND = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, -0.5], [0.0, 0.5]])
_FLAT = 1e-9
_TOLERANCE = 1e-6  # pixel centres on the hull's border are in it; hull vertices lie on a 0.5 grid


def _unique_points(points: np.ndarray) -> np.ndarray:
    """The distinct points of a set on the 0.5 grid (qhull can fail on repeated points)."""
    doubled = np.rint(2 * points).astype(np.int64) + 2
    codes = np.unique(doubled[:, 0] * _CODE + doubled[:, 1])
    return np.stack([codes // _CODE - 2, codes % _CODE - 2], axis=1) / 2.0


_CODE = 1 << 24


def _column_runs(equations: np.ndarray, rows: np.ndarray):
    """Per row, the first and last column (inclusive; empty when first > last) whose pixel
    centre satisfies every half-plane ``a_r * r + a_c * c + b <= 0`` of a convex polygon."""
    a_r, a_c, b = equations[:, 0], equations[:, 1], equations[:, 2]
    rest = -(a_r[None, :] * rows[:, None] + b[None, :])  # a_c * c <= rest
    lo = np.full(rows.shape, -np.inf)
    hi = np.full(rows.shape, np.inf)
    # an edge along a row has a_c = 0 up to rounding; any other has |a_c| >= about 1 / 1,000
    upper, lower = a_c > _FLAT, a_c < -_FLAT
    flat = ~(upper | lower)
    if upper.any():
        hi = np.min(rest[:, upper] / a_c[upper], axis=1)
    if lower.any():
        lo = np.max(rest[:, lower] / a_c[lower], axis=1)
    if flat.any():
        outside = np.any(rest[:, flat] < -_TOLERANCE, axis=1)
        hi = np.where(outside, -np.inf, hi)
    return np.ceil(lo - _TOLERANCE), np.floor(hi + _TOLERANCE)


def body_hull(hu: np.ndarray) -> np.ndarray:
    """The space inside the body, slice by slice (bool, same shape as ``hu``): the body and its
    hulls are found on every ``HULL_STEP``-th row and column (every slice is kept)."""
    step = HULL_STEP
    small = inside_hull(body_component(hu[:, ::step, ::step]))
    return np.repeat(np.repeat(small, step, axis=1), step, axis=2)[:, :hu.shape[1], :hu.shape[2]]


def outside_air_labels(air_labels: np.ndarray, hull: np.ndarray, counts: np.ndarray | None = None) -> set[int]:
    """Labels of the air components lying (mostly) outside the body's hull; ``counts``: the
    voxels of each label, when the caller has them."""
    if counts is None:
        counts = np.bincount(air_labels.ravel())
    outside_counts = np.bincount(air_labels[~hull], minlength=len(counts))
    shares = outside_counts / np.maximum(counts, 1)
    return {int(label) for label in np.nonzero(shares >= OUTSIDE_SHARE)[0] if label != 0}
