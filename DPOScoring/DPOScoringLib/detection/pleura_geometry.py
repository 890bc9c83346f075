"""Where a candidate lies in its lung: distance to the pleura, axial zone (spec section 7), side.

* Distance to the pleura: from the candidate's edge to the lung surface (the lung with the
  candidate in it), from the nearest voxel outside the lung; see ``distance_to_pleura_mm``.
* Radial fraction for the cortical/medullary split: on the candidate's axial slice, along the
  ray from the centroid of that lung's cross-section through the candidate, the candidate's
  distance from the centroid divided by the centroid-to-surface distance.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..rules.characterisation import classify_zone

MAX_SEARCH_MM = 60.0
FINE_SEARCH_MM = 6.0
COARSE_GRID_MM = 4.0


class LungGeometry:
    def __init__(self, lung_labels: np.ndarray, spacing):
        self.labels = lung_labels  # (k, j, i): 1 right, 2 left
        self.spacing_kji = np.array(spacing[::-1], dtype=float)
        self._centroids: dict[tuple[int, int], np.ndarray | None] = {}

    def _lung_crop(self, side: int, lo: np.ndarray, hi: np.ndarray, region, region_lo) -> np.ndarray:
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, self.labels.shape)
        crop = self.labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] == side
        r_lo = np.array(region_lo) - lo
        r_hi = r_lo + np.array(region.shape)
        clip_lo = np.maximum(r_lo, 0)
        clip_hi = np.minimum(r_hi, crop.shape)
        crop[clip_lo[0]:clip_hi[0], clip_lo[1]:clip_hi[1], clip_lo[2]:clip_hi[2]] |= region[
            clip_lo[0] - r_lo[0]:clip_hi[0] - r_lo[0], clip_lo[1] - r_lo[1]:clip_hi[1] - r_lo[1],
            clip_lo[2] - r_lo[2]:clip_hi[2] - r_lo[2]]
        return crop, lo

    def distance_to_pleura_mm(self, region: np.ndarray, region_lo, side: int, centre_kji=None,
                              radius_mm: float | None = None) -> float:
        """Gap (mm) between the candidate's edge and its lung's surface: the distance to the
        nearest voxel outside the lung, less half a voxel (the surface lies between voxel
        centres). For a round finding (``centre_kji`` and ``radius_mm`` given) it is measured
        from its centre and the radius subtracted, which is finer than the voxel grid; otherwise
        from its nearest voxel, less another half voxel. Gaps beyond ``FINE_SEARCH_MM`` are
        estimated on a 4 mm grid (about +-2 mm)."""
        region_lo = np.array(region_lo)
        margin = np.ceil(FINE_SEARCH_MM / self.spacing_kji).astype(int)
        crop, crop_lo = self._lung_crop(side, region_lo - margin, region_lo + np.array(region.shape) + margin,
                                        region, region_lo)
        outside = np.argwhere(~crop)
        half_voxel = 0.5 * float(self.spacing_kji[1:].mean())
        if outside.size:
            outside_mm = (outside + crop_lo) * self.spacing_kji
            if centre_kji is not None and radius_mm is not None:
                centre_mm = np.asarray(centre_kji, dtype=float) * self.spacing_kji
                nearest = float(np.sqrt(((outside_mm - centre_mm) ** 2).sum(axis=1)).min())
                gap = nearest - half_voxel - radius_mm
            else:
                points = (np.argwhere(region) + region_lo) * self.spacing_kji
                nearest = float(cKDTree(outside_mm).query(points)[0].min())
                gap = nearest - 2.0 * half_voxel
            if nearest < FINE_SEARCH_MM - 1.0:
                return max(gap, 0.0)
        return max(self._coarse_gap(region, region_lo, side), FINE_SEARCH_MM - 1.0)

    def _coarse_gap(self, region: np.ndarray, region_lo, side: int) -> float:
        step = np.maximum(np.round(COARSE_GRID_MM / self.spacing_kji).astype(int), 1)
        margin = np.ceil(MAX_SEARCH_MM / self.spacing_kji).astype(int)
        centre = np.array(region_lo) + np.array(region.shape) // 2
        lo = np.maximum(centre - margin, 0)
        hi = np.minimum(centre + margin, self.labels.shape)
        coarse = self.labels[lo[0]:hi[0]:step[0], lo[1]:hi[1]:step[1], lo[2]:hi[2]:step[2]] != side
        outside = np.argwhere(coarse)
        if outside.size == 0:
            return MAX_SEARCH_MM
        offsets_mm = ((outside * step + lo) - centre) * self.spacing_kji
        distances = np.sqrt((offsets_mm ** 2).sum(axis=1))
        return float(distances.min()) - 0.5 * float(region.shape[1] * self.spacing_kji[1])

    def _centroid(self, k: int, side: int) -> np.ndarray | None:
        key = (k, side)
        if key not in self._centroids:  # from every other row and column: ample for a centroid
            rows, cols = np.nonzero(self.labels[k, ::2, ::2] == side)
            self._centroids[key] = 2.0 * np.array([rows.mean(), cols.mean()]) if rows.size else None
        return self._centroids[key]

    def radial_fraction(self, centre_kji, side: int, region: np.ndarray, region_lo) -> float | None:
        k = min(max(int(round(centre_kji[0])), 0), self.labels.shape[0] - 1)
        centroid = self._centroid(k, side)
        if centroid is None:
            return None
        in_plane = self.spacing_kji[1:]
        point = np.array(centre_kji[1:], dtype=float)
        direction = (point - centroid) * in_plane
        length = float(np.linalg.norm(direction))
        if length < 1e-6:
            return 0.0
        lung = self.labels[k] == side
        rk = k - region_lo[0]
        if 0 <= rk < region.shape[0]:
            rows, cols = np.nonzero(region[rk])
            lung[rows + region_lo[1], cols + region_lo[2]] = True
        step = 0.25 * float(in_plane.min())
        distances = np.arange(step, float(np.hypot(*lung.shape) * in_plane.max()), step)
        positions = point * in_plane + np.outer(distances, direction / length)
        samples = np.round(positions / in_plane).astype(int)
        valid = np.all((samples >= 0) & (samples < np.array(lung.shape)), axis=1)
        inside = np.zeros(len(distances), dtype=bool)
        inside[valid] = lung[samples[valid, 0], samples[valid, 1]]
        exits = np.flatnonzero(~inside)
        travelled = length + (distances[exits[0]] - step if exits.size else distances[-1])
        return length / travelled

    def side_near(self, centre_kji, radius_mm: float = 6.0) -> int:
        """Lung label at the centre, else the commonest lung label within ``radius_mm``."""
        index = np.clip(np.round(centre_kji).astype(int), 0, np.array(self.labels.shape) - 1)
        label = int(self.labels[tuple(index)])
        if label:
            return label
        r = np.ceil(radius_mm / self.spacing_kji).astype(int)
        lo = np.maximum(index - r, 0)
        crop = self.labels[lo[0]:index[0] + r[0] + 1, lo[1]:index[1] + r[1] + 1, lo[2]:index[2] + r[2] + 1]
        counts = np.bincount(crop.ravel(), minlength=3)[1:3]
        return int(np.argmax(counts) + 1) if counts.any() else 0

    def zone(self, region: np.ndarray, region_lo, centre_kji, side: int,
             radius_mm: float | None = None) -> tuple[str, float, float | None]:
        centre = centre_kji if radius_mm else None
        gap = self.distance_to_pleura_mm(region, region_lo, side, centre, radius_mm)
        fraction = self.radial_fraction(centre_kji, side, region, region_lo)
        return classify_zone(gap, fraction if fraction is not None else 0.0), gap, fraction
