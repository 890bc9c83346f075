"""The bounding box of a mask, the one helper every crop in the pipeline starts from."""

from __future__ import annotations

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
