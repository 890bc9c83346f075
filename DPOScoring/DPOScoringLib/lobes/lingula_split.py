"""Splitting a left upper lobe that includes the lingula (lungmask, TotalSegmentator) into the
upper division (label 4) and the lingula (label 5).

The boundary is the lingular surface of ``fissures.py`` (a thin-plate spline z = f(x, y)); by
default its points are the anatomical template of ``fissure_template.py``, flat, at the height
below which the given upper lobe holds the lingula's volumetric share of the left lung
(``default_lingular_points``), and the reader can move them. The voxels of the left
upper lobe below it are the lingula, the surface evaluated by ``fissures.height_map`` exactly as
``assign_lobes`` draws it (one boundary, whichever way the lobes were made).
"""

from __future__ import annotations

import numpy as np

from ..common.anatomy import lungs_from_lobes
from .fissures import height_map


def default_lingular_points(lobes: np.ndarray, geometry, hu: np.ndarray | None = None) -> np.ndarray:
    """The template's lingular boundary (``fissure_template.py``) for a given left upper lobe (4)
    and lower lobe (6): flat, at the height that puts ``MIDDLE_SHARE`` of the left lung in the
    upper lobe below it, so the lingula keeps its anatomical share whatever the source's oblique
    fissure; with a field of view that cuts the lung, the template's own height."""
    from .fissure_template import MIDDLE_SHARE, find_landmarks, template_points

    left = np.where(lungs_from_lobes(lobes) == 2, 2, 0).astype(np.uint8)
    landmarks = find_landmarks(left, geometry, hu)
    points = template_points(landmarks)["LG"].copy()
    if not (landmarks.cut_top or landmarks.cut_bottom):
        upper_z = np.sort(np.nonzero(lobes == 4)[0])
        wanted = int(round(MIDDLE_SHARE[2] * int((left > 0).sum())))
        if upper_z.size and wanted > 0:
            k = upper_z[min(wanted, upper_z.size) - 1]
            points[:, 2] = geometry.origin[2] + (k + 0.5) * geometry.spacing[2]
    return points


def split_lingula(lobes: np.ndarray, geometry, lingular_points: np.ndarray | None = None,
                  hu: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(lobes with the left upper lobe split into 4 and 5, the lingular points used). In
    ``lobes`` the whole left upper lobe is 4; 6 (left lower lobe) completes the left lung."""
    k, j, i = np.nonzero(lobes == 4)
    if k.size == 0:
        return lobes, np.zeros((0, 3)) if lingular_points is None else lingular_points
    if lingular_points is None:
        lingular_points = default_lingular_points(lobes, geometry, hu)
    below = k < height_map(np.asarray(lingular_points, dtype=float), geometry, lobes.shape)[j, i]
    result = lobes.copy()
    result[k[below], j[below], i[below]] = 5
    return result, lingular_points
