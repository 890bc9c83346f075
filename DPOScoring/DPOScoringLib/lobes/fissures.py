"""Lobes from the lung mask and four fissure surfaces, without learned weights.

Each fissure is a smooth height field z = f(x, y) (LPS mm): a thin-plate spline through its
control points. The right oblique (RO) separates the right lower lobe from the upper and middle
lobes, the right horizontal (RH) the middle from the upper lobe, the left oblique (LO) the left
lower lobe, and the lingular boundary (LG) the lingula from the upper division of the left upper
lobe. A lung voxel below RO is RLL, else below RH RML, else RUL; on the left, below LO LLL, else
below LG LING, else LUL. The reader moves or adds points and the lobes are recomputed.

Default points come from the image: an anatomical template through landmarks
(``fissure_template.py``) fitted to fissure evidence (``fissure_enhancement.py``,
``fissure_fit.py``); ``default_points`` is the template alone. Points can also be taken from an
existing lobe label map (for example a lungmask result) with ``points_from_labels``. After the
reader moves points, ``update_lobes`` relabels only the voxels between the old and the new surface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.interpolate import RBFInterpolator

from ..common.errors import DPOInputError
from ..common.progress import Progress, ensure_progress

FISSURES = ("RO", "RH", "LO", "LG")
FISSURE_NAMES = {"RO": "right oblique fissure", "RH": "right horizontal fissure",
                 "LO": "left oblique fissure", "LG": "lingular boundary"}
FISSURE_LUNG = {"RO": 1, "RH": 1, "LO": 2, "LG": 2}
POINTS_SCHEMA = "dpo-fissure-points/1"
# a fitted fissure supported by image evidence over less than this share of its surface is named
# for the reader to check (the lobes command warns, the report and the Slicer panel say "check")
LOW_CONFIDENCE = 0.25
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


def default_points(lungs: np.ndarray, geometry, hu: np.ndarray | None = None,
                   carina_slice: int | None = None) -> dict[str, np.ndarray]:
    """A 3 x 3 grid of control points per fissure: the anatomical template of
    ``fissure_template.py`` (landmarks: carina, lung extents, anterior base), without image
    evidence. Without ``hu`` or ``carina_slice`` the carina is estimated from the diaphragm dome."""
    from .fissure_template import find_landmarks, template_points

    return template_points(find_landmarks(lungs, geometry, hu, carina_slice))


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


def height_map(points: np.ndarray, geometry, shape) -> np.ndarray:
    """The surface's height as a (fractional) slice index for every (j, i) column: the spline is
    evaluated on a ~3 mm grid and interpolated bilinearly."""
    spacing = np.array(geometry.spacing)
    origin = np.array(geometry.origin)
    _, nj, ni = shape
    step = np.maximum(np.round(EVALUATION_STEP_MM / spacing[:2]).astype(int), 1)
    coarse_i = np.arange(0, ni + step[0], step[0])
    coarse_j = np.arange(0, nj + step[1], step[1])
    xx, yy = np.meshgrid(origin[0] + coarse_i * spacing[0], origin[1] + coarse_j * spacing[1])
    coarse = FissureSurface("surface", np.asarray(points, dtype=float)).height(xx, yy)
    fj, fi = np.meshgrid(np.arange(nj) / step[1], np.arange(ni) / step[0], indexing="ij", sparse=True)
    full = ndimage.map_coordinates(coarse, np.broadcast_arrays(fj, fi), order=1, mode="nearest")
    return ((full - origin[2]) / spacing[2]).astype(np.float32)


def _label_columns(k: int, heights: dict, side: int) -> np.ndarray:
    if side == 1:
        return np.where(k < heights["RO"], 3, np.where(k < heights["RH"], 2, 1))
    return np.where(k < heights["LO"], 6, np.where(k < heights["LG"], 5, 4))


def assign_lobes(lungs: np.ndarray, geometry, points: dict[str, np.ndarray],
                 progress: Progress | None = None) -> np.ndarray:
    """Lobe labels 1-6 for every lung voxel (``lungs``: 1 right, 2 left; identity-direction,
    LPS-oriented grid). Surfaces are evaluated on a ~3 mm (x, y) grid and interpolated."""
    progress = ensure_progress(progress)
    missing = [name for name in FISSURES if name not in points and (lungs == FISSURE_LUNG[name]).any()]
    if missing:
        raise DPOInputError("fissure points", f"missing for {', '.join(FISSURE_NAMES[n] for n in missing)}")
    heights = {}
    for n, name in enumerate(FISSURES):
        if name in points:
            progress.step(0.1 + 0.2 * n, f"fitting the {FISSURE_NAMES[name]}")
            heights[name] = height_map(points[name], geometry, lungs.shape)
    progress.step(0.9, "assigning lobes")
    lobes = np.zeros(lungs.shape, dtype=np.uint8)
    nk = lungs.shape[0]
    slices = np.nonzero(lungs.reshape(nk, -1).any(axis=1))[0]
    for k in slices:
        for side in (1, 2):
            inside = lungs[k] == side
            if inside.any():
                lobes[k][inside] = _label_columns(k, heights, side)[inside]
    progress.step(1.0, "lobes ready")
    return lobes


def moved_fissures(old_points: dict, new_points: dict) -> list[str]:
    """The fissures (``FISSURES`` order) whose points in ``new_points`` differ from ``old_points``:
    new, another number of points, or any point moved."""
    return [name for name in FISSURES if name in new_points and
            (name not in old_points or np.shape(old_points[name]) != np.shape(new_points[name])
             or not np.allclose(old_points[name], new_points[name]))]


def lobe_changes(lungs: np.ndarray, geometry, old_points: dict[str, np.ndarray],
                 new_points: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The voxels a move of fissure points can relabel, with their new labels: ``(kk, jj, ii,
    labels)`` for every lung voxel between a moved surface's old and new position (on the side of
    the moved fissure's lung). Nothing is written: ``update_lobes`` applies them to an array, the
    Slicer module to the segmentation's labelmap (only these voxels). ``lungs`` is read only at
    those voxels (``lungs[kk, jj, ii]``) and for its shape: an array, or a view that looks them up."""
    empty = np.zeros(0, dtype=np.int64)
    found = [(empty, empty, empty, np.zeros(0, dtype=np.uint8))]
    changed = moved_fissures(old_points, new_points)
    nk = lungs.shape[0]
    for side in (1, 2):
        names = [n for n in FISSURES if FISSURE_LUNG[n] == side]
        moved = [n for n in names if n in changed]
        if not moved:
            continue
        if any(n not in new_points for n in names):
            raise DPOInputError("fissure points", f"missing for the {'right' if side == 1 else 'left'} lung")
        new_heights = {n: height_map(new_points[n], geometry, lungs.shape) for n in names}
        low = np.full(lungs.shape[1:], np.inf, dtype=np.float32)
        high = np.full(lungs.shape[1:], -np.inf, dtype=np.float32)
        for n in moved:
            before = (height_map(old_points[n], geometry, lungs.shape) if n in old_points
                      else np.full(lungs.shape[1:], -1.0, dtype=np.float32))
            differs = before != new_heights[n]
            low = np.where(differs, np.minimum(low, np.minimum(before, new_heights[n])), low)
            high = np.where(differs, np.maximum(high, np.maximum(before, new_heights[n])), high)
        # a voxel's side of a surface h changes only for slices k with min(h) <= k < max(h)
        first = np.ceil(np.where(np.isfinite(low), low, 0.0))
        last = np.ceil(np.where(np.isfinite(high), high, 0.0))
        rows, cols = np.nonzero(last > first)
        counts = (last - first)[rows, cols].astype(np.int64)
        if counts.size == 0:
            continue
        jj, ii = np.repeat(rows, counts), np.repeat(cols, counts)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        kk = np.repeat(first[rows, cols].astype(np.int64), counts) + offsets
        keep = (kk >= 0) & (kk < nk)
        kk, jj, ii = kk[keep], jj[keep], ii[keep]
        keep = lungs[kk, jj, ii] == side
        kk, jj, ii = kk[keep], jj[keep], ii[keep]
        labels = _label_columns(kk, {n: new_heights[n][jj, ii] for n in names}, side).astype(np.uint8)
        found.append((kk, jj.astype(np.int64), ii.astype(np.int64), labels))
    return tuple(np.concatenate(parts) for parts in zip(*found))


def update_lobes(lobes: np.ndarray, lungs: np.ndarray, geometry, old_points: dict[str, np.ndarray],
                 new_points: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """The lobes after the reader moved fissure points: only the voxels between each moved
    surface's old and new position are relabelled (``lobe_changes``), in place. Returns (lobes,
    number of voxels looked at). The result equals ``assign_lobes(lungs, geometry, new_points)``
    when ``lobes`` was computed from ``old_points``."""
    kk, jj, ii, labels = lobe_changes(lungs, geometry, old_points, new_points)
    lobes[kk, jj, ii] = labels
    return lobes, int(kk.size)


def save_points(path: str | Path, points: dict[str, np.ndarray], overwrite: bool = False) -> Path:
    from ..common.safe_files import atomic_write_json

    document = {"schema": POINTS_SCHEMA, "coordinates": "LPS",
                "fissures": {name: {"name": FISSURE_NAMES[name],
                                    "points": np.round(np.asarray(p, dtype=float), 3).tolist()}
                             for name, p in points.items()}}
    return atomic_write_json(path, document, overwrite=overwrite)


def load_points(path: str | Path) -> dict[str, np.ndarray]:
    from ..rules.reading import load_json_file

    document = load_json_file(path, "fissure points file", POINTS_SCHEMA)
    return {name: fissure_point_array(f"{path}: fissures.{name}.points", name, item.get("points", []), 3)
            for name, item in document.get("fissures", {}).items()}


def fissure_point_array(where: str, name: str, points, at_least: int = 1) -> np.ndarray:
    """The (n, 3) points of a named fissure in a file, or a ``DPOInputError`` for ``where``."""
    if name not in FISSURES:
        raise DPOInputError(where.rsplit(".points", 1)[0], f"unknown fissure (expected {', '.join(FISSURES)})")
    array = np.asarray(points, dtype=float)
    if array.ndim != 2 or array.shape[1] != 3 or len(array) < at_least:
        raise DPOInputError(where, f"must be at least {at_least} points of [x, y, z]" if at_least > 1
                            else "must be a list of [x, y, z] points")
    return array
