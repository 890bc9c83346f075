"""The four fissure surfaces fitted to the image's fissure evidence, starting from the template.

Each surface is a height field z = f(x, y) (LPS mm) on a grid of ``CELL_MM`` cells over its lung.
An oblique fissure's start is the plane of best inclination (``best_inclination``, tilted about the
left-right axis only) turned to the dominant normal of the evidence near it (``_reoriented``), so
that it may also turn about the vertical axis. Starting from there (or from the template,
``fissure_template.py``, for the other two), coarse to fine (``WINDOWS_MM``):

1. evidence points (``fissure_enhancement.py``) of the fissure's lung that lie within the window
   of the current surface (distance along the surface normal) and whose sheet normal is within
   ``MAX_ANGLE_DEG`` of the surface's normal are gathered per cell; a cell with at least
   ``MIN_CELL_POINTS`` of them is supported, its height the strength-weighted median;
2. the heights are turned into a smooth offset from the template by normalised convolution
   (Knutsson & Westin 1993): offset = G * (w d) / (G * w + e), Gaussian ``SMOOTH_MM``, so the
   surface follows the evidence where there is some and returns to the template, moved by the
   median offset of the whole fissure, where there is none (incomplete or invisible fissures);
3. cells that disagree with the smooth offset by more than half the window are dropped (vessels
   crossing the window) and the offset is recomputed.

The confidence of a fissure is the share of its surface inside the lung with evidence within
``SUPPORT_MM`` of it: what share of the computed boundary was seen. A fissure keeps the template
(``fallback``) when its evidence covers fewer than ``MIN_SUPPORTED_SHARE`` of its cells while
fitting or of its fitted surface, or when the fitted surface does not stand out from what the
lung's other sheets support: the same fit is run again without the evidence within
``RUNNER_UP_EXCLUDE_MM`` of the fitted surface (what could support both), and the fitted surface
must be supported ``RUNNER_UP_FACTOR`` times as much as that runner-up. Vessel walls, septa and
the other fissure are everywhere in a lung, so what they support is measured in each lung rather
than assumed: a fixed share (10 % before; chosen on the thorax CT, where a wrong surface could
reach ~9 %) rejected the right oblique fissure of that CT at 9.2 % with its runner-up at 2.6 %,
and would accept a 10 % fit in a lung whose vessels alone support as much.
The right horizontal fissure is fitted after the right oblique, without the evidence near the
oblique (likewise the lingular boundary after the left oblique); its template is first placed
again over the fitted oblique so that the middle lobe (lingula) keeps its anatomical share of the
lung (``fissure_template.MIDDLE_SHARE``) where the boundary itself is not seen.

The fitted surface is handed on as control points (an ``OUTPUT_GRID`` x ``OUTPUT_GRID`` grid, plus
points where the fissure bends more than that grid can follow: ``handed_over``) that the reader can
move like any others (``fissures.assign_lobes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..common.progress import Progress, ensure_progress
from .fissure_enhancement import FissureEvidence
from .fissures import FISSURE_LUNG, FISSURE_NAMES, FISSURES, LOW_CONFIDENCE, FissureSurface

CELL_MM = 4.0
WINDOWS_MM = (40.0, 40.0, 20.0, 8.0)
SMOOTH_MM = (16.0, 16.0, 10.0, 7.0)
ANGLES_DEG = (90.0, 90.0, 45.0, 30.0)
INCLINATIONS_DEG = tuple(range(15, 76, 5))
OFFSETS_MM = tuple(range(-40, 41, 4))
FLAT_FIRST_WINDOW_MM = 60.0  # the horizontal fissure's height varies most between people
MAX_ANGLE_DEG = 30.0
OBLIQUE_MAX_NX = 0.6
OBLIQUE_MIN_NY = 0.35  # tilted >= ~20 degrees from the axial plane
HORIZONTAL_MIN_NZ = 0.9
MIN_CELL_POINTS = 2
SUPPORT_MM = 3.0
MIN_SUPPORTED_SHARE = 0.08
EXCLUDE_NEAR_MM = 5.0
OUTPUT_GRID = 6
# the hand-over adds points where the 6 x 6 grid's spline departs from the fit by more than a
# reader's own precision placing fissure points (~2 mm, issue 10), no closer together than the
# full width at half maximum of the fit's finest smoothing (2.355 x 7 mm: the fitted surface holds
# no narrower detail), at most as many again as the grid
HANDOVER_TOLERANCE_MM = 2.0
HANDOVER_MIN_GAP_MM = 2.355 * SMOOTH_MM[-1]
HANDOVER_MAX_EXTRA = OUTPUT_GRID ** 2
RUNNER_UP_EXCLUDE_MM = 2.0 * SUPPORT_MM  # evidence this close could support both surfaces
RUNNER_UP_FACTOR = 1.5  # the fissure holds half as much support again as the best other surface
REORIENT_MM = WINDOWS_MM[0]


@dataclass
class FissureFit:
    name: str
    points: np.ndarray
    confidence: float
    supported_cells: int
    cells: int
    fallback: bool
    median_shift_mm: float
    runner_up: float | None = None  # support share of the best surface without this one's evidence

    def as_dict(self) -> dict:
        return {"name": FISSURE_NAMES[self.name], "confidence": round(self.confidence, 3),
                "supported_cells": self.supported_cells, "cells": self.cells,
                "source": "template (too little evidence)" if self.fallback else "fitted to image evidence",
                "median_shift_from_template_mm": round(self.median_shift_mm, 1),
                "runner_up_confidence": None if self.runner_up is None else round(self.runner_up, 3)}


class _Grid:
    """Cells over one lung's (x, y) extent with the lung's lowest and highest z in each."""

    def __init__(self, lungs: np.ndarray, label: int, geometry):
        spacing = np.array(geometry.spacing, dtype=float)
        origin = np.array(geometry.origin, dtype=float)
        step = np.maximum(np.round(CELL_MM / spacing[:2]).astype(int), 1)
        lung = lungs[:, ::step[1], ::step[0]] == label
        present = lung.any(axis=0)
        nk = lung.shape[0]
        low = origin[2] + np.argmax(lung, axis=0) * spacing[2]
        high = origin[2] + (nk - 1 - np.argmax(lung[::-1], axis=0)) * spacing[2]
        self.x = origin[0] + np.arange(lung.shape[2]) * step[0] * spacing[0]
        self.y = origin[1] + np.arange(lung.shape[1]) * step[1] * spacing[1]
        self.dx, self.dy = step[0] * spacing[0], step[1] * spacing[1]
        self.present, self.low, self.high = present, low, high
        self.yy, self.xx = np.meshgrid(self.y, self.x, indexing="ij")

    def within_lung(self, surface: np.ndarray) -> np.ndarray:
        """The cells where a height field on this grid lies inside the lung (boolean, per cell)."""
        return self.present & (surface > self.low) & (surface < self.high)

    def index(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (row, column) of points."""
        return (y - self.y[0]) / self.dy, (x - self.x[0]) / self.dx

    def sample(self, field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r, c = self.index(x, y)
        return ndimage.map_coordinates(field, [r, c], order=1, mode="nearest")


def _gaussian(field: np.ndarray, grid: _Grid, sigma_mm: float) -> np.ndarray:
    return ndimage.gaussian_filter(field, (sigma_mm / grid.dy, sigma_mm / grid.dx), mode="nearest")


def _per_cell(grid: _Grid, x, y, z, weight):
    """Strength-weighted median z and point count per cell."""
    rows = np.clip(np.round((y - grid.y[0]) / grid.dy).astype(int), 0, len(grid.y) - 1)
    cols = np.clip(np.round((x - grid.x[0]) / grid.dx).astype(int), 0, len(grid.x) - 1)
    flat = rows * len(grid.x) + cols
    heights = np.full(grid.present.shape, np.nan)
    counts = np.bincount(flat, minlength=heights.size).reshape(heights.shape)
    order = np.lexsort((z, flat))
    flat, z, weight = flat[order], z[order], weight[order]
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    ends = np.r_[starts[1:], len(flat)]
    for start, end in zip(starts, ends):
        if end - start < MIN_CELL_POINTS:
            continue
        cumulative = np.cumsum(weight[start:end])
        heights.flat[flat[start]] = z[start + int(np.searchsorted(cumulative, cumulative[-1] / 2.0))]
    return heights, counts


def _normals_and_distance(grid: _Grid, surface: np.ndarray, evidence: FissureEvidence):
    gy, gx = np.gradient(surface, grid.dy, grid.dx)
    x, y, z = evidence.points.T
    sx, sy = grid.sample(gx, x, y), grid.sample(gy, x, y)
    norm = np.sqrt(1.0 + sx ** 2 + sy ** 2)
    distance = (z - grid.sample(surface, x, y)) / norm
    cosine = np.abs(-sx * evidence.normals[:, 0] - sy * evidence.normals[:, 1] + evidence.normals[:, 2]) / norm
    return distance, cosine


def orientation_ok(name: str, normals: np.ndarray) -> np.ndarray:
    """Sheets oriented like the fissure: an oblique fissure faces forward and up (its normal mostly
    anterior-posterior or vertical, little left-right); a horizontal fissure or lingular boundary
    faces up."""
    if name in ("RO", "LO"):
        return (np.abs(normals[:, 0]) <= OBLIQUE_MAX_NX) & (np.abs(normals[:, 1]) >= OBLIQUE_MIN_NY)
    return np.abs(normals[:, 2]) >= HORIZONTAL_MIN_NZ


def best_inclination(template: np.ndarray, evidence: FissureEvidence) -> tuple[np.ndarray, float] | None:
    """An oblique fissure's inclination varies most between people and is the template's least
    known parameter: planes through the template's centre tilted ``INCLINATIONS_DEG`` and moved
    ``OFFSETS_MM`` up or down are scored by the evidence lying on them (within ``SUPPORT_MM``, normal
    within ``MAX_ANGLE_DEG``); the best plane, as control points, if it beats the template's own."""
    if len(evidence) == 0:
        return None
    pts = np.asarray(template, dtype=float)
    centre = pts.mean(axis=0)
    x, y, z = evidence.points.T
    best, best_score = None, 0.0
    template_slope = np.polyfit(pts[:, 1], pts[:, 2], 1)[0]
    for slope in [template_slope] + [np.tan(np.radians(a)) for a in INCLINATIONS_DEG]:
        norm = np.sqrt(1.0 + slope ** 2)
        cosine = np.abs(evidence.normals[:, 2] - slope * evidence.normals[:, 1]) / norm
        aligned = cosine >= np.cos(np.radians(MAX_ANGLE_DEG))
        residual = ((z - centre[2] - slope * (y - centre[1])) / norm)[aligned]
        strength = evidence.strength[aligned]
        for offset in OFFSETS_MM:
            score = float(strength[np.abs(residual - offset / norm) < SUPPORT_MM].sum())
            if best is None or score > best_score:
                best, best_score = (slope, offset), score
    slope, offset = best
    if slope == template_slope and offset == 0.0:
        return None
    plane = pts.copy()
    plane[:, 2] = centre[2] + offset + slope * (pts[:, 1] - centre[1])
    return plane, float(np.degrees(np.arctan(slope)))


def _reoriented(start: np.ndarray, evidence: FissureEvidence, grid: _Grid, window: float) -> np.ndarray:
    """The start plane turned about its centre to the evidence's dominant normal: the principal
    axis of the strength-weighted normals (n n^T summed) of the aligned evidence within ``window``
    of it. The inclination search tilts planes about the left-right axis only; this lets the plane
    also turn about the vertical axis, as an oblique fissure does (its trace on an axial slice runs
    from posteromedial to anterolateral)."""
    if len(evidence) == 0:
        return start
    surface = FissureSurface("start", start).height(grid.xx, grid.yy)
    distance, cosine = _normals_and_distance(grid, surface, evidence)
    near = (np.abs(distance) < window) & (cosine >= np.cos(np.radians(MAX_ANGLE_DEG)))
    if near.sum() < 3:
        return start
    normals, weight = evidence.normals[near], evidence.strength[near]
    tensor = np.einsum("ni,nj,n->ij", normals, normals, weight)
    normal = np.linalg.eigh(tensor)[1][:, -1]
    if abs(normal[2]) < 0.1:
        return start
    centre = start.mean(axis=0)
    plane = start.copy()
    across = normal[0] * (start[:, 0] - centre[0]) + normal[1] * (start[:, 1] - centre[1])
    plane[:, 2] = centre[2] - across / normal[2]
    return plane


def fit_fissure(name: str, template: np.ndarray, evidence: FissureEvidence, grid: _Grid,
                compare: bool = True, oriented: bool = False) -> FissureFit:
    """The fissure ``name`` fitted to ``evidence`` from ``template``; with ``compare`` the fit is kept
    only if it stands out from the runner-up (module docstring)."""
    if not oriented:
        evidence = evidence.subset(orientation_ok(name, evidence.normals))
    template = np.asarray(template, dtype=float)
    start = template
    if name in ("RO", "LO"):
        found = best_inclination(template, evidence)
        if found is not None:
            start = found[0]
        if REORIENT_MM:
            start = _reoriented(start, evidence, grid, REORIENT_MM)
    base = FissureSurface(name, start).height(grid.xx, grid.yy)
    inside = grid.within_lung(base)
    surface = base.copy()
    cos_max = np.cos(np.radians(MAX_ANGLE_DEG))
    shift = 0.0
    fallback = True
    windows = WINDOWS_MM if name in ("RO", "LO") else (FLAT_FIRST_WINDOW_MM,) + WINDOWS_MM[1:]
    for window, smooth, angle in zip(windows, SMOOTH_MM, ANGLES_DEG):
        if len(evidence) == 0:
            break
        distance, cosine = _normals_and_distance(grid, surface, evidence)
        near = (np.abs(distance) < window) & (cosine >= np.cos(np.radians(angle)))
        x, y, z = evidence.points[near].T
        heights, _ = _per_cell(grid, x, y, z, evidence.strength[near])
        valid = np.isfinite(heights) & grid.present
        if valid.sum() < max(MIN_SUPPORTED_SHARE * max(inside.sum(), 1), 4):
            break
        offset_cells = np.where(valid, heights - base, 0.0)
        for _ in range(2):
            weight = valid.astype(float)
            shift = float(np.median(offset_cells[valid]))
            numerator = _gaussian(weight * offset_cells, grid, smooth)
            denominator = _gaussian(weight, grid, smooth)
            epsilon = 0.02
            offset = (numerator + epsilon * shift) / (denominator + epsilon)
            agree = np.abs(offset_cells - offset) <= window / 2.0
            if (valid & ~agree).sum() == 0:
                break
            valid &= agree
            if valid.sum() < 4:
                break
        surface = base + offset
        fallback = False
    seen = _seen_cells(grid, surface, evidence, cos_max)
    supported, cells = int(seen.sum()), int(grid.within_lung(surface).sum())
    confidence = supported / cells if cells else 0.0
    runner_up = None
    if confidence < MIN_SUPPORTED_SHARE:
        fallback = True
    elif not fallback and compare:
        distance, _ = _normals_and_distance(grid, surface, evidence)
        other = fit_fissure(name, template, evidence.subset(np.abs(distance) > RUNNER_UP_EXCLUDE_MM), grid,
                            compare=False, oriented=True)
        runner_up = other.confidence
        if confidence < RUNNER_UP_FACTOR * runner_up:
            fallback = True  # not told apart from the lung's other sheets: the template is the better guess
    if fallback:
        surface = FissureSurface(name, template).height(grid.xx, grid.yy)
        seen = np.zeros_like(seen)  # nothing of the template was seen
    points = handed_over(grid, surface, seen)
    return FissureFit(name, points, confidence, supported, cells, fallback, 0.0 if fallback else shift, runner_up)


def handed_over(grid: _Grid, surface: np.ndarray, seen: np.ndarray | None = None) -> np.ndarray:
    """The surface as control points: an ``OUTPUT_GRID`` x ``OUTPUT_GRID`` grid over the lung, then
    points added where the spline through them departs from the surface by more than
    ``HANDOVER_TOLERANCE_MM`` inside the lung, worst first, never closer than
    ``HANDOVER_MIN_GAP_MM`` to another point, at most ``HANDOVER_MAX_EXTRA`` of them; with ``seen``
    (cells with fissure evidence on the surface) only at those cells. A regular grid cannot follow
    a fissure that bends (the right oblique where the horizontal fissure joins it): on the real
    thorax CT the 6 x 6 grid alone departed from the fitted right oblique by up to 17.5 mm
    (Docs/lobes.md). Where nothing was seen the fit only interpolates between sparse evidence, and
    its detail there is not handed on: on that CT it rose 15 mm over 30 mm in front of the right
    oblique's bend, following no line in the image."""
    xs = grid.x[grid.present.any(axis=0)]
    ys = grid.y[grid.present.any(axis=1)]
    gx, gy = np.meshgrid(np.linspace(xs.min(), xs.max(), OUTPUT_GRID), np.linspace(ys.min(), ys.max(), OUTPUT_GRID))
    gz = grid.sample(surface, gx.ravel(), gy.ravel())
    points = np.stack([gx.ravel(), gy.ravel(), gz], axis=1)
    inside = grid.within_lung(surface)
    if seen is not None:
        inside &= seen
    cx, cy, cz = grid.xx[inside], grid.yy[inside], surface[inside]
    for _ in range(HANDOVER_MAX_EXTRA if inside.any() else 0):
        departure = np.abs(FissureSurface("handed over", points).height(cx, cy) - cz)
        gap = np.sqrt((cx[:, None] - points[None, :, 0]) ** 2 + (cy[:, None] - points[None, :, 1]) ** 2).min(axis=1)
        departure[gap < HANDOVER_MIN_GAP_MM] = 0.0
        worst = int(np.argmax(departure))
        if departure[worst] <= HANDOVER_TOLERANCE_MM:
            break
        points = np.vstack([points, [cx[worst], cy[worst], cz[worst]]])
    return points


def _seen_cells(grid: _Grid, surface: np.ndarray, evidence: FissureEvidence, cos_max: float) -> np.ndarray:
    """The cells of the surface inside the lung with evidence within ``SUPPORT_MM`` (boolean, per cell)."""
    on_surface = grid.within_lung(surface)
    seen = np.zeros_like(on_surface)
    if len(evidence):
        distance, cosine = _normals_and_distance(grid, surface, evidence)
        close = (np.abs(distance) < SUPPORT_MM) & (cosine >= cos_max)
        if close.any():
            _, counts = _per_cell(grid, *evidence.points[close].T[:2], evidence.points[close, 2],
                                  evidence.strength[close])
            seen = on_surface & (counts >= MIN_CELL_POINTS)
    return seen


def fit_fissures(lungs: np.ndarray, geometry, template: dict, evidence: FissureEvidence,
                 progress: Progress | None = None, landmarks=None) -> dict[str, FissureFit]:
    """Fitted surfaces (as control points) for every fissure of ``template``. With ``landmarks``
    (``fissure_template.Landmarks``, whole lungs in view) the horizontal fissure's and the lingular
    boundary's template is placed anew over the fitted oblique fissure, so that the middle lobe and
    the lingula keep their anatomical share of the lung (``fissure_template.MIDDLE_SHARE``) when the
    oblique fissure moves."""
    from .fissure_template import MIDDLE_SHARE, flat_boundary_points

    progress = ensure_progress(progress)
    fits = {}
    grids = {}
    for n, name in enumerate(FISSURES):
        if name not in template:
            continue
        progress.step(n / len(FISSURES), f"fitting the {FISSURE_NAMES[name]} to the image")
        label = FISSURE_LUNG[name]
        if label not in grids:
            grids[label] = _Grid(lungs, label, geometry)
        own = evidence.subset(evidence.lung == label)
        if name in ("RH", "LG"):
            oblique = fits.get("RO" if name == "RH" else "LO")
            if oblique is not None and len(own):
                grid = grids[label]
                obl = FissureSurface("o", oblique.points).height(grid.xx, grid.yy)
                distance, _ = _normals_and_distance(grid, obl, own)
                own = own.subset(np.abs(distance) > EXCLUDE_NEAR_MM)
        start = template[name]
        if name in ("RH", "LG") and landmarks is not None and not (landmarks.cut_top or landmarks.cut_bottom):
            oblique = fits.get("RO" if name == "RH" else "LO")
            lm = landmarks.lungs.get(label)
            if oblique is not None and not oblique.fallback and lm is not None and lm.sample is not None:
                start = flat_boundary_points(lm, oblique.points, MIDDLE_SHARE[label])
        fits[name] = fit_fissure(name, start, own, grids[label])
    progress.step(1.0, "fissures fitted")
    return fits


def confidence_warnings(fits: dict[str, FissureFit]) -> list[str]:
    warnings = []
    for name, fit in fits.items():
        if fit.fallback:
            warnings.append(f"{FISSURE_NAMES[name]}: too little evidence in the image; the template was kept "
                            "(check it and move its points)")
        elif fit.confidence < LOW_CONFIDENCE:
            warnings.append(f"{FISSURE_NAMES[name]}: only {fit.confidence:.0%} of it is supported by the image; "
                            "check it")
    return warnings


def fissures_from_image(hu: np.ndarray, lungs: np.ndarray, geometry, carina_slice: int | None = None,
                        progress: Progress | None = None) -> tuple[dict, dict, list[str]]:
    """(control points per fissure, provenance, warnings) for the weight-free method: landmarks
    and template, fissure evidence, fitted surfaces."""
    from .fissure_enhancement import find_fissure_evidence
    from .fissure_template import find_landmarks, template_points

    progress = ensure_progress(progress)
    progress.step(0.0, "finding landmarks (carina, lung extents, domes)")
    landmarks = find_landmarks(lungs, geometry, hu, carina_slice)
    template = template_points(landmarks)
    evidence = find_fissure_evidence(hu, lungs, geometry, progress.sub(0.05, 0.85))
    fits = fit_fissures(lungs, geometry, template, evidence, progress.sub(0.85, 1.0), landmarks)
    points = {name: fit.points for name, fit in fits.items()}
    provenance = {"method": "fissures",
                  "points": "fitted to fissure evidence in the image; template from landmarks as start and fallback",
                  "fissures": {name: fit.as_dict() for name, fit in fits.items()},
                  "landmarks": landmarks.as_dict(), "evidence_points": int(len(evidence))}
    return points, provenance, list(landmarks.warnings) + confidence_warnings(fits)
