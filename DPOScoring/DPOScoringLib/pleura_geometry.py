"""Where a candidate lies in its lung: distance to the pleura, axial zone (spec section 7), side.

* Distance to the pleura: from the candidate's edge to the lung surface, by a Euclidean distance
  transform of the lung (with the candidate in it) on a crop that grows until the surface is
  inside it; the centre-to-centre distance is reduced by one in-plane voxel (half a voxel on
  each side) to go from voxel centres to surfaces.
* Radial fraction for the cortical/medullary split: on the candidate's axial slice, along the
  ray from the centroid of that lung's cross-section through the candidate, the candidate's
  distance from the centroid divided by the centroid-to-surface distance.
"""

from __future__ import annotations

import edt
import numpy as np
from scipy import ndimage

from .characterisation import classify_zone

MAX_SEARCH_MM = 60.0
FINE_SEARCH_MM = 8.0
COARSE_GRID_MM = 4.0


def _surface_distance(lung: np.ndarray, spacing_kji) -> np.ndarray:
    """Distance (mm) from each lung voxel to the nearest voxel outside the lung; the edge of
    the array counts as outside."""
    padded = np.pad(lung, 1)
    return edt.edt(padded, anisotropy=tuple(spacing_kji), black_border=False)[1:-1, 1:-1, 1:-1]


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
        """Gap (mm) between the candidate's edge and its lung's surface. For a round finding
        (``centre_kji`` and ``radius_mm`` given) the distance transform is interpolated at its
        centre and the radius subtracted, which is finer than the voxel grid. Gaps beyond
        ``FINE_SEARCH_MM`` are estimated on a 4 mm grid (about +-2 mm)."""
        region_lo = np.array(region_lo)
        margin = np.ceil(FINE_SEARCH_MM / self.spacing_kji).astype(int)
        crop, crop_lo = self._lung_crop(side, region_lo - margin, region_lo + np.array(region.shape) + margin,
                                        region, region_lo)
        distances = _surface_distance(crop, self.spacing_kji)
        offset = region_lo - crop_lo
        inside = distances[offset[0]:offset[0] + region.shape[0], offset[1]:offset[1] + region.shape[1],
                           offset[2]:offset[2] + region.shape[2]][region]
        in_plane = float(self.spacing_kji[1:].mean())
        if centre_kji is not None and radius_mm is not None:
            at = (np.asarray(centre_kji, dtype=float) - crop_lo)[:, None]
            # the lung surface lies half a voxel before the first voxel centre outside it
            nearest = float(ndimage.map_coordinates(distances, at, order=1)[0]) - 0.5 * in_plane - radius_mm
        else:
            # centre-to-centre distance: the finding's edge lies about half a voxel beyond its
            # outermost voxel centre, the lung surface half a voxel before the first outside one
            nearest = float(inside.min()) - in_plane
        if float(inside.min()) < FINE_SEARCH_MM - 1.0:
            return max(nearest, 0.0)
        return max(self._coarse_gap(region, region_lo, side), FINE_SEARCH_MM - 1.0)

    def _coarse_gap(self, region: np.ndarray, region_lo, side: int) -> float:
        step = np.maximum(np.round(COARSE_GRID_MM / self.spacing_kji).astype(int), 1)
        margin = np.ceil(MAX_SEARCH_MM / self.spacing_kji).astype(int)
        centre = np.array(region_lo) + np.array(region.shape) // 2
        lo = np.maximum(centre - margin, 0)
        hi = np.minimum(centre + margin, self.labels.shape)
        coarse = self.labels[lo[0]:hi[0]:step[0], lo[1]:hi[1]:step[1], lo[2]:hi[2]:step[2]] == side
        distances = _surface_distance(coarse, self.spacing_kji * step)
        index = np.minimum((centre - lo) // step, np.array(coarse.shape) - 1)
        return float(distances[tuple(index)]) - 0.5 * float(region.shape[1] * self.spacing_kji[1])

    def _centroid(self, k: int, side: int) -> np.ndarray | None:
        key = (k, side)
        if key not in self._centroids:
            rows, cols = np.nonzero(self.labels[k] == side)
            self._centroids[key] = np.array([rows.mean(), cols.mean()]) if rows.size else None
        return self._centroids[key]

    def radial_fraction(self, centre_kji, side: int, region: np.ndarray, region_lo) -> float | None:
        k = int(round(centre_kji[0]))
        k = min(max(k, 0), self.labels.shape[0] - 1)
        centroid = self._centroid(k, side)
        if centroid is None:
            return None
        point = np.array(centre_kji[1:], dtype=float)
        in_plane = self.spacing_kji[1:]
        direction = (point - centroid) * in_plane
        length = float(np.linalg.norm(direction))
        if length < 1e-6:
            return 0.0
        step = direction / length * 0.25 * float(in_plane.min())  # mm per step
        lung = self.labels[k] == side
        rk = k - region_lo[0]
        if 0 <= rk < region.shape[0]:
            lung = lung.copy()
            rows, cols = np.nonzero(region[rk])
            lung[rows + region_lo[1], cols + region_lo[2]] = True
        position = point * in_plane
        travelled = length
        limit = np.array(lung.shape)
        while True:
            nxt = position + step
            index = np.round(nxt / in_plane).astype(int)
            if np.any(index < 0) or np.any(index >= limit) or not lung[index[0], index[1]]:
                break
            position = nxt
            travelled += float(np.linalg.norm(step))
        return length / travelled if travelled > 0 else 0.0

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
