"""Geometry of the synthetic chest phantom: body, ribs, spine, heart, aorta, two lungs with six
lobes (curved fissure surfaces), airway and vessel trees. Everything is in LPS millimetres with
the chest centred on x = y = 0 (patient left is +x, posterior +y, superior +z).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LUNG_SIDES = ("right", "left")


@dataclass(frozen=True)
class Segment:
    """A tube from p0 to p1 (mm) with a radius (mm)."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class ChestGeometry:
    half_width: float  # A: body half-width (x)
    half_depth: float  # B: body half-depth (y)
    z0: float  # lowest z of the field of view
    height: float  # Lz: field of view in z
    fused_lungs: bool = False  # anterior recesses that meet at a thin junction line
    junction_mm: float = 1.0  # thickness of the anterior junction line (4 pleural layers)
    ribs_touch_lung: bool = False  # ribs lie on the lung surface (no gap), as in a real chest

    # --- body, bone, mediastinum ------------------------------------------------------------------
    def body_radius(self, x, y):
        """Normalised elliptic radius of the body cross-section (1 at the skin)."""
        return np.sqrt((x / self.half_width) ** 2 + (y / self.half_depth) ** 2)

    def _rib_levels(self, x, y, z):
        pitch = 0.11 * self.height
        phase = np.mod(z - self.z0 - 0.2 * pitch + 0.25 * y, pitch)
        anterior_gap = (y < -0.55 * self.half_depth) & (np.abs(x) < 0.35 * self.half_width)
        return (phase < 0.32 * pitch) & ~anterior_gap

    def rib_band(self, x, y, z):
        """Ribs: an elliptic band at 0.875-0.925 of the body radius, in bands along z, open
        anteriorly (costal cartilage)."""
        r = self.body_radius(x, y)
        return (r > 0.875) & (r < 0.925) & self._rib_levels(x, y, z)

    def rib_shell(self, x, y, z, thickness: float = 6.0):
        """Ribs lying on the lung surface: signed distance (mm, negative inside the rib) of a
        ``thickness`` mm shell just outside the costal surface of either lung (no gap, as in a
        real chest, where only the pleura separates rib and lung), in bands along z."""
        costal = np.minimum(self._ellipsoid_sdf("right", x, y, z)[0], self._ellipsoid_sdf("left", x, y, z)[0])
        shell = np.abs(costal - thickness / 2.0) - thickness / 2.0
        outward = self.body_radius(x, y) > 0.55
        return np.where(outward & self._rib_levels(x, y, z), shell, np.inf)

    def spine_sdf(self, x, y):
        cx, cy, radius = 0.0, 0.64 * self.half_depth, 0.13 * self.half_width
        return np.sqrt((x - cx) ** 2 + (y - cy) ** 2) - radius

    def heart_q(self, x, y, z):
        c = (0.06 * self.half_width, -0.30 * self.half_depth, self.z0 + 0.22 * self.height)
        a = (0.30 * self.half_width, 0.28 * self.half_depth, 0.20 * self.height)
        return ((x - c[0]) / a[0]) ** 2 + ((y - c[1]) / a[1]) ** 2 + ((z - c[2]) / a[2]) ** 2

    def aorta_sdf(self, x, y):
        """The descending aorta, beside the spine."""
        return np.sqrt((x - 0.14 * self.half_width) ** 2 + (y - 0.42 * self.half_depth) ** 2) - 11.0

    def great_vessels_sdf(self, x, y, z):
        """Ascending aorta and pulmonary trunk above the heart (vertical cylinders)."""
        ascending = np.sqrt(x ** 2 + (y + 0.12 * self.half_depth) ** 2) - 13.0
        ascending = np.maximum(ascending, np.maximum(self.z0 + 0.22 * self.height - z,
                                                     z - self.z0 - 0.72 * self.height))
        trunk = np.sqrt((x - 0.14 * self.half_width) ** 2 + (y + 0.26 * self.half_depth) ** 2) - 12.0
        trunk = np.maximum(trunk, np.maximum(self.z0 + 0.30 * self.height - z,
                                             z - self.z0 - 0.55 * self.height))
        return np.minimum(ascending, trunk)

    # --- lungs ------------------------------------------------------------------------------------
    def lung_centre(self, side: str) -> tuple[float, float]:
        sign = -1.0 if side == "right" else 1.0
        return sign * 0.46 * self.half_width, 0.05 * self.half_depth

    def lung_semi_axes(self) -> tuple[float, float, float]:
        return 0.36 * self.half_width, 0.55 * self.half_depth, 0.60 * self.height

    def lung_apex_z(self) -> float:
        return self.z0 + 0.95 * self.height

    def _ellipsoid_sdf(self, side: str, x, y, z):
        cx, cy = self.lung_centre(side)
        ax, ay, az = self.lung_semi_axes()
        cz = self.lung_apex_z() - az
        rho2 = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2
        q = np.sqrt(rho2 + ((z - cz) / az) ** 2)
        ellipsoid = (q - 1.0) * min(ax, ay)
        if self.fused_lungs:
            ellipsoid = _smooth_min(ellipsoid, self._anterior_recess_sdf(side, x, y, z), 20.0)
        return ellipsoid, rho2

    def _anterior_recess_sdf(self, side: str, x, y, z):
        """The lung's anterior recess, which reaches the midline in front of the mediastinum
        (the anterior junction line, ``junction_mm`` thick between the two lungs)."""
        sign = -1.0 if side == "right" else 1.0
        c = (sign * 0.22 * self.half_width, -0.42 * self.half_depth, self.z0 + 0.55 * self.height)
        a = (0.245 * self.half_width, 0.26 * self.half_depth, 0.36 * self.height)
        q = np.sqrt(((x - c[0]) / a[0]) ** 2 + ((y - c[1]) / a[1]) ** 2 + ((z - c[2]) / a[2]) ** 2)
        recess = (q - 1.0) * min(a[0], a[1])
        return np.maximum(recess, self.junction_mm / 2.0 - sign * x)

    def costal_sdf(self, side: str, x, y, z):
        """Signed distance (mm) to the lung's costal and diaphragmatic surface only (not the
        mediastinal one): where ribs lie and where UIP-like fibrosis is subpleural."""
        ellipsoid, rho2 = self._ellipsoid_sdf(side, x, y, z)
        floor = self.z0 + self.height * (0.06 + 0.12 * np.clip(1.0 - rho2, 0.0, 1.0))
        return np.maximum(ellipsoid, floor - z)

    def lung_sdf(self, side: str, x, y, z):
        """Approximate signed distance (mm, negative inside) to one lung's surface."""
        costal = self.costal_sdf(side, x, y, z)
        heart = (np.sqrt(self.heart_q(x, y, z)) - 1.0) * 0.28 * self.half_depth
        return np.maximum.reduce([costal, 4.0 - heart, 4.0 - self.aorta_sdf(x, y),
                                  4.0 - self.great_vessels_sdf(x, y, z), 4.0 - self.spine_sdf(x, y)])

    # --- lobes: fissure surfaces ------------------------------------------------------------------
    def hilum(self, side: str) -> tuple[float, float, float]:
        sign = -1.0 if side == "right" else 1.0
        return sign * 0.30 * self.half_width, 0.08 * self.half_depth, self.z0 + 0.50 * self.height

    def oblique_fissure_z(self, side: str, x, y):
        """z of the oblique fissure: high posteriorly, low anteriorly, gently curved."""
        hx, hy, hz = self.hilum(side)
        cx, _ = self.lung_centre(side)
        curvature = 0.0012 * (x - cx) ** 2 - 0.0008 * (y - hy) ** 2
        return hz + 0.85 * (y - hy) + curvature

    def horizontal_fissure_z(self, x, y):
        hx, hy, hz = self.hilum("right")
        return hz + 0.08 * self.height - 0.10 * (y - hy) + 0.0006 * (x - hx) ** 2

    def lingula_boundary_z(self, x, y):
        hx, hy, hz = self.hilum("left")
        return hz + 0.05 * self.height - 0.20 * (y - hy) + 0.0006 * (x - hx) ** 2

    def lobe_label(self, side: str, x, y, z):
        """Spec label values (1-6) of points inside the given lung."""
        below_oblique = z < self.oblique_fissure_z(side, x, y)
        if side == "right":
            middle = z < self.horizontal_fissure_z(x, y)
            return np.where(below_oblique, 3, np.where(middle, 2, 1)).astype(np.uint8)
        lingula = z < self.lingula_boundary_z(x, y)
        return np.where(below_oblique, 6, np.where(lingula, 5, 4)).astype(np.uint8)

    # --- trees ------------------------------------------------------------------------------------
    def airway_segments(self) -> list[Segment]:
        top = (0.0, 0.15 * self.half_depth, self.z0 + self.height + 5.0)
        carina = (0.0, 0.15 * self.half_depth, self.z0 + 0.58 * self.height)
        segments = [Segment(top, carina, 9.0)]
        for side in LUNG_SIDES:
            hilum = self.hilum(side)
            start = (carina[0], carina[1], carina[2] + 8.0)  # inside the trachea: no pinch
            segments.append(Segment(start, hilum, 6.5))
            cx, cy = self.lung_centre(side)
            for dz, dy in ((0.18, -0.05), (-0.05, -0.35), (-0.2, 0.35)):
                end = (hilum[0] + 0.5 * (cx - hilum[0]), hilum[1] + dy * self.half_depth,
                       hilum[2] + dz * self.height)
                segments.append(Segment(hilum, end, 3.5))
        return segments

    def vessel_segments(self, rng: np.random.Generator, depth: int = 4) -> list[Segment]:
        segments: list[Segment] = []
        for side in LUNG_SIDES:
            hx, hy, hz = self.hilum(side)
            root = (hx, hy - 12.0, hz - 10.0)
            cx, cy = self.lung_centre(side)
            for target_dz in (0.25, 0.0, -0.25):
                direction = np.array([cx - hx, cy - hy - 5.0, target_dz * self.height])
                self._grow(side, np.array(root), direction / np.linalg.norm(direction),
                           0.18 * self.half_width, 4.0, depth, rng, segments)
        return segments

    def _grow(self, side, start, direction, length, radius, depth, rng, segments):
        end = start + direction * length
        if self.lung_sdf(side, *end) > -2.0 - radius and depth < 4:
            return
        segments.append(Segment(tuple(start), tuple(end), radius))
        if depth == 0 or radius < 1.2:
            return
        for _ in range(2):
            turn = rng.normal(0.0, 0.45, 3)
            child = direction + turn
            child /= np.linalg.norm(child)
            self._grow(side, end, child, length * 0.8, radius * 0.72, depth - 1, rng, segments)


def _smooth_min(a, b, k: float):
    """A union of two distance fields without a notch where they meet (polynomial smooth min)."""
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k / 4.0


def segment_distance(points: np.ndarray, segment: Segment) -> np.ndarray:
    """Distance (mm) from each point (..., 3) to a segment."""
    p0 = np.asarray(segment.p0, dtype=np.float64)
    d = np.asarray(segment.p1, dtype=np.float64) - p0
    t = np.clip(((points - p0) @ d) / max(float(d @ d), 1e-9), 0.0, 1.0)
    return np.linalg.norm(points - (p0 + t[..., None] * d), axis=-1)
