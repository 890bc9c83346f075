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
from skimage.morphology import convex_hull_image

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
    """Per axial slice, the convex hull of the body (bool, same shape)."""
    hull = np.zeros(body.shape, dtype=bool)
    for k in np.nonzero(body.any(axis=(1, 2)))[0]:
        if body[k].sum() >= 3:
            hull[k] = convex_hull_image(body[k])
    return hull


def body_hull(hu: np.ndarray) -> np.ndarray:
    """The space inside the body, slice by slice (bool, same shape as ``hu``): the body and its
    hulls are found on every ``HULL_STEP``-th row and column (every slice is kept)."""
    step = HULL_STEP
    small = inside_hull(body_component(hu[:, ::step, ::step]))
    return np.repeat(np.repeat(small, step, axis=1), step, axis=2)[:, :hu.shape[1], :hu.shape[2]]


def outside_air_labels(air_labels: np.ndarray, hull: np.ndarray) -> set[int]:
    """Labels of the air components lying (mostly) outside the body's hull."""
    counts = np.bincount(air_labels.ravel())
    outside_counts = np.bincount(air_labels[~hull], minlength=len(counts))
    shares = outside_counts / np.maximum(counts, 1)
    return {int(label) for label in np.nonzero(shares >= OUTSIDE_SHARE)[0] if label != 0}
