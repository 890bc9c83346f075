"""Splitting a left upper lobe that includes the lingula (lungmask, TotalSegmentator) into the
upper division (label 4) and the lingula (label 5).

The boundary is the lingular surface of ``fissures.py`` (a thin-plate spline z = f(x, y)); by
default its points are the anatomical template of ``fissure_template.py`` (flat, at the height of
the left oblique fissure at the lung's mid-axillary line; the carina estimated from the diaphragm
dome when no CT is given), and the reader can move them. The voxels of the left
upper lobe below it are the lingula, the surface evaluated by ``fissures.height_map`` exactly as
``assign_lobes`` draws it (one boundary, whichever way the lobes were made).
"""

from __future__ import annotations

import numpy as np

from ..common.anatomy import lungs_from_lobes
from .fissures import default_points, height_map


def split_lingula(lobes: np.ndarray, geometry, lingular_points: np.ndarray | None = None,
                  hu: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(lobes with the left upper lobe split into 4 and 5, the lingular points used). In
    ``lobes`` the whole left upper lobe is 4; 6 (left lower lobe) completes the left lung."""
    k, j, i = np.nonzero(lobes == 4)
    if k.size == 0:
        return lobes, np.zeros((0, 3)) if lingular_points is None else lingular_points
    if lingular_points is None:
        left = np.where(lungs_from_lobes(lobes) == 2, 2, 0).astype(np.uint8)
        lingular_points = default_points(left, geometry, hu)["LG"]
    below = k < height_map(np.asarray(lingular_points, dtype=float), geometry, lobes.shape)[j, i]
    result = lobes.copy()
    result[k[below], j[below], i[below]] = 5
    return result, lingular_points
