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

from ..common.anatomy import BY_LABEL
from ..common.progress import Progress, ensure_progress
from .phantom_anatomy import LUNG_SIDES, ChestGeometry, Segment, segment_distance
from .phantom_fibrosis import Parenchyma, cyst_painters, place_honeycomb
from .phantom_findings import legacy_findings, paint_distractors, paper_findings, sphere_inside
from .phantom_scanner import (
    add_streaks,
    crop_columns,
    noisy_outside_air,
    outside_body,
    prone_flip,
    scan_circle_padding,
    table_hu,
)

TRUTH_SCHEMA = "dpo-phantom-truth/1"
LUNG_HU, FAT_HU, MUSCLE_HU, BLOOD_HU, CONTRAST_BLOOD_HU = -850.0, -100.0, 40.0, 40.0, 320.0
RIB_HU, SPINE_HU, CORTEX_HU, FISSURE_HU, MARROW_HU = 750.0, 250.0, 800.0, -690.0, 250.0


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
    # --- realism options (defaults keep the quick phantom; see PhantomSpec.fibrosis_preset) ------
    anatomy: str = "chest"  # "chest" or "abdomen" (upper abdomen, no lungs: a scan to refuse)
    body_mm: tuple[float, float] | None = None  # body half-width, half-depth; default 0.47 x FOV
    grid_centre_mm: tuple[float, float] = (0.0, 0.0)  # image centre (x, y) relative to the body
    lung_texture: bool = True  # -870 (non-dependent) to -820 HU (dependent) with mild texture
    fibrosis: float = 0.0  # UIP-like fibrosis severity 0-1 (reticulation; see phantom_fibrosis)
    ground_glass: bool = False
    consolidation: bool = False  # thin subpleural strip where the fibrosis is most severe
    honeycomb_clusters: int = 0
    placement: str = "legacy"  # "legacy" (spaced, clear of air and pleura) or "paper" (see phantom_placement)
    beside_cyst_fraction: float = 0.0  # paper placement: share of POs in a honeycomb cyst's wall
    normal_lung_fraction: float = 0.0  # paper placement: share of POs outside the fibrosis
    n_po_clusters: int = 0  # paper placement: extra clusters of 2-3 POs 1-2.5 mm apart
    ribs_touch_lung: bool = False
    fused_lungs: bool = False  # anterior junction line
    outside_air: str = "ideal"  # "ideal" (-1000 HU + noise_sd) or "noisy" (outside_air_hu, sd ~50 HU)
    outside_air_hu: float = -980.0  # mean of noisy outside air (real sharp-kernel scans: -942 to -967)
    streaks: bool = False
    padding_hu: int | None = None  # e.g. -2000 or -3024 outside the scan circle
    table: bool = False
    posture: str = "supine"  # or "prone" (stored turned 180 degrees, direction cosines say so)
    crop: str | None = None  # "right" or "left": only that hemithorax, the lung cut at the border
    patient_offset_mm: tuple[float, float] = (0.0, 0.0)  # patient (x, y) off the scanner isocentre

    @classmethod
    def fibrosis_preset(cls, spacing=(0.8, 0.8, 1.0), seed: int = 0, **changes) -> PhantomSpec:
        """A chest with UIP-like fibrosis, POs where the paper found them and a scanner around
        it: fused lungs, ribs on the lung, a table, noisy outside air with streaks, padding."""
        options = dict(
            fov_mm=(260.0, 240.0, 220.0), body_mm=(116.0, 92.0), grid_centre_mm=(0.0, 14.0),
            spacing=tuple(spacing), seed=seed, n_po=36, pleural_fraction=0.4, fibrosis=0.8,
            ground_glass=True, consolidation=True, honeycomb_clusters=8, placement="paper",
            beside_cyst_fraction=0.12, normal_lung_fraction=0.06, n_po_clusters=3, ribs_touch_lung=True,
            fused_lungs=True, outside_air="noisy", streaks=True, padding_hu=-2000, table=True,
            noise_sd=18.0)
        options.update(changes)
        if options.get("posture") == "prone" and "grid_centre_mm" not in changes:
            options["grid_centre_mm"] = (0.0, -14.0)  # the table is in front of a prone patient
        return cls(**options)

    @classmethod
    def no_lung_preset(cls, spacing=(0.8, 0.8, 2.0), seed: int = 0, **changes) -> PhantomSpec:
        """An upper abdomen (bowel and stomach gas, no lungs) with the same scanner around it."""
        options = dict(fov_mm=(300.0, 270.0, 160.0), body_mm=(125.0, 98.0), grid_centre_mm=(0.0, 14.0),
                       spacing=tuple(spacing), seed=seed, anatomy="abdomen", outside_air="noisy", streaks=True,
                       padding_hu=-3024, table=True, noise_sd=18.0)
        options.update(changes)
        return cls(**options)

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


class Canvas:
    """The HU volume being painted, with index <-> LPS mm conversion (identity direction)."""

    def __init__(self, spec: PhantomSpec):
        self.spacing = np.array(spec.spacing, dtype=np.float64)  # x, y, z
        self.shape = spec.shape
        fov = np.array(spec.fov_mm)
        self.origin = -fov / 2.0 + self.spacing / 2.0
        self.origin[:2] += np.asarray(spec.grid_centre_mm, dtype=float)
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


def _paint_anatomy(canvas: Canvas, geo: ChestGeometry, spec: PhantomSpec, parenchyma: Parenchyma | None,
                   progress: Progress):
    x = canvas.axis_mm(0)[None, :]
    y = canvas.axis_mm(1)[:, None]
    z_values = canvas.axis_mm(2)
    lobes = np.zeros(canvas.shape, dtype=np.uint8)
    lungs = np.zeros(canvas.shape, dtype=np.uint8)
    blood = CONTRAST_BLOOD_HU if spec.contrast else BLOOD_HU
    pixel = float(canvas.spacing[:2].mean())
    table = table_hu(geo, x, y, spec.posture == "prone", float(spec.fov_mm[0])) if spec.table else None
    for k, z in enumerate(z_values):
        if k % 16 == 0:
            progress.step(k / len(z_values), "painting anatomy")
        sl = canvas.hu[k]
        r = geo.body_radius(x, y)
        sl[r < 1.0] = FAT_HU
        sl[r < 0.95] = MUSCLE_HU
        if table is not None:
            sl[~np.isnan(table) & (r >= 1.0)] = table[~np.isnan(table) & (r >= 1.0)]
        if spec.ribs_touch_lung:
            shell = geo.rib_shell(x, y, z)
            sl[shell < 0] = RIB_HU
            sl[shell < -1.2] = MARROW_HU
        else:
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
            lung_hu = LUNG_HU if parenchyma is None else parenchyma.slice_hu(side, x, y, z, occupancy > 0)
            sl[...] = sl * (1.0 - occupancy) + lung_hu * occupancy
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


def _paint_tubes(canvas: Canvas, segments: list[Segment], value: float, lumen_value: float | None = None,
                 wall: float = 0.0):
    """Tubes of ``value``; with ``lumen_value``, hollow tubes: all walls first, then all lumens,
    so that a wall never closes the lumen of a tube it joins."""
    _paint_solid_tubes(canvas, segments, value, 0.0)
    if lumen_value is not None:
        _paint_solid_tubes(canvas, segments, lumen_value, wall)


def _paint_solid_tubes(canvas: Canvas, segments: list[Segment], value: float, inset: float):
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


def generate_phantom(spec: PhantomSpec | None = None, progress: Progress | None = None) -> Phantom:
    spec = spec or PhantomSpec()
    progress = ensure_progress(progress)
    if spec.anatomy == "abdomen":
        from .phantom_abdomen import generate_abdomen

        return generate_abdomen(spec, progress)
    rng = np.random.default_rng(spec.seed)
    canvas = Canvas(spec)
    fov = np.array(spec.fov_mm)
    body = spec.body_mm or (0.47 * fov[0], 0.47 * fov[1])
    geo = ChestGeometry(half_width=float(body[0]), half_depth=float(body[1]), z0=0.0, height=fov[2],
                        fused_lungs=spec.fused_lungs, ribs_touch_lung=spec.ribs_touch_lung)
    parenchyma = None
    if spec.lung_texture or spec.fibrosis > 0:
        top = canvas.origin + (np.array(spec.shape[::-1]) - 1) * canvas.spacing
        parenchyma = Parenchyma(geo, np.random.default_rng(spec.seed + 104729), canvas.origin, top,
                                spec.fibrosis, spec.ground_glass, spec.consolidation, spec.posture == "prone",
                                spec.lung_texture)
    lobes, lungs = _paint_anatomy(canvas, geo, spec, parenchyma, progress.sub(0.0, 0.55))
    airways = geo.airway_segments()
    vessels = geo.vessel_segments(rng)
    _paint_tubes(canvas, vessels, CONTRAST_BLOOD_HU if spec.contrast else BLOOD_HU)
    _paint_tubes(canvas, airways, MUSCLE_HU, lumen_value=-1000.0, wall=1.5)
    cysts = []
    if parenchyma is not None and spec.honeycomb_clusters > 0:
        progress.step(0.57, "honeycombing")
        cysts = place_honeycomb(geo, parenchyma, np.random.default_rng(spec.seed + 15485863),
                                spec.honeycomb_clusters)
        for lo, hi, inside, value in cyst_painters(cysts, geo):
            canvas.paint(lo, hi, inside, value, 2)
    progress.step(0.6, "placing findings")
    if spec.placement == "paper":
        findings = paper_findings(canvas, geo, spec, parenchyma, lobes, airways + vessels, cysts)
    else:
        findings = legacy_findings(canvas, geo, spec, rng, lobes, lungs, airways + vessels)
    distractors = paint_distractors(canvas, geo, spec, lobes, airways)
    progress.step(0.75, "blurring and adding noise")
    return finish_phantom(canvas, geo, spec, lobes, lungs, findings, distractors, cysts, progress)


def finish_phantom(canvas, geo, spec, lobes, lungs, findings, distractors, cysts, progress) -> Phantom:
    """Blur, record peaks, noise, the scanner's additions (phantom_scanner), images and truth."""
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
    x, y = canvas.axis_mm(0)[None, :], canvas.axis_mm(1)[:, None]
    scanner_rng = np.random.default_rng(spec.seed + 49979687)
    scanner = {"outside_air": spec.outside_air, "posture": spec.posture}
    if spec.outside_air == "noisy":
        outside = outside_body(geo, x, y)
        if spec.table:
            outside &= np.isnan(table_hu(geo, x, y, spec.posture == "prone", float(spec.fov_mm[0])))
        noisy_outside_air(blurred, outside, scanner_rng, spec.noise_sd, spec.outside_air_hu)
        scanner["outside_air_hu"] = spec.outside_air_hu
    if spec.streaks:
        add_streaks(blurred, x, y, (0.0, 0.64 * geo.half_depth), scanner_rng)
    ct_array = np.clip(np.rint(blurred), -1024, 3071).astype(np.int16)
    del blurred
    if spec.padding_hu is not None:
        centre = tuple(float(v) for v in spec.grid_centre_mm)
        radius = 0.5 * min(spec.fov_mm[0], spec.fov_mm[1])
        scan_circle_padding(ct_array, x, y, centre, radius, int(spec.padding_hu))
        scanner.update(padding_hu=int(spec.padding_hu), scan_circle={"centre_xy": list(centre), "radius_mm": radius})
    arrays, origin, direction = [ct_array, lobes, lungs], canvas.origin.copy(), None
    if spec.crop:
        arrays, origin, kept = _crop(arrays, origin, spec, geo, findings)
        cysts = [c for c in cysts if kept[0] <= c.centre[0] <= kept[1]]
        scanner["crop_x_mm"] = [round(float(v), 2) for v in kept]
    if spec.posture == "prone":
        arrays, origin, direction = prone_flip(arrays, origin, spec.spacing)
    offset = np.array([*spec.patient_offset_mm, 0.0], float)
    origin = origin + offset
    for item in findings + distractors:
        item["lps"] = [round(float(v) + float(o), 3) for v, o in zip(item["lps"], offset)]
        for seg in item.get("segments", []):
            seg["p0"], seg["p1"] = ([round(float(v) + float(o), 3) for v, o in zip(seg[key], offset)]
                                    for key in ("p0", "p1"))
    ct_array, lobes, lungs = arrays

    def to_image(array):
        result = sitk.GetImageFromArray(array)
        result.SetSpacing(tuple(float(s) for s in spec.spacing))
        result.SetOrigin(tuple(float(o) for o in origin))
        if direction is not None:
            result.SetDirection(direction)
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
        "lung_volumes_ml": {"right": round(float((lungs == 1).sum()) * voxel_ml, 1),
                            "left": round(float((lungs == 2).sum()) * voxel_ml, 1)},
        "scanner": scanner,
    }
    if cysts:
        truth["honeycomb_cysts"] = [dict(c.to_dict(), lps=[round(float(v) + float(o), 3)
                                                           for v, o in zip(c.centre, offset)]) for c in cysts]
    progress.step(1.0, "phantom ready")
    return Phantom(ct=to_image(ct_array), lobes=to_image(lobes), lungs=to_image(lungs), truth=truth)


def _crop(arrays, origin, spec, geo, findings):
    """One hemithorax: from the lateral part of that lung (cut at the border) to just past the
    midline; findings cut by the border or outside it are dropped from the truth."""
    sign = -1.0 if spec.crop == "right" else 1.0
    bounds = sorted([sign * 0.68 * geo.half_width, -sign * 0.06 * geo.half_width])
    arrays, origin, kept = crop_columns(arrays, origin, spec.spacing, *bounds)
    def inside(f):
        reach = truth_reach_mm(f) if f["kind"] == "dendriform" else f["diameter_mm"] / 2.0
        return kept[0] <= f["lps"][0] - reach and f["lps"][0] + reach <= kept[1]
    findings[:] = [f for f in findings if inside(f)]
    return arrays, origin, kept


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
        occupancy = supersampled_occupancy(origin, spacing, lo, hi, sphere_inside(centre, radius))
        original = hu[where].astype(np.float32)
        blurred = ndimage.gaussian_filter((density - original) * occupancy, psf_sigma_mm / spacing[::-1])
        hu[where] = np.clip(np.rint(original + blurred), -1024, 3071).astype(hu.dtype)
