"""Findings and distractors painted into the synthetic chest phantom, with their truth.

Two placements: ``legacy`` (the quick default phantom: POs 3 mm apart, 2.5 mm clear of tubes,
never abutting the pleura, in every lobe in turn) and ``paper`` (phantom_placement: where the
paper found them). Calcified nodules >= 4 mm, a dendriform tree, an airway-cartilage arc and a
hilar node complete the set.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..common.anatomy import BY_LABEL
from .phantom_anatomy import ChestGeometry, Segment, segment_distance
from .phantom_placement import PaperPlacer, exact_gap


def _label_at(canvas, lobes, lps) -> int:
    i, j, k = np.round(canvas.ijk(lps)).astype(int)
    if not all(0 <= v < n for v, n in zip((k, j, i), lobes.shape)):
        return 0
    return int(lobes[k, j, i])


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
        return _label_at(self.canvas, self.lobes, lps)

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
        return exact_gap(self.geometry, self.directions, centre, radius)

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


def sphere_inside(center, radius):
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


def _finding(findings, kind, centre, diameter, density, label, gap, **extra) -> dict:
    item = {"id": f"{kind}-{len(findings) + 1:02d}", "kind": kind,
            "lps": [round(float(v), 3) for v in centre],
            "diameter_mm": round(float(diameter), 3), "density_hu": round(float(density), 1),
            "lobe": _lobe_name(label), "lung": "right" if label <= 3 else "left",
            "pleural": bool(gap <= 1.0), "gap_to_pleura_mm": round(float(gap), 3)}
    item.update(extra)
    findings.append(item)
    return item


def _sphere_painter(canvas, diameter, density, supersample=4):
    return lambda c: canvas.paint(c - diameter / 2 - 1, c + diameter / 2 + 1, sphere_inside(c, diameter / 2), density,
                                  supersample)


def _paint_dendriform(canvas, centre, segments):
    lo = np.min([np.minimum(s.p0, s.p1) for s in segments], axis=0) - 1.5
    hi = np.max([np.maximum(s.p0, s.p1) for s in segments], axis=0) + 1.5
    canvas.paint(lo, hi, _tree(segments), 900.0, 3)


def legacy_findings(canvas, geo, spec, rng, lobes, lungs, segments) -> list[dict]:
    """The original placement: POs 3 mm apart, 2.5 mm clear of tubes, never abutting the pleura
    (kept for the quick default phantom; see phantom_placement for the paper's placement)."""
    placer = _Placer(canvas, lobes, lungs, segments, rng, geo)
    findings: list[dict] = []

    def add(kind, label, diameter, density, pleural, paint):
        centre, gap = placer.place(label, diameter / 2.0, pleural)
        if centre is None:
            return None
        paint(centre)
        return _finding(findings, kind, centre, diameter, density, label, gap)

    for n in range(spec.n_po):
        d = rng.uniform(*spec.po_diameter_mm)
        v = rng.uniform(*spec.po_density_hu)
        pleural = bool(rng.random() < spec.pleural_fraction)
        add("nodular", n % 6 + 1, d, v, pleural, _sphere_painter(canvas, d, v))
    for n in range(spec.n_calcified):
        d = rng.uniform(*spec.calcified_diameter_mm)
        v = rng.uniform(*spec.calcified_density_hu)
        add("large_calcified", (n * 2 + 1) % 6 + 1, d, v, False, _sphere_painter(canvas, d, v, 2))
    if spec.dendriform:
        add("dendriform", 6, 20.0, 900.0, False,
            lambda c: _paint_dendriform(canvas, c, _dendriform_segments(c, rng)))
    return findings


def paper_findings(canvas, geo, spec, parenchyma, lobes, segments, cysts) -> list[dict]:
    """POs where the paper found them (phantom_placement), then calcified nodules and a
    dendriform tree in the fibrosis."""
    rng = np.random.default_rng(spec.seed + 32452843)
    placer = PaperPlacer(canvas, lobes, geo, parenchyma, segments, cysts, rng)
    findings: list[dict] = []

    def record(kind, centre, diameter, density, paint, **extra):
        paint(centre)
        label = placer.label(centre)
        fibrotic, weight = placer.in_fibrosis(centre)
        gap = exact_gap(geo, placer.directions, centre, diameter / 2.0)
        extra.setdefault("beside_cyst", False)
        extra.setdefault("cluster", None)
        return _finding(findings, kind, centre, diameter, density, label, gap, in_fibrosis=fibrotic,
                        fibrosis_weight=round(weight, 3), **extra)

    n_abutting = int(round(spec.pleural_fraction * spec.n_po))
    n_cyst = int(round(spec.beside_cyst_fraction * spec.n_po)) if cysts else 0
    n_normal = int(round(spec.normal_lung_fraction * spec.n_po))
    kinds = (["abutting"] * n_abutting + ["beside_cyst"] * n_cyst + ["normal_lung"] * n_normal)
    kinds += ["reticulation"] * max(spec.n_po - len(kinds), 0)
    for site in kinds:
        d, v = rng.uniform(*spec.po_diameter_mm), rng.uniform(*spec.po_density_hu)
        cyst = None
        if site == "beside_cyst":
            centre, cyst = placer.beside_cyst(d / 2.0)
        else:
            centre = getattr(placer, site)(d / 2.0)
        if centre is None:
            continue
        record("nodular", centre, d, v, _sphere_painter(canvas, d, v), placement=site,
               beside_cyst=cyst is not None)
    for n in range(spec.n_po_clusters):
        members = 2 + int(rng.integers(0, 2))
        d, v = rng.uniform(*spec.po_diameter_mm), rng.uniform(*spec.po_density_hu)
        anchor = placer.reticulation(d / 2.0)
        if anchor is None:
            continue
        cluster_id = f"cluster-{n + 1}"
        record("nodular", anchor, d, v, _sphere_painter(canvas, d, v), placement="cluster", cluster=cluster_id)
        for _ in range(members - 1):
            d2, v2 = rng.uniform(*spec.po_diameter_mm), rng.uniform(*spec.po_density_hu)
            centre, gap = placer.near(anchor, d / 2.0, d2 / 2.0)
            if centre is not None:
                record("nodular", centre, d2, v2, _sphere_painter(canvas, d2, v2), placement="cluster",
                       cluster=cluster_id, cluster_gap_mm=round(float(gap), 3))
    for _ in range(spec.n_calcified):
        d = rng.uniform(*spec.calcified_diameter_mm)
        v = rng.uniform(*spec.calcified_density_hu)
        centre = placer.reticulation(d / 2.0) if rng.random() < 0.5 else placer.normal_lung(d / 2.0)
        if centre is not None:
            record("large_calcified", centre, d, v, _sphere_painter(canvas, d, v, 2), placement="any")
    if spec.dendriform:
        for _ in range(200):
            centre = placer.reticulation(1.0)
            if centre is None:
                break
            placer.taken.pop()
            tree = _dendriform_segments(centre, rng)
            ends = [np.array(p) for s in tree for p in (s.p0, s.p1)]
            if all(placer.clear(p, 1.0) for p in ends):
                placer.taken.append((centre, 10.0))
                segments = [{"p0": [round(float(v), 3) for v in seg.p0], "p1": [round(float(v), 3) for v in seg.p1],
                             "radius_mm": seg.radius} for seg in tree]
                record("dendriform", centre, 20.0, 900.0, lambda c, t=tree: _paint_dendriform(canvas, c, t),
                       placement="reticulation", segments=segments)
                break
    return findings


def paint_distractors(canvas, geo, spec, lobes, airways) -> list[dict]:
    distractors = []
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
                            "lps": [round(float(v), 3) for v in mid],
                            "lobe": _lobe_name(_label_at(canvas, lobes, mid))})
    if spec.hilar_node:
        centre = _hilar_node_centre(geo, 4.0)
        if centre is not None:
            canvas.paint(centre - 5, centre + 5, sphere_inside(centre, 4.0), 700.0, 2)
            distractors.append({"id": "hilar-node", "kind": "hilar_calcification",
                                "lps": [round(float(v), 3) for v in centre], "diameter_mm": 8.0})
    return distractors
