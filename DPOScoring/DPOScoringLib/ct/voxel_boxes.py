"""The bounding box of a mask, the one helper every crop in the pipeline starts from, and two
small voxel-grid helpers shared by the lung mask and the contrast judgement."""

from __future__ import annotations

import os

import numpy as np


def bounding_box(mask: np.ndarray, margin=0) -> tuple[slice, ...]:
    """Slices of the non-zero voxels of a 3-D mask, grown by ``margin`` voxels (one number or one
    per axis) and clipped to the array. The mask must hold at least one non-zero voxel."""
    margins = np.broadcast_to(np.asarray(margin, dtype=int), (3,))
    box = []
    for axis in range(3):
        present = np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        box.append(slice(max(int(present[0]) - margins[axis], 0),
                         min(int(present[-1]) + margins[axis] + 1, mask.shape[axis])))
    return tuple(box)


def upsample_blocks(coarse: np.ndarray, factor, shape) -> np.ndarray:
    """Each coarse voxel repeated ``factor`` times along each axis (one broadcast copy, not one
    ``np.repeat`` per axis), cut to ``shape``."""
    n0, n1, n2 = coarse.shape
    f0, f1, f2 = factor
    up = np.broadcast_to(coarse[:, None, :, None, :, None], (n0, f0, n1, f1, n2, f2)).reshape(n0 * f0, n1 * f1, n2 * f2)
    return up[:shape[0], :shape[1], :shape[2]]


def edt_threads() -> int:
    """Threads for the distance transforms (the ``edt`` package splits its passes between them)."""
    return max(1, min(os.cpu_count() or 1, 8))
