"""A suggestion for the reader's extent answer (spec section 7: do the POs occupy more than 50 %
of the lobe?). The paper's answer is a visual estimate; the suggestion is the share of the lobe's
volume lying within ``REACH_MM`` of a confirmed PO, computed on a ~3 mm grid. The reader's own
answer always stands (``characterisation.lobe_extent``)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..common.anatomy import BY_CODE

REACH_MM = 10.0
GRID_MM = 3.0


def suggested_extent_fractions(lobes: np.ndarray, spacing, pos_kji_by_lobe: dict[str, list]) -> dict[str, float]:
    """lobe code -> share (0-1) of the lobe within ``REACH_MM`` of one of its POs."""
    spacing_kji = np.array(spacing[::-1], dtype=float)
    step = np.maximum(np.round(GRID_MM / spacing_kji).astype(int), 1)
    coarse = lobes[::step[0], ::step[1], ::step[2]]
    result = {}
    for code, positions in pos_kji_by_lobe.items():
        if not positions:
            continue
        voxels = np.argwhere(coarse == BY_CODE[code].label) * step * spacing_kji
        if voxels.size == 0:
            continue
        tree = cKDTree(np.asarray(positions, dtype=float) * spacing_kji)
        distances = tree.query(voxels, distance_upper_bound=REACH_MM)[0]
        result[code] = round(float(np.isfinite(distances).mean()), 4)
    return result
