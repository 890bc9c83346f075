"""Lung parenchyma of the synthetic phantom: mild texture and UIP-like fibrosis.

Healthy lung is not a flat -850 HU: it runs from about -870 HU (non-dependent) to -820 HU
(dependent, posterior when supine, anterior when prone) with a few HU of smooth texture.

The fibrosis follows the usual interstitial pneumonia (UIP) pattern: subpleural (costal and
diaphragmatic surface, not mediastinal), basal and posterior predominant. Its severity map
``weight`` (0-1) drives, from mild to severe:

* ground glass: smooth patches of -600 to -400 HU, a little deeper than the reticulation;
* reticulation: a net of thin (0.5-1 mm) walls of 0-50 HU, the faces of random cells 3-8 mm
  across (an irregular 3D Voronoi foam: sheets in 3D, lines in any section);
* honeycombing: clusters of thick-walled (1-2 mm, 0-50 HU) air cysts 3-10 mm across, stacked
  in one to three layers at the lung surface (``honeycomb_cysts``);
* optionally a thin (2-4 mm) subpleural consolidation strip in the most severe, posterior-basal
  region.

All of it lies inside the lung: the lung is bounded by the chest wall, not by an air threshold,
and the truth lung mask includes the fibrosis. Nothing here uses a detector parameter; sizes
and densities come from the radiology of UIP (cysts 3-10 mm, walls 1-3 mm; reticular lines of
soft-tissue density; ground glass -700 to -300 HU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .phantom_anatomy import ChestGeometry

RETICULATION_HU = (0.0, 50.0)
GROUND_GLASS_HU = (-600.0, -400.0)
CONSOLIDATION_HU = 35.0
CYST_WALL_HU = (0.0, 50.0)
CYST_AIR_HU = -990.0
HEALTHY_HU = (-870.0, -820.0)  # non-dependent, dependent
CELL_MM = (3.0, 8.0)
RETICULATION_START = 0.15  # fibrosis weight where the first (sparsest) walls appear


@dataclass(frozen=True)
class Cyst:
    centre: tuple[float, float, float]
    lumen_radius: float
    wall: float
    side: str

    @property
    def outer_radius(self) -> float:
        return self.lumen_radius + self.wall

    def to_dict(self) -> dict:
        return {"lps": [round(float(v), 3) for v in self.centre], "diameter_mm": round(2 * self.lumen_radius, 2),
                "wall_mm": round(self.wall, 2), "lung": self.side}


def _pair_hash(a: np.ndarray, b: np.ndarray, salt: float) -> np.ndarray:
    """A reproducible pseudo-random number in [0, 1) for each unordered pair of cell ids."""
    lo, hi = np.minimum(a, b).astype(np.float64), np.maximum(a, b).astype(np.float64)
    value = np.sin(lo * 12.9898 + hi * 78.233 + salt * 37.719) * 43758.5453
    return value - np.floor(value)


class Parenchyma:
    """HU of the lung parenchyma per slice (texture, ground glass, reticulation, consolidation)
    and the fibrosis weight, for one phantom."""

    def __init__(self, geo: ChestGeometry, rng: np.random.Generator, fov_lo, fov_hi, severity: float = 0.0,
                 ground_glass: bool = False, consolidation: bool = False, prone: bool = False,
                 texture: bool = True):
        self.geo, self.severity, self.prone = geo, float(severity), prone
        self.ground_glass, self.consolidation, self.texture = ground_glass, consolidation, texture
        self.lo, self.hi = np.asarray(fov_lo, float), np.asarray(fov_hi, float)
        # smooth random fields on a 4 mm grid (texture; ground-glass patches; ground-glass density)
        self.coarse_mm = 4.0
        shape = tuple(int(np.ceil((h - lo) / self.coarse_mm)) + 2 for lo, h in zip(self.lo[::-1], self.hi[::-1]))
        self.fields = []
        for sigma in (1.0, 2.5, 3.0):
            field = ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")
            self.fields.append((field / max(float(field.std()), 1e-6)).astype(np.float32))
        self.tree = None
        if self.severity > 0:
            volume = float(np.prod(self.hi - self.lo))
            n = int(volume / (0.5 * (CELL_MM[0] + CELL_MM[1])) ** 3)
            self.seeds = self.lo + rng.random((n, 3)) * (self.hi - self.lo)
            self.tree = cKDTree(self.seeds)
            self.line_half_width = 0.25 + 0.25 * rng.random(n)  # per cell: walls 0.5-1 mm

    # --- fields ----------------------------------------------------------------------------------
    def _coarse(self, index: int, x, y, z) -> np.ndarray:
        field = self.fields[index]
        coords = [(np.broadcast_to(v, np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(z))) - lo)
                  / self.coarse_mm for v, lo in zip((z, y, x), self.lo[::-1])]
        return ndimage.map_coordinates(field, coords, order=1, mode="nearest")

    def weight(self, side: str, x, y, z, depth_scale: float = 1.0) -> np.ndarray:
        """Fibrosis severity 0-1: subpleural (costal and diaphragmatic surface), basal and
        posterior predominant (anatomical posterior, whatever the posture)."""
        if self.severity <= 0:
            return np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(z)), np.float32)
        geo = self.geo
        depth = -geo.costal_sdf(side, x, y, z)
        _, cy = geo.lung_centre(side)
        _, ay, _ = geo.lung_semi_axes()
        apex, base = geo.lung_apex_z(), geo.z0 + 0.06 * geo.height
        basal = np.clip((apex - z) / (apex - base), 0.0, 1.0) ** 1.5
        posterior = np.clip(0.5 + (y - cy) / (2.0 * ay), 0.0, 1.0)
        band = depth_scale * (3.0 + 15.0 * self.severity * basal * (0.4 + 0.6 * posterior))
        weight = (self.severity * np.clip(1.0 - depth / band, 0.0, 1.0) * (0.15 + 0.85 * basal)
                  * (0.3 + 0.7 * posterior))
        return np.clip(weight, 0.0, 1.0).astype(np.float32)

    # --- one slice ---------------------------------------------------------------------------------
    def slice_hu(self, side: str, x, y, z: float, inside: np.ndarray) -> np.ndarray:
        """Parenchyma HU on one axial slice (broadcast to ``inside``'s shape); only the voxels in
        ``inside`` (those the lung covers) are computed."""
        geo = self.geo
        out = np.full(inside.shape, float(np.mean(HEALTHY_HU)), np.float32)
        rows, cols = np.nonzero(inside)
        if len(rows) == 0:
            return out
        xs = np.broadcast_to(x, inside.shape)[rows, cols]
        ys = np.broadcast_to(y, inside.shape)[rows, cols]
        zs = np.full(len(rows), z, np.float64)
        _, cy = geo.lung_centre(side)
        _, ay, _ = geo.lung_semi_axes()
        dependent = np.clip(0.5 + (ys - cy) / (2.0 * ay), 0.0, 1.0)
        if self.prone:
            dependent = 1.0 - dependent
        hu = HEALTHY_HU[0] + (HEALTHY_HU[1] - HEALTHY_HU[0]) * dependent
        if self.texture:
            hu = hu + 6.0 * self._coarse(0, xs, ys, zs)
        if self.severity > 0:
            weight = self.weight(side, xs, ys, zs)
            if self.ground_glass:
                patch = self._coarse(1, xs, ys, zs)
                deep = self.weight(side, xs, ys, zs, depth_scale=1.8)
                strength = np.clip(3.0 * (deep * (1.0 + 0.6 * patch) - 0.2), 0.0, 1.0)
                target = np.mean(GROUND_GLASS_HU) + 0.5 * np.ptp(GROUND_GLASS_HU) * np.tanh(self._coarse(2, xs, ys, zs))
                hu = hu + strength * (target - hu)
            if self.consolidation:
                depth = -geo.costal_sdf(side, xs, ys, zs)
                thickness = 2.0 + 2.0 * np.clip(self._coarse(2, xs, ys, zs), 0.0, 1.0)
                strip = (weight > 0.75) & (depth < thickness)
                hu = np.where(strip, CONSOLIDATION_HU, hu)
            hu = self._reticulation(hu, weight, xs, ys, zs)
        out[rows, cols] = hu
        return out

    def _reticulation(self, hu, weight, xs, ys, zs):
        net = weight > RETICULATION_START
        if not net.any():
            return hu
        points = np.stack([xs[net], ys[net], zs[net]], axis=1)
        _, index = self.tree.query(points, k=2)
        s1, s2 = self.seeds[index[:, 0]], self.seeds[index[:, 1]]
        normal = s2 - s1
        length = np.maximum(np.linalg.norm(normal, axis=1), 1e-6)
        # distance from the point to the bisector plane of its two nearest seeds = the cell wall
        distance = (np.sum((points - s1) ** 2, axis=1) - np.sum((points - s2) ** 2, axis=1)) / (-2.0 * length)
        distance = np.abs(distance)
        half = self.line_half_width[np.minimum(index[:, 0], index[:, 1])]
        occupancy = np.clip(0.5 + (half - distance) / 0.4, 0.0, 1.0)
        # the net thickens with severity: each wall appears above its own weight threshold
        threshold = RETICULATION_START + 0.6 * _pair_hash(index[:, 0], index[:, 1], 1.0)
        occupancy = occupancy * np.clip((weight[net] - threshold) / 0.1, 0.0, 1.0)
        value = RETICULATION_HU[0] + np.ptp(RETICULATION_HU) * _pair_hash(index[:, 0], index[:, 1], 2.0)
        result = hu.copy()
        result[net] = hu[net] * (1.0 - occupancy) + value * occupancy
        return result


def place_honeycomb(geo: ChestGeometry, parenchyma: Parenchyma, rng: np.random.Generator, n_clusters: int,
                    cysts_per_cluster: tuple[int, int] = (6, 16)) -> list[Cyst]:
    """Clusters of thick-walled cysts (lumen 3-10 mm, wall 1-2 mm) stacked from the lung surface
    inward, where the fibrosis is most severe. Neighbouring cysts share walls; lumens never merge."""
    cysts: list[Cyst] = []
    if n_clusters <= 0 or parenchyma.severity <= 0:
        return cysts
    ax, ay, az = geo.lung_semi_axes()
    sites = []
    for side in ("right", "left"):
        cx, cy = geo.lung_centre(side)
        n = 6000
        points = np.stack([cx + rng.uniform(-ax, ax, n), cy + rng.uniform(-ay, ay, n),
                           geo.z0 + rng.uniform(0.05, 0.6, n) * geo.height], axis=1)
        surface = np.abs(geo.costal_sdf(side, *points.T)) < 1.5
        inside = geo.lung_sdf(side, *points.T) < 0
        points = points[surface & inside]
        weight = parenchyma.weight(side, *points.T)
        sites += [(side, p, w) for p, w in zip(points, weight) if w > 0.6]
    if not sites:
        return cysts
    chosen = rng.choice(len(sites), size=min(n_clusters, len(sites)), replace=False,
                        p=np.array([w ** 3 for _, _, w in sites]) / sum(w ** 3 for _, _, w in sites))
    for site in chosen:
        side, centre, _ = sites[site]
        target = int(rng.integers(*cysts_per_cluster))
        own: list[Cyst] = []
        for _ in range(target * 40):
            if len(own) >= target:
                break
            lumen = rng.uniform(1.5, 5.0)
            wall = rng.uniform(1.0, 2.0)
            spot = centre + rng.normal(0.0, 5.0 + 0.8 * len(own), 3)
            normal = _outward_normal(geo, side, spot)
            depth = geo.costal_sdf(side, *spot)
            layer = rng.choice([0.0, 0.0, 1.0, 2.0]) if own else 0.0
            inward = lumen + wall + layer * (lumen + wall) * 1.3
            cyst_centre = spot - normal * (depth + inward)
            if geo.lung_sdf(side, *cyst_centre) > -(lumen + 0.5 * wall):
                continue  # the mediastinum or a corner: keep cysts inside the lung
            ok = True
            for other in cysts + own:
                gap = np.linalg.norm(cyst_centre - np.array(other.centre))
                if gap < lumen + other.lumen_radius + min(wall, other.wall):
                    ok = False
                    break
            if ok:
                own.append(Cyst(tuple(float(v) for v in cyst_centre), float(lumen), float(wall), side))
        cysts += own
    return cysts


def _outward_normal(geo: ChestGeometry, side: str, point) -> np.ndarray:
    h = 0.5
    gradient = np.array([(geo.costal_sdf(side, *(point + d)) - geo.costal_sdf(side, *(point - d))) / (2 * h)
                         for d in np.eye(3) * h])
    return gradient / max(float(np.linalg.norm(gradient)), 1e-6)


def cyst_painters(cysts: list[Cyst], geo: ChestGeometry):
    """(lo, hi, inside, value) boxes to paint: all walls first, then all lumens, so that a
    shared wall never closes a neighbour's lumen. Walls stop at the lung surface."""
    jobs = []
    for cyst in cysts:
        c = np.array(cyst.centre)
        r = cyst.outer_radius

        def wall(p, c=c, r=r, side=cyst.side):
            return (np.linalg.norm(p - c, axis=-1) <= r) & (geo.lung_sdf(side, p[..., 0], p[..., 1], p[..., 2]) < 0)
        value = float(np.mean(CYST_WALL_HU))
        jobs.append((c - r - 1, c + r + 1, wall, value))
    for cyst in cysts:
        c = np.array(cyst.centre)
        r = cyst.lumen_radius
        jobs.append((c - r - 1, c + r + 1, lambda p, c=c, r=r: np.linalg.norm(p - c, axis=-1) <= r, CYST_AIR_HU))
    return jobs
