"""Measuring an ossification at a point the reader placed (one the detector missed), the same
way as a detected candidate: the brightest structure of calcific attenuation within 3 mm of the
point, measured by ``measurements.measure_candidate`` and placed by ``pleura_geometry``."""

from __future__ import annotations

import cc3d
import numpy as np

from .candidates import DetectionParams
from .measurements import measure_candidate
from .pleura_geometry import LungGeometry

SEARCH_MM = 3.0
CROP_MM = 12.0


def measure_point(hu: np.ndarray, spacing, kji, lungs: np.ndarray | None = None,
                  params: DetectionParams | None = None) -> dict:
    """Measurements for the structure at an (oriented) voxel position; an empty dict when no
    voxel within 3 mm reaches ``grow_hu`` (the reader's point is then kept as placed)."""
    params = params or DetectionParams()
    spacing_kji = np.array(spacing[::-1], dtype=float)
    centre = np.round(np.asarray(kji, dtype=float)).astype(int)
    half = np.ceil(CROP_MM / spacing_kji).astype(int)
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, hu.shape)
    crop = hu[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    grid = np.indices(crop.shape).reshape(3, -1).T + lo
    near = (np.linalg.norm((grid - centre) * spacing_kji, axis=1) <= SEARCH_MM).reshape(crop.shape)
    candidates = np.where(near & (crop >= params.grow_hu), crop, -np.inf)
    if not np.isfinite(candidates).any():
        return {}
    peak = np.unravel_index(np.argmax(candidates), crop.shape)
    labels = cc3d.connected_components(crop >= params.grow_hu, connectivity=26)
    component = labels == labels[peak]
    m = measure_candidate(crop, component, spacing)
    result = {"kind": m.kind, "short_axis_mm": round(m.short_axis_mm, 3), "long_axis_mm": round(m.long_axis_mm, 3),
              "volume_mm3": round(m.volume_mm3, 3), "peak_hu": round(m.peak_hu, 1), "mean_hu": round(m.mean_hu, 1),
              "slices": m.slices, "centre_kji": [float(v) for v in m.centre_kji + lo]}
    if lungs is not None:
        geometry = LungGeometry(lungs, spacing)
        centre_kji = m.centre_kji + lo
        side = geometry.side_near(centre_kji)
        if side:
            zone, gap, _ = geometry.zone(m.region, lo, centre_kji, side)
            result.update({"zone": zone, "distance_to_pleura_mm": round(gap, 3),
                           "lung": "right" if side == 1 else "left"})
    return result
