"""How far computed fissure surfaces lie from fissure points placed by eye.

The annotation file (``dpo-fissure-annotation/1``) holds, per fissure, points in LPS mm where a
reader saw the fissure; the distance of each to the computed surface (a height field through the
fissure's control points, ``fissures.FissureSurface``) is the shortest 3-D distance to the surface,
found on a 0.5 mm grid around the point. Summaries are the median and the 90th percentile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common.errors import DPOInputError
from .fissures import FISSURES, FissureSurface

ANNOTATION_SCHEMA = "dpo-fissure-annotation/1"
SEARCH_MM = 60.0
STEP_MM = 0.5


def load_annotation(path: str | Path) -> dict[str, np.ndarray]:
    from ..rules.reading import load_json_file

    document = load_json_file(path, "fissure annotation file")
    if not isinstance(document, dict) or document.get("schema") != ANNOTATION_SCHEMA:
        raise DPOInputError(f"{path}: schema", f"is not {ANNOTATION_SCHEMA!r}")
    result = {}
    for name, points in document.get("fissures", {}).items():
        if name not in FISSURES:
            raise DPOInputError(f"{path}: fissures.{name}", f"unknown fissure (expected {', '.join(FISSURES)})")
        array = np.asarray(points, dtype=float)
        if array.ndim != 2 or array.shape[1] != 3:
            raise DPOInputError(f"{path}: fissures.{name}", "must be a list of [x, y, z] points")
        result[name] = array
    return result


def distances_to_surface(points: np.ndarray, control_points: np.ndarray) -> np.ndarray:
    """Shortest distance (mm) from each point to the height field through ``control_points``."""
    surface = FissureSurface("eval", np.asarray(control_points, dtype=float))
    offsets = np.arange(-SEARCH_MM, SEARCH_MM + STEP_MM / 2, STEP_MM)
    result = np.empty(len(points))
    coarse = np.arange(-SEARCH_MM, SEARCH_MM + 1e-6, 4.0)
    for n, (x, y, z) in enumerate(np.asarray(points, dtype=float)):
        # a coarse 4 mm search, then 0.5 mm around the best coarse point
        gx, gy = np.meshgrid(x + coarse, y + coarse)
        gz = surface.height(gx, gy)
        d = (gx - x) ** 2 + (gy - y) ** 2 + (gz - z) ** 2
        best = np.unravel_index(np.argmin(d), d.shape)
        cx, cy = gx[best], gy[best]
        fine = offsets[np.abs(offsets) <= 4.0]
        fx, fy = np.meshgrid(cx + fine, cy + fine)
        fz = surface.height(fx, fy)
        result[n] = float(np.sqrt(((fx - x) ** 2 + (fy - y) ** 2 + (fz - z) ** 2).min()))
    return result


def summarise(annotation: dict[str, np.ndarray], control_points: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per annotated fissure: number of points, median and 90th percentile distance (mm)."""
    summary = {}
    for name, points in annotation.items():
        if name not in control_points or len(points) == 0:
            continue
        distances = distances_to_surface(points, control_points[name])
        summary[name] = {"points": int(len(points)), "median_mm": round(float(np.median(distances)), 1),
                         "p90_mm": round(float(np.percentile(distances, 90)), 1)}
    return summary
