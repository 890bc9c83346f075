"""Lobes from the lung mask and four fissure surfaces, without learned weights.

Each fissure is a smooth height field z = f(x, y) (LPS mm): a thin-plate spline through its
control points. The right oblique (RO) separates the right lower lobe from the upper and middle
lobes, the right horizontal (RH) the middle from the upper lobe, the left oblique (LO) the left
lower lobe, and the lingular boundary (LG) the lingula from the upper division of the left upper
lobe. A lung voxel below RO is RLL, else below RH RML, else RUL; on the left, below LO LLL, else
below LG LING, else LUL. The reader moves or adds points and the lobes are recomputed.

Default points come from the lung's shape (typical anatomy, zero clicks): the oblique fissures run
from 70 % of the lung's height at its back to 25 % at its front, the horizontal fissure lies flat
at 58 %, the lingular boundary from 50 % at the back to 62 % at the front. Points can also be taken from an
existing lobe label map (for example a lungmask result) with ``points_from_labels``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.interpolate import RBFInterpolator

from .errors import DPOInputError
from .progress import Progress, ensure_progress

FISSURES = ("RO", "RH", "LO", "LG")
FISSURE_NAMES = {"RO": "right oblique fissure", "RH": "right horizontal fissure",
                 "LO": "left oblique fissure", "LG": "lingular boundary"}
FISSURE_LUNG = {"RO": 1, "RH": 1, "LO": 2, "LG": 2}
POINTS_SCHEMA = "dpo-fissure-points/1"
# default heights as fractions of the lung's z range: (back, front) for the row of points at the
# lung's posterior and anterior ends
DEFAULT_HEIGHTS = {"RO": (0.70, 0.25), "RH": (0.58, 0.58), "LO": (0.70, 0.25), "LG": (0.50, 0.62)}
EVALUATION_STEP_MM = 3.0


@dataclass
class FissureSurface:
    name: str
    points: np.ndarray  # (n, 3) LPS mm
    smoothing: float = 0.0
    _spline: RBFInterpolator | None = field(default=None, repr=False, compare=False)

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """z of the surface at (x, y) (any matching shapes)."""
        if self._spline is None:
            pts = np.asarray(self.points, dtype=float)
            if len(pts) < 3:
                raise DPOInputError(f"fissure {self.name}",
                                    f"needs at least 3 control points, has {len(pts)}")
            kernel = "thin_plate_spline" if len(pts) >= 4 else "linear"
            self._spline = RBFInterpolator(pts[:, :2], pts[:, 2], kernel=kernel, smoothing=self.smoothing,
                                           degree=1)
        xy = np.stack([np.ravel(x), np.ravel(y)], axis=1)
        return self._spline(xy).reshape(np.shape(x))


def _lung_extent(lungs: np.ndarray, label: int, geometry) -> dict | None:
    """x/y/z ranges (mm) of one lung, from its voxels."""
    sample = lungs[::2, ::2, ::2] == label
    if not sample.any():
        return None
    k, j, i = np.nonzero(sample)
    ijk = np.stack([i * 2, j * 2, k * 2], axis=1).astype(float)
    lps = np.array([geometry.ijk_to_lps(p) for p in ijk[:: max(len(ijk) // 4000, 1)]])
    return {"x": (lps[:, 0].min(), lps[:, 0].max()), "y": (lps[:, 1].min(), lps[:, 1].max()),
            "z": (lps[:, 2].min(), lps[:, 2].max())}


def default_points(lungs: np.ndarray, geometry) -> dict[str, np.ndarray]:
    """A 3 x 3 grid of control points per fissure from each lung's extent (typical anatomy)."""
    points = {}
    for name in FISSURES:
        extent = _lung_extent(lungs, FISSURE_LUNG[name], geometry)
        if extent is None:
            continue
        (x0, x1), (y0, y1), (z0, z1) = extent["x"], extent["y"], extent["z"]
        back, front = DEFAULT_HEIGHTS[name]
        grid = []
        for x in np.linspace(x0 + 0.15 * (x1 - x0), x1 - 0.15 * (x1 - x0), 3):
            for t in (0.0, 0.5, 1.0):  # t = 0 at the front (low y), 1 at the back
                y = y0 + 0.1 * (y1 - y0) + t * 0.8 * (y1 - y0)
                z = z0 + (front + t * (back - front)) * (z1 - z0)
                grid.append((x, y, z))
        points[name] = np.array(grid)
    return points


def _transition_points(lobes: np.ndarray, geometry, below: set[int], above: set[int],
                       step: int) -> np.ndarray:
    """Points where the labels change from a ``below`` lobe to an ``above`` lobe going up a
    column (sampled every ``step`` voxels in-plane)."""
    result = []
    sub = lobes[:, ::step, ::step]
    for j in range(sub.shape[1]):
        for i in range(sub.shape[2]):
            column = sub[:, j, i]
            is_below = np.isin(column, list(below))
            is_above = np.isin(column, list(above))
            ks = np.nonzero(is_below[:-1] & is_above[1:])[0]
            if ks.size:
                k = ks[-1] + 0.5
                result.append(geometry.ijk_to_lps([i * step, j * step, k]))
    return np.array(result)


def points_from_labels(lobes: np.ndarray, geometry, max_points: int = 30) -> dict[str, np.ndarray]:
    """Control points on the boundaries of an existing lobe label map (values 1-6)."""
    step = max(int(round(8.0 / geometry.spacing[0])), 1)
    pairs = {"RO": ({3}, {1, 2}), "RH": ({2}, {1}), "LO": ({6}, {4, 5}), "LG": ({5}, {4})}
    rng = np.random.default_rng(0)
    points = {}
    for name, (below, above) in pairs.items():
        found = _transition_points(lobes, geometry, below, above, step)
        if len(found) >= 3:
            if len(found) > max_points:
                found = found[rng.choice(len(found), max_points, replace=False)]
            points[name] = found
    return points


def assign_lobes(lungs: np.ndarray, geometry, points: dict[str, np.ndarray],
                 progress: Progress | None = None) -> np.ndarray:
    """Lobe labels 1-6 for every lung voxel (``lungs``: 1 right, 2 left; identity-direction,
    LPS-oriented grid). Surfaces are evaluated on a ~3 mm (x, y) grid and interpolated."""
    progress = ensure_progress(progress)
    missing = [name for name in FISSURES if name not in points and (lungs == FISSURE_LUNG[name]).any()]
    if missing:
        raise DPOInputError("fissure points", f"missing for {', '.join(FISSURE_NAMES[n] for n in missing)}")
    spacing = np.array(geometry.spacing)
    origin = np.array(geometry.origin)
    nk, nj, ni = lungs.shape
    step = np.maximum(np.round(EVALUATION_STEP_MM / spacing[:2]).astype(int), 1)
    coarse_i = np.arange(0, ni + step[0], step[0])
    coarse_j = np.arange(0, nj + step[1], step[1])
    xx, yy = np.meshgrid(origin[0] + coarse_i * spacing[0], origin[1] + coarse_j * spacing[1])
    heights = {}
    for n, name in enumerate(FISSURES):
        if name not in points:
            continue
        progress.step(0.1 + 0.2 * n, f"fitting the {FISSURE_NAMES[name]}")
        coarse = FissureSurface(name, np.asarray(points[name], dtype=float)).height(xx, yy)
        # bilinear interpolation to every column, in slice-index units
        fj = np.arange(nj) / step[1]
        fi = np.arange(ni) / step[0]
        j0 = np.minimum(fj.astype(int), coarse.shape[0] - 2)
        i0 = np.minimum(fi.astype(int), coarse.shape[1] - 2)
        wj = (fj - j0)[:, None]
        wi = (fi - i0)[None, :]
        full = ((1 - wj) * (1 - wi) * coarse[j0][:, i0] + (1 - wj) * wi * coarse[j0][:, i0 + 1]
                + wj * (1 - wi) * coarse[j0 + 1][:, i0] + wj * wi * coarse[j0 + 1][:, i0 + 1])
        heights[name] = ((full - origin[2]) / spacing[2]).astype(np.float32)  # as slice index
    progress.step(0.9, "assigning lobes")
    lobes = np.zeros(lungs.shape, dtype=np.uint8)
    slices = np.nonzero(lungs.reshape(nk, -1).any(axis=1))[0]
    for k in slices:
        right = lungs[k] == 1
        left = lungs[k] == 2
        if right.any():
            lobes[k][right] = np.where(k < heights["RO"], 3, np.where(k < heights["RH"], 2, 1))[right]
        if left.any():
            lobes[k][left] = np.where(k < heights["LO"], 6, np.where(k < heights["LG"], 5, 4))[left]
    progress.step(1.0, "lobes ready")
    return lobes


def save_points(path: str | Path, points: dict[str, np.ndarray], overwrite: bool = False) -> Path:
    from .safe_files import atomic_write_json

    document = {"schema": POINTS_SCHEMA, "coordinates": "LPS",
                "fissures": {name: {"name": FISSURE_NAMES[name],
                                    "points": np.round(np.asarray(p, dtype=float), 3).tolist()}
                             for name, p in points.items()}}
    return atomic_write_json(path, document, overwrite=overwrite)


def load_points(path: str | Path) -> dict[str, np.ndarray]:
    from .reading import load_json_file

    document = load_json_file(path, "fissure points file")
    if not isinstance(document, dict) or document.get("schema") != POINTS_SCHEMA:
        raise DPOInputError(f"{path}: schema", f"is not {POINTS_SCHEMA!r}")
    points = {}
    for name, item in document.get("fissures", {}).items():
        if name not in FISSURES:
            raise DPOInputError(f"{path}: fissures.{name}",
                                f"unknown fissure (expected {', '.join(FISSURES)})")
        array = np.asarray(item.get("points", []), dtype=float)
        if array.ndim != 2 or array.shape[1] != 3 or len(array) < 3:
            raise DPOInputError(f"{path}: fissures.{name}.points", "must be at least 3 points of [x, y, z]")
        points[name] = array
    return points
