"""A synthetic chest CT phantom with known truth, for tests, the demo and benchmarks.

Body with fat and muscle, ribs, spine, heart, aorta, two lungs split into the six lobes by
curved fissures, airway and vessel trees, nodular POs of chosen sizes and densities, calcified
nodules >= 4 mm, a dendriform (branching) ossification, a calcified airway-cartilage arc and a
calcified hilar lymph node as distractors, optional contrast in the blood pool. Small objects are
rendered with supersampled partial volume, then the whole volume gets a Gaussian PSF and noise.
The truth (every finding with its centre in LPS mm, size, density, lobe and the peak HU it has in
the rendered image) is saved beside the CT.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .lobes import BY_LABEL
from .phantom_anatomy import LUNG_SIDES, ChestGeometry, Segment, segment_distance
from .progress import Progress, ensure_progress

TRUTH_SCHEMA = "dpo-phantom-truth/1"
LUNG_HU, FAT_HU, MUSCLE_HU, BLOOD_HU, CONTRAST_BLOOD_HU = -850.0, -100.0, 40.0, 40.0, 320.0
RIB_HU, SPINE_HU, CORTEX_HU, FISSURE_HU = 750.0, 250.0, 800.0, -690.0


@dataclass
class PhantomSpec:
    fov_mm: tuple[float, float, float] = (240.0, 200.0, 220.0)
    spacing: tuple[float, float, float] = (0.8, 0.8, 1.0)
    seed: int = 0
    n_po: int = 36
    po_diameter_mm: tuple[float, float] = (1.5, 3.9)
    po_density_hu: tuple[float, float] = (600.0, 1600.0)
    pleural_fraction: float = 0.4
    n_calcified: int = 4
    calcified_diameter_mm: tuple[float, float] = (4.5, 10.0)
    calcified_density_hu: tuple[float, float] = (400.0, 1000.0)
    dendriform: bool = True
    airway_calcification: bool = True
    hilar_node: bool = True
    contrast: bool = False
    noise_sd: float = 12.0
    psf_sigma_mm: float = 0.45
    fissures_visible: bool = True

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (k, j, i)."""
        return tuple(int(round(f / s)) for f, s in zip(self.fov_mm[::-1], self.spacing[::-1]))


@dataclass
class Phantom:
    ct: sitk.Image
    lobes: sitk.Image
    lungs: sitk.Image
    truth: dict = field(default_factory=dict)


def supersampled_occupancy(origin, spacing, lo, hi, inside, factor: int = 4) -> np.ndarray:
    """Fraction of each voxel (k, j, i) of the box ``lo``-``hi`` (i, j, k indices) for which
    ``inside(points_mm) -> bool`` holds, from ``factor``^3 sample points per voxel."""
    offsets = (np.arange(factor) + 0.5) / factor - 0.5
    grids = [origin[a] + (np.arange(lo[a], hi[a])[:, None] + offsets[None, :]) * spacing[a] for a in range(3)]
    zz, yy, xx = np.meshgrid(grids[2].ravel(), grids[1].ravel(), grids[0].ravel(), indexing="ij")
    occupied = inside(np.stack([xx, yy, zz], axis=-1)).astype(np.float32)
    n = np.asarray(hi) - np.asarray(lo)
    return occupied.reshape(n[2], factor, n[1], factor, n[0], factor).mean(axis=(1, 3, 5))


class _Canvas:
    """The HU volume being painted, with index <-> LPS mm conversion (identity direction)."""

    def __init__(self, spec: PhantomSpec):
        self.spacing = np.array(spec.spacing, dtype=np.float64)  # x, y, z
        self.shape = spec.shape
        fov = np.array(spec.fov_mm)
        self.origin = -fov / 2.0 + self.spacing / 2.0
        self.origin[2] = 0.0
        self.hu = np.full(self.shape, -1000.0, dtype=np.float32)

    def axis_mm(self, axis: int) -> np.ndarray:  # axis 0 x, 1 y, 2 z
        n = self.shape[2 - axis]
        return (self.origin[axis] + np.arange(n) * self.spacing[axis]).astype(np.float32)

    def ijk(self, lps) -> np.ndarray:
        return (np.asarray(lps) - self.origin) / self.spacing

    def crop(self, lo_mm, hi_mm):
        lo = np.maximum(np.floor(self.ijk(lo_mm)).astype(int), 0)
        hi = np.minimum(np.ceil(self.ijk(hi_mm)).astype(int) + 1, np.array(self.shape[::-1]))
        if np.any(hi <= lo):
            return None
        return (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])), lo, hi

    def paint(self, lo_mm, hi_mm, inside, value: float, supersample: int = 4) -> np.ndarray | None:
        """Blend ``value`` with the occupancy of ``inside(points_mm) -> bool`` in a box."""
        box = self.crop(lo_mm, hi_mm)
        if box is None:
            return None
        where, lo, hi = box
        occupancy = supersampled_occupancy(self.origin, self.spacing, lo, hi, inside, supersample)
        region = self.hu[where]
        region[...] = region * (1.0 - occupancy) + value * occupancy
        return occupancy


def _paint_anatomy(canvas: _Canvas, geo: ChestGeometry, spec: PhantomSpec, progress: Progress):
    x = canvas.axis_mm(0)[None, :]
    y = canvas.axis_mm(1)[:, None]
    z_values = canvas.axis_mm(2)
    lobes = np.zeros(canvas.shape, dtype=np.uint8)
    lungs = np.zeros(canvas.shape, dtype=np.uint8)
    blood = CONTRAST_BLOOD_HU if spec.contrast else BLOOD_HU
    pixel = float(canvas.spacing[:2].mean())
    for k, z in enumerate(z_values):
        if k % 16 == 0:
            progress.step(k / len(z_values), "painting anatomy")
        sl = canvas.hu[k]
        r = geo.body_radius(x, y)
        sl[r < 1.0] = FAT_HU
        sl[r < 0.95] = MUSCLE_HU
        sl[geo.rib_band(x, y, z)] = RIB_HU
        spine = geo.spine_sdf(x, y)
        sl[spine < 0] = CORTEX_HU
        sl[spine < -2.0] = SPINE_HU
        sl[geo.heart_q(x, y, z) < 1.0] = blood
        sl[geo.aorta_sdf(x, y) < 0] = blood
        sl[geo.great_vessels_sdf(x, y, z) < 0] = blood
        for label, side in enumerate(LUNG_SIDES, start=1):
            sdf = geo.lung_sdf(side, x, y, z)
            occupancy = np.clip(0.5 - sdf / pixel, 0.0, 1.0)
            sl[...] = sl * (1.0 - occupancy) + LUNG_HU * occupancy
            inside = sdf < 0
            lungs[k][inside] = label
            lobe = geo.lobe_label(side, x, y, z)
            lobes[k][inside] = np.broadcast_to(lobe, inside.shape)[inside]
            if spec.fissures_visible:
                fissure = np.abs(z - geo.oblique_fissure_z(side, x, y)) < 0.45
                if side == "right":
                    fissure |= (np.abs(z - geo.horizontal_fissure_z(x, y)) < 0.45) & (
                        z > geo.oblique_fissure_z(side, x, y))
                sl[inside & np.broadcast_to(fissure, inside.shape)] = FISSURE_HU
    return lobes, lungs


def _paint_tubes(canvas: _Canvas, segments: list[Segment], value: float, lumen_value: float | None = None,
                 wall: float = 0.0):
    """Tubes of ``value``; with ``lumen_value``, hollow tubes: all walls first, then all lumens,
    so that a wall never closes the lumen of a tube it joins."""
    _paint_solid_tubes(canvas, segments, value, 0.0)
    if lumen_value is not None:
        _paint_solid_tubes(canvas, segments, lumen_value, wall)


def _paint_solid_tubes(canvas: _Canvas, segments: list[Segment], value: float, inset: float):
    pixel = float(canvas.spacing.min())
    for seg in segments:
        radius = seg.radius - inset
        lo = np.minimum(seg.p0, seg.p1) - radius - 1.0
        hi = np.maximum(seg.p0, seg.p1) + radius + 1.0
        box = canvas.crop(lo, hi)
        if box is None:
            continue
        where, lo_i, hi_i = box
        grids = [canvas.origin[a] + np.arange(lo_i[a], hi_i[a]) * canvas.spacing[a] for a in range(3)]
        zz, yy, xx = np.meshgrid(grids[2], grids[1], grids[0], indexing="ij")
        distance = segment_distance(np.stack([xx, yy, zz], axis=-1), seg)
        region = canvas.hu[where]
        occupancy = np.clip(0.5 - (distance - radius) / pixel, 0.0, 1.0).astype(np.float32)
        region[...] = region * (1.0 - occupancy) + value * occupancy


class _Placer:
    """Random positions for findings inside chosen lobes, clear of trees and of each other."""

    def __init__(self, canvas, lobes, lungs, segments, rng, geometry: ChestGeometry):
        self.canvas, self.lobes, self.lungs, self.segments, self.rng = canvas, lobes, lungs, segments, rng
        self.geometry = geometry
        directions = rng.normal(size=(2000, 3))
        self.directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
        self.taken: list[tuple[np.ndarray, float]] = []
        self.voxels = {label: np.flatnonzero(lobes == label) for label in range(1, 7)}

    def _lps(self, flat_index) -> np.ndarray:
        k, j, i = np.unravel_index(flat_index, self.lobes.shape)
        return self.canvas.origin + np.array([i, j, k]) * self.canvas.spacing

    def _clear(self, centre, radius, margin=2.5) -> bool:
        for seg in self.segments:
            if segment_distance(centre[None, :], seg)[0] < seg.radius + radius + margin:
                return False
        return all(np.linalg.norm(centre - c) >= radius + r + 3.0 for c, r in self.taken)

    def _label(self, lps) -> int:
        i, j, k = np.round(self.canvas.ijk(lps)).astype(int)
        if not all(0 <= v < n for v, n in zip((k, j, i), self.lobes.shape)):
            return 0
        return int(self.lobes[k, j, i])

    def _same_lobe_around(self, centre, radius) -> bool:
        label = self._label(centre)
        steps = [np.array(v) * (radius + 1.0) for v in
                 ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))]
        return label > 0 and all(self._label(centre + s) == label for s in steps)

    def surface_gap(self, centre, radius) -> float:
        """Distance (mm) from the sphere's edge to the lung surface, from a local EDT."""
        half = radius + 8.0
        box = self.canvas.crop(centre - half, centre + half)
        where, lo, _ = box
        side = self.lungs[tuple(np.round(self.canvas.ijk(centre)).astype(int)[::-1])]
        mask = self.lungs[where] == side
        edt = ndimage.distance_transform_edt(mask, sampling=self.canvas.spacing[::-1])
        i, j, k = np.round(self.canvas.ijk(centre)).astype(int) - lo
        return float(edt[k, j, i] - 0.5 * self.canvas.spacing.min() - radius)

    def place(self, label: int, radius: float, pleural: bool, tries: int = 400):
        for _ in range(tries):
            centre = self._lps(self.rng.choice(self.voxels[label]))
            centre = centre + self.rng.uniform(-0.5, 0.5, 3) * self.canvas.spacing
            if not self._clear(centre, radius) or not self._same_lobe_around(centre, radius):
                continue
            gap = self.surface_gap(centre, radius)
            if pleural:
                centre, gap = self._slide_to_pleura(centre, radius, gap)
                if centre is None or not self._same_lobe_around(centre, radius):
                    continue
            elif gap < 3.0:
                continue
            self.taken.append((centre, radius))
            return centre, self.exact_gap(centre, radius)
        return None, None

    def exact_gap(self, centre, radius) -> float:
        """Gap (mm) from the sphere's edge to the lung surface, from the lung's analytic shape:
        the smallest shell around the sphere that reaches outside the lung (bisection)."""
        side = "right" if self.geometry.lung_sdf("right", *centre) < 0 else "left"

        def reaches_out(gap):
            points = centre + self.directions * (radius + gap)
            return bool((self.geometry.lung_sdf(side, points[:, 0], points[:, 1], points[:, 2]) > 0).any())

        low, high = 0.0, 1.0
        while not reaches_out(high) and high < 64.0:
            low, high = high, high * 2.0
        for _ in range(20):
            middle = 0.5 * (low + high)
            low, high = (low, middle) if reaches_out(middle) else (middle, high)
        return 0.5 * (low + high)

    def _slide_to_pleura(self, centre, radius, gap):
        """Move outward along the local EDT gradient until the sphere's edge is 0.1-0.9 mm from
        the lung surface."""
        if gap > 25.0:
            return None, None
        for _ in range(60):
            if 0.1 <= gap <= 0.9:
                return centre, gap
            probe = [self.surface_gap(centre + d, radius) for d in np.eye(3) * 0.5]
            gradient = (np.array(probe) - gap) / 0.5
            norm = np.linalg.norm(gradient)
            if norm < 1e-6:
                return None, None
            centre = centre - gradient / norm * min(max(gap - 0.5, -0.4), 2.0)
            gap = self.surface_gap(centre, radius)
        return None, None


def _lobe_name(label: int) -> str:
    return BY_LABEL[label].code if label in BY_LABEL else "unassigned"


def _sphere(center, radius):
    return lambda p: np.linalg.norm(p - center, axis=-1) <= radius


def _tree(segments):
    def inside(points):
        return np.min([segment_distance(points, s) - s.radius for s in segments], axis=0) <= 0
    return inside


def _dendriform_segments(centre: np.ndarray, rng: np.random.Generator) -> list[Segment]:
    trunk = np.array([rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), 1.0])
    trunk /= np.linalg.norm(trunk)
    a, b = centre - trunk * 7.0, centre + trunk * 7.0
    side = np.cross(trunk, [1.0, 0.0, 0.0])
    side /= np.linalg.norm(side)
    segments = [Segment(tuple(a), tuple(b), 0.75)]
    for origin, sign in ((centre, 1.0), (b, -1.0), (a, 1.0)):
        direction = trunk * 0.6 + side * sign
        direction /= np.linalg.norm(direction)
        segments.append(Segment(tuple(origin), tuple(origin + direction * 6.0), 0.65))
    return segments


def _hilar_node_centre(geo: ChestGeometry, radius: float) -> np.ndarray | None:
    carina_to_hilum = geo.airway_segments()[1]
    p0, p1 = np.array(carina_to_hilum.p0), np.array(carina_to_hilum.p1)
    for t in np.linspace(0.9, 0.3, 13):
        for offset in (np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0])):
            centre = p0 + t * (p1 - p0) + offset * (carina_to_hilum.radius + radius + 1.0)
            if geo.lung_sdf("right", *centre) > radius + 0.5:
                return centre
    return None


def generate_phantom(spec: PhantomSpec | None = None, progress: Progress | None = None) -> Phantom:
    spec = spec or PhantomSpec()
    progress = ensure_progress(progress)
    rng = np.random.default_rng(spec.seed)
    canvas = _Canvas(spec)
    fov = np.array(spec.fov_mm)
    geo = ChestGeometry(half_width=0.47 * fov[0], half_depth=0.47 * fov[1], z0=0.0, height=fov[2])
    lobes, lungs = _paint_anatomy(canvas, geo, spec, progress.sub(0.0, 0.55))
    airways = geo.airway_segments()
    vessels = geo.vessel_segments(rng)
    _paint_tubes(canvas, vessels, CONTRAST_BLOOD_HU if spec.contrast else BLOOD_HU)
    _paint_tubes(canvas, airways, MUSCLE_HU, lumen_value=-1000.0, wall=1.5)
    progress.step(0.6, "placing findings")

    placer = _Placer(canvas, lobes, lungs, airways + vessels, rng, geo)
    findings, distractors = [], []

    def add(kind, label, diameter, density, pleural, paint):
        centre, gap = placer.place(label, diameter / 2.0, pleural)
        if centre is None:
            return None
        paint(centre)
        item = {"id": f"{kind}-{len(findings) + 1:02d}", "kind": kind,
                "lps": [round(float(v), 3) for v in centre],
                "diameter_mm": round(float(diameter), 3), "density_hu": round(float(density), 1),
                "lobe": _lobe_name(label), "lung": "right" if label <= 3 else "left",
                "pleural": bool(gap <= 1.0), "gap_to_pleura_mm": round(float(gap), 3)}
        findings.append(item)
        return item

    for n in range(spec.n_po):
        d = rng.uniform(*spec.po_diameter_mm)
        v = rng.uniform(*spec.po_density_hu)
        pleural = bool(rng.random() < spec.pleural_fraction)
        add("nodular", n % 6 + 1, d, v, pleural,
            lambda c, d=d, v=v: canvas.paint(c - d / 2 - 1, c + d / 2 + 1, _sphere(c, d / 2), v))
    for n in range(spec.n_calcified):
        d = rng.uniform(*spec.calcified_diameter_mm)
        v = rng.uniform(*spec.calcified_density_hu)
        add("large_calcified", (n * 2 + 1) % 6 + 1, d, v, False,
            lambda c, d=d, v=v: canvas.paint(c - d / 2 - 1, c + d / 2 + 1, _sphere(c, d / 2), v, 2))
    if spec.dendriform:
        def paint_tree(c):
            segments = _dendriform_segments(c, rng)
            lo = np.min([np.minimum(s.p0, s.p1) for s in segments], axis=0) - 1.5
            hi = np.max([np.maximum(s.p0, s.p1) for s in segments], axis=0) + 1.5
            canvas.paint(lo, hi, _tree(segments), 900.0, 3)
        add("dendriform", 6, 20.0, 900.0, False, paint_tree)
    if spec.airway_calcification:
        bronchus = airways[3]
        p0, p1 = np.array(bronchus.p0), np.array(bronchus.p1)
        axis = (p1 - p0) / np.linalg.norm(p1 - p0)
        mid = p0 + 0.6 * (p1 - p0)
        reference = np.cross(axis, [0.0, 0.0, 1.0])
        reference /= np.linalg.norm(reference)

        def arc(points):
            rel = points - mid
            along = rel @ axis
            radial = rel - along[..., None] * axis
            distance = np.linalg.norm(radial, axis=-1)
            cos = (radial @ reference) / np.maximum(distance, 1e-6)
            return (np.abs(along) <= 2.0) & (distance >= bronchus.radius - 1.5) & (
                distance <= bronchus.radius + 0.2) & (cos > -0.5)
        canvas.paint(mid - bronchus.radius - 3, mid + bronchus.radius + 3, arc, 550.0, 3)
        distractors.append({"id": "airway-cartilage", "kind": "airway_calcification",
                            "lps": [round(float(v), 3) for v in mid], "lobe": _lobe_name(placer._label(mid))})
    if spec.hilar_node:
        centre = _hilar_node_centre(geo, 4.0)
        if centre is not None:
            canvas.paint(centre - 5, centre + 5, _sphere(centre, 4.0), 700.0, 2)
            distractors.append({"id": "hilar-node", "kind": "hilar_calcification",
                                "lps": [round(float(v), 3) for v in centre], "diameter_mm": 8.0})
    progress.step(0.75, "blurring and adding noise")

    image = sitk.GetImageFromArray(canvas.hu)
    del canvas.hu
    image.SetSpacing(tuple(float(s) for s in spec.spacing))
    image.SetOrigin(tuple(float(o) for o in canvas.origin))
    sigma = [spec.psf_sigma_mm, spec.psf_sigma_mm, min(spec.psf_sigma_mm, 0.3 * spec.spacing[2])]
    blurred = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, sigma))
    del image
    for item in findings:
        ijk = np.round(canvas.ijk(item["lps"])).astype(int)
        r = np.ceil(item["diameter_mm"] / 2.0 / canvas.spacing).astype(int)
        lo, hi = np.maximum(ijk - r, 0), ijk + r + 1
        item["peak_hu"] = round(float(blurred[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]].max()), 1)
    progress.step(0.9, "adding noise")
    noise_rng = np.random.default_rng(spec.seed + 7919)
    for k in range(blurred.shape[0]):
        blurred[k] += noise_rng.normal(0.0, spec.noise_sd, blurred.shape[1:]).astype(np.float32)
    ct_array = np.clip(np.rint(blurred), -1024, 3071).astype(np.int16)
    del blurred

    def to_image(array):
        result = sitk.GetImageFromArray(array)
        result.SetSpacing(tuple(float(s) for s in spec.spacing))
        result.SetOrigin(tuple(float(o) for o in canvas.origin))
        return result

    voxel_ml = float(np.prod(spec.spacing)) / 1000.0
    counts = np.bincount(lobes.ravel(), minlength=7)
    truth = {
        "schema": TRUTH_SCHEMA,
        "spec": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()},
        "findings": findings,
        "distractors": distractors,
        "lobe_volumes_ml": {BY_LABEL[label].code: round(float(counts[label]) * voxel_ml, 1)
                            for label in range(1, 7)},
        "lung_labels": {"1": "right", "2": "left"},
    }
    progress.step(1.0, "phantom ready")
    return Phantom(ct=to_image(ct_array), lobes=to_image(lobes), lungs=to_image(lungs), truth=truth)


def truth_reach_mm(finding: dict) -> float:
    """How far (mm) from a truth finding's centre a candidate may lie and still be that finding:
    its radius (a dendriform tree: 6 mm around its centre) plus 1.5 mm."""
    return (6.0 if finding["kind"] == "dendriform" else finding["diameter_mm"] / 2.0) + 1.5


def matches_truth(finding: dict, lps) -> bool:
    return float(np.linalg.norm(np.asarray(lps, dtype=float) - finding["lps"])) <= truth_reach_mm(finding)


PHANTOM_FILES = {"ct": "ct.nrrd", "lobes": "lobes.nrrd", "lungs": "lungs.nrrd", "truth": "truth.json"}


def write_phantom(phantom: Phantom, folder: str | Path) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {key: folder / name for key, name in PHANTOM_FILES.items()}
    sitk.WriteImage(phantom.ct, str(paths["ct"]), useCompression=True)
    sitk.WriteImage(phantom.lobes, str(paths["lobes"]), useCompression=True)
    sitk.WriteImage(phantom.lungs, str(paths["lungs"]), useCompression=True)
    paths["truth"].write_text(json.dumps(phantom.truth, indent=2) + "\n", encoding="utf-8")
    return paths


def implant_spheres(hu: np.ndarray, spacing, origin, spheres, psf_sigma_mm: float = 0.5) -> None:
    """Paint spheres into an existing (k, j, i) HU array in place, with supersampled partial
    volume and a local Gaussian blur of what was added. ``spheres``: (lps centre, diameter mm,
    density HU); ``origin`` and ``spacing`` (x, y, z) describe an identity-direction grid."""
    spacing = np.array(spacing, dtype=float)
    origin = np.array(origin, dtype=float)
    for centre, diameter, density in spheres:
        centre = np.asarray(centre, dtype=float)
        radius = diameter / 2.0
        half = radius + 3.0 * psf_sigma_mm + 1.0
        lo = np.maximum(np.floor((centre - half - origin) / spacing).astype(int), 0)
        hi = np.minimum(np.ceil((centre + half - origin) / spacing).astype(int) + 1, np.array(hu.shape[::-1]))
        where = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        occupancy = supersampled_occupancy(origin, spacing, lo, hi, _sphere(centre, radius))
        original = hu[where].astype(np.float32)
        blurred = ndimage.gaussian_filter((density - original) * occupancy, psf_sigma_mm / spacing[::-1])
        hu[where] = np.clip(np.rint(original + blurred), -1024, 3071).astype(hu.dtype)
