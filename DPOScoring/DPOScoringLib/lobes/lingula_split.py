"""Splitting a left upper lobe that includes the lingula (lungmask, TotalSegmentator) into the
upper division (label 4) and the lingula (label 5).

The boundary is the lingular surface of ``fissures.py`` (a thin-plate spline z = f(x, y)); by
default its points are the anatomical template of ``fissure_template.py`` (flat, at the height of
the left oblique fissure at the lung's mid-axillary line; the carina estimated from the diaphragm
dome when no CT is given), and the reader can move them. The voxels of the left
upper lobe below it are the lingula.
"""

from __future__ import annotations

import numpy as np

from .fissures import FissureSurface, default_points


def split_lingula(lobes: np.ndarray, geometry, lingular_points: np.ndarray | None = None,
                  hu: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(lobes with the left upper lobe split into 4 and 5, the lingular points used). In
    ``lobes`` the whole left upper lobe is 4; 6 (left lower lobe) completes the left lung."""
    k, j, i = np.nonzero(lobes == 4)
    if k.size == 0:
        return lobes, np.zeros((0, 3)) if lingular_points is None else lingular_points
    if lingular_points is None:
        left = np.where(np.isin(lobes, (4, 5, 6)), 2, 0).astype(np.uint8)
        lingular_points = default_points(left, geometry, hu)["LG"]
    spacing, origin = np.array(geometry.spacing), np.array(geometry.origin)
    columns, inverse = np.unique(np.stack([i, j]), axis=1, return_inverse=True)
    surface = FissureSurface("LG", np.asarray(lingular_points, dtype=float))
    heights = surface.height(origin[0] + columns[0] * spacing[0], origin[1] + columns[1] * spacing[1])
    below = origin[2] + k * spacing[2] < heights[np.ravel(inverse)]
    result = lobes.copy()
    result[k[below], j[below], i[below]] = 5
    return result, lingular_points
