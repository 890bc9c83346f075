"""Where the phantom's ossifications go, after the paper rather than after the detector.

Gruden et al. (Radiology 2017, Results): 39 % of POs in the pleural zone, 55 % cortical, 96 % in
areas of reticulation, 3 % with honeycombing, 59 % in the lower lobes. So, with ``placement =
"paper"``:

* ``abutting``: the PO touches the pleura (gap 0; its edge reaches up to 0.3 mm past the lung
  surface, as a nodule does that indents the pleura), sited in fibrosis (weight-sampled);
* ``reticulation``: inside the fibrosis, at any depth (mostly cortical because the fibrosis is);
* ``beside_cyst``: embedded in the wall of a honeycomb cyst, touching its air;
* ``cluster``: 2-3 POs whose edges are 1-2.5 mm apart, each its own truth finding;
* ``normal_lung``: a few anywhere in the lung.

The only rules are physical: a PO lies in the lung, does not overlap another finding, a vessel
or an airway, and does not enter a cyst's air. No margin from air spaces, the pleura or each
other mirrors a detector's setting.
"""

from __future__ import annotations

import numpy as np

from .phantom_anatomy import LUNG_SIDES, ChestGeometry, Segment, segment_distance
from .phantom_fibrosis import RETICULATION_START, Cyst, Parenchyma


class PaperPlacer:
    def __init__(self, canvas, lobes: np.ndarray, geo: ChestGeometry, parenchyma: Parenchyma,
                 segments: list[Segment], cysts: list[Cyst], rng: np.random.Generator):
        self.canvas, self.lobes, self.geo, self.parenchyma = canvas, lobes, geo, parenchyma
        self.segments, self.cysts, self.rng = segments, cysts, rng
        self.taken: list[tuple[np.ndarray, float]] = []
        directions = rng.normal(size=(2000, 3))
        self.directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
        flat = np.flatnonzero(lobes)
        step = max(1, len(flat) // 400000)  # a sample of lung voxels is plenty to draw sites from
        self.sites = flat[rng.permutation(len(flat))[:: step]]
        k, j, i = np.unravel_index(self.sites, lobes.shape)
        self.points = canvas.origin + np.stack([i, j, k], axis=1) * canvas.spacing
        labels = lobes.ravel()[self.sites]
        self.side_of = np.where(labels <= 3, 0, 1)
        self.depth = np.empty(len(self.sites))
        self.weight = np.empty(len(self.sites))
        for n, side in enumerate(LUNG_SIDES):
            sel = self.side_of == n
            p = self.points[sel]
            self.depth[sel] = -geo.costal_sdf(side, p[:, 0], p[:, 1], p[:, 2])
            self.weight[sel] = parenchyma.weight(side, p[:, 0], p[:, 1], p[:, 2])

    # --- rules -----------------------------------------------------------------------------------
    def side(self, centre) -> str | None:
        for side in LUNG_SIDES:
            if self.geo.lung_sdf(side, *centre) < 0:
                return side
        return None

    def clear(self, centre, radius) -> bool:
        """Physically possible: in the lung, not overlapping a tube, a finding or a cyst's air."""
        side = self.side(centre)
        if side is None or self.label(centre) == 0:
            return False
        for seg in self.segments:
            if segment_distance(centre[None, :], seg)[0] < seg.radius + radius + 0.2:
                return False
        for cyst in self.cysts:
            if np.linalg.norm(centre - np.array(cyst.centre)) < cyst.lumen_radius + radius + 0.2:
                return False
        return all(np.linalg.norm(centre - c) >= radius + r + 0.5 for c, r in self.taken)

    def label(self, lps) -> int:
        i, j, k = np.round(self.canvas.ijk(lps)).astype(int)
        if not all(0 <= v < n for v, n in zip((k, j, i), self.lobes.shape)):
            return 0
        return int(self.lobes[k, j, i])

    def in_fibrosis(self, centre) -> tuple[bool, float]:
        side = self.side(centre) or "right"
        weight = float(self.parenchyma.weight(side, *centre))
        return weight > RETICULATION_START, weight

    def _draw(self, probability) -> int:
        probability = np.asarray(probability, float)
        return int(self.rng.choice(len(probability), p=probability / probability.sum()))

    def _accept(self, centre, radius):
        if centre is None or not self.clear(centre, radius):
            return None
        self.taken.append((centre, radius))
        return centre

    # --- kinds of site -------------------------------------------------------------------------------
    def abutting(self, radius, tries=300):
        near = self.depth < 2.5
        for _ in range(tries):
            index = np.flatnonzero(near)[self._draw(self.weight[near] + 0.04)]
            side = LUNG_SIDES[self.side_of[index]]
            point = self.points[index]
            normal = _outward_normal(self.geo, side, point)
            surface = point + normal * self.depth[index]
            centre = surface - normal * radius
            if self.geo.lung_sdf(side, *centre) > -0.5 * radius:
                continue  # a corner or the mediastinum
            # the costal distance is approximate: move out until the sphere really reaches the surface
            for _ in range(4):
                gap = exact_gap(self.geo, self.directions, centre, radius)
                if gap <= 0.0:
                    break
                centre = centre + normal * (gap + 0.05)
            centre = centre + normal * self.rng.uniform(0.0, 0.3)  # indenting the pleura by up to 0.3 mm
            if (found := self._accept(centre, radius)) is not None:
                return found
        return None

    def reticulation(self, radius, tries=300):
        fibrotic = self.weight > RETICULATION_START + 0.05
        if not fibrotic.any():
            fibrotic = np.ones(len(self.weight), bool)
        for _ in range(tries):
            index = np.flatnonzero(fibrotic)[self._draw(self.weight[fibrotic] ** 2 + 1e-6)]
            centre = self.points[index] + self.rng.uniform(-0.5, 0.5, 3) * self.canvas.spacing
            if self.depth[index] < radius + 0.3:
                continue  # that would abut the pleura: the abutting kind's job
            if (found := self._accept(centre, radius)) is not None:
                return found
        return None

    def normal_lung(self, radius, tries=300):
        for _ in range(tries):
            index = int(self.rng.integers(len(self.sites)))
            centre = self.points[index] + self.rng.uniform(-0.5, 0.5, 3) * self.canvas.spacing
            if self.depth[index] < radius + 0.3:
                continue
            if (found := self._accept(centre, radius)) is not None:
                return found
        return None

    def beside_cyst(self, radius, tries=300):
        if not self.cysts:
            return None, None
        for _ in range(tries):
            cyst = self.cysts[int(self.rng.integers(len(self.cysts)))]
            direction = self.rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            # in the wall: from touching the air (lumen + radius) to just outside the wall
            distance = cyst.lumen_radius + radius + 0.2 + self.rng.uniform(0.0, cyst.wall)
            centre = np.array(cyst.centre) + direction * distance
            if (found := self._accept(centre, radius)) is not None:
                return found, cyst
        return None, None

    def near(self, anchor, anchor_radius, radius, gap_range=(1.0, 2.5), tries=200):
        """A cluster member whose edge is ``gap_range`` mm from the anchor PO's edge."""
        for _ in range(tries):
            direction = self.rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            gap = self.rng.uniform(*gap_range)
            centre = np.asarray(anchor) + direction * (anchor_radius + radius + gap)
            if (found := self._accept(centre, radius)) is not None:
                return found, gap
        return None, None


def exact_gap(geometry: ChestGeometry, directions, centre, radius) -> float:
    """Gap (mm) from the sphere's edge to the lung surface, from the lung's analytic shape:
    the smallest shell around the sphere that reaches outside the lung (bisection); 0 for a
    sphere that abuts (reaches) the surface."""
    side = "right" if geometry.lung_sdf("right", *centre) < 0 else "left"

    def reaches_out(gap):
        points = centre + directions * (radius + gap)
        return bool((geometry.lung_sdf(side, points[:, 0], points[:, 1], points[:, 2]) > 0).any())

    if reaches_out(0.0):
        return 0.0
    low, high = 0.0, 1.0
    while not reaches_out(high) and high < 64.0:
        low, high = high, high * 2.0
    for _ in range(20):
        middle = 0.5 * (low + high)
        low, high = (low, middle) if reaches_out(middle) else (middle, high)
    return 0.5 * (low + high)


def _outward_normal(geo: ChestGeometry, side: str, point) -> np.ndarray:
    h = 0.5
    gradient = np.array([(geo.costal_sdf(side, *(point + d)) - geo.costal_sdf(side, *(point - d))) / (2 * h)
                         for d in np.eye(3) * h])
    return gradient / max(float(np.linalg.norm(gradient)), 1e-6)
