"""A small chest phantom whose fissures are NOT the template's, to test fissure finding.

Two lungs (ellipsoids with a domed base) in soft tissue, a tree of vessels radiating from each
hilum (the clutter a fissure filter must ignore), and four fissure surfaces drawn as thin
(``FISSURE_MM``) sheets ``FISSURE_HU`` above the lung with partial volume: each oblique fissure
with a random inclination and height, the horizontal fissure and the lingular boundary with a
random height and tilt. Options: incomplete fissures (a random part of each surface is not drawn;
the horizontal fissure always lacks its medial part) and fibrosis (reticular and ground-glass
densities in the lower, posterior lungs). The truth lobes follow the drawn surfaces, also where a
fissure is not drawn (as in a patient: the lobe boundary exists where the fissure is incomplete).

This module builds its own simple anatomy; it does not use or change ``phantom.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..ct.ct_image import Geometry

LUNG_HU, TISSUE_HU, VESSEL_HU = -850.0, 40.0, 40.0
FISSURE_HU = 110.0   # above the lung, before blurring (a ~1 mm sheet: ~-750 HU after partial volume)
FISSURE_MM = 1.0


@dataclass
class FissurePhantomSpec:
    size_mm: tuple = (240.0, 190.0, 230.0)  # x, y, z
    spacing: tuple = (1.0, 1.0, 2.0)
    seed: int = 0
    incomplete: bool = True
    fibrosis: bool = True
    vessels_per_lung: int = 40
    noise_sd: float = 15.0
    fissures: bool = True  # False: vessels and fibrosis only (a lung whose fissures are not seen)


@dataclass
class FissurePhantom:
    hu: np.ndarray        # (k, j, i) int16
    lungs: np.ndarray     # 1 right, 2 left
    lobes: np.ndarray     # truth, spec labels 1-6
    geometry: Geometry
    surfaces: dict = field(default_factory=dict)  # name -> (a, b, c, d): z = a + b*y + c*x + d*x*y (mm)

    def image(self) -> sitk.Image:
        image = sitk.GetImageFromArray(self.hu)
        image.SetSpacing(self.geometry.spacing)
        image.SetOrigin(self.geometry.origin)
        return image

    def height(self, name: str, x, y):
        a, b, c, d = self.surfaces[name]
        return a + b * y + c * x + d * x * y


def _surfaces(rng: np.random.Generator) -> dict:
    """Random fissure surfaces (LPS mm; y grows posterior, z up; lungs centred on y = 0, z = 0)."""
    surfaces = {}
    for name, centre_x in (("RO", -62.0), ("LO", 62.0)):
        slope = np.tan(np.radians(rng.uniform(30.0, 55.0)))  # rises toward the back
        height = rng.uniform(-25.0, 5.0)                      # at the lung's centre
        twist = rng.uniform(-0.002, 0.002)
        side_tilt = rng.uniform(-0.15, 0.15)
        surfaces[name] = (height - side_tilt * centre_x - twist * 0.0, slope, side_tilt, twist)
    for name, oblique in (("RH", "RO"), ("LG", "LO")):
        a, b, c, d = surfaces[oblique]
        # flat-ish, crossing the oblique fissure in the lung's middle third
        height = a + b * rng.uniform(-20.0, 10.0) + c * (-62.0 if name == "RH" else 62.0)
        surfaces[name] = (height + rng.uniform(5.0, 20.0), rng.uniform(-0.12, 0.12), rng.uniform(-0.1, 0.1), 0.0)
    return surfaces


def generate_fissure_phantom(spec: FissurePhantomSpec | None = None) -> FissurePhantom:
    spec = spec or FissurePhantomSpec()
    rng = np.random.default_rng(spec.seed)
    spacing = np.array(spec.spacing, dtype=float)
    shape = tuple(int(round(s / d)) for s, d in zip(spec.size_mm[::-1], spacing[::-1]))  # k, j, i
    origin = -0.5 * np.array(spec.size_mm)
    geometry = Geometry(tuple(shape[::-1]), tuple(spacing), tuple(origin), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    z = origin[2] + np.arange(shape[0]) * spacing[2]
    y = origin[1] + np.arange(shape[1]) * spacing[1]
    x = origin[0] + np.arange(shape[2]) * spacing[0]
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij", sparse=True)
    lungs = np.zeros(shape, dtype=np.uint8)
    for label, centre_x in ((1, -62.0), (2, 62.0)):
        radial = ((xx - centre_x) / 48.0) ** 2 + (yy / 75.0) ** 2
        dome = -70.0 + 25.0 * np.cos(np.clip(np.sqrt(radial), 0, 1) * np.pi / 2)  # base rises to a dome
        inside = (radial + (zz / 100.0) ** 2 <= 1.0) & (zz >= dome)
        lungs[inside] = label
    hu = np.where(lungs > 0, LUNG_HU, TISSUE_HU).astype(np.float32)
    surfaces = _surfaces(rng)
    phantom = FissurePhantom(np.zeros(0, np.int16), lungs, np.zeros(0, np.uint8), geometry, surfaces)
    # truth lobes: the same rule as fissures.assign_lobes, on the true surfaces
    lobes = np.zeros(shape, dtype=np.uint8)
    heights = {name: phantom.height(name, xx, yy) for name in surfaces}
    right, left = lungs == 1, lungs == 2
    lobes[right] = np.where(zz < heights["RO"], 3, np.where(zz < heights["RH"], 2, 1))[right]
    lobes[left] = np.where(zz < heights["LO"], 6, np.where(zz < heights["LG"], 5, 4))[left]
    # fissure sheets with partial volume (distance along the surface normal)
    for name, (_, b, c, d) in (surfaces.items() if spec.fissures else ()):
        gx, gy = c + d * yy, b + d * xx
        distance = np.abs(zz - heights[name]) / np.sqrt(1.0 + gx ** 2 + gy ** 2)
        sheet = np.clip(1.0 - np.abs(distance) / (0.5 * FISSURE_MM + 0.5 * spacing[2]), 0.0, 1.0)
        sheet = sheet * (FISSURE_MM / (FISSURE_MM + spacing[2]))
        drawn = lungs == (1 if name in ("RO", "RH") else 2)
        if spec.incomplete:
            centre_x = -62.0 if name in ("RO", "RH") else 62.0
            gap_y = rng.uniform(-50.0, 50.0)
            gap = ((yy - gap_y) ** 2 + (xx - centre_x - rng.uniform(-20, 20)) ** 2) < rng.uniform(15.0, 30.0) ** 2
            drawn = drawn & ~gap
            if name in ("RH", "LG"):
                drawn = drawn & (np.abs(xx) > 40.0)  # the medial part is missing (common)
        hu += np.where(drawn, FISSURE_HU * sheet * 4.0, 0.0).astype(np.float32)
    # vessels: tubes from each hilum outward, tapering
    for centre_x, label in ((-62.0, 1), (62.0, 2)):
        hilum = np.array([centre_x - np.sign(centre_x) * 25.0, 10.0, 0.0])
        for _ in range(spec.vessels_per_lung):
            direction = rng.normal(size=3)
            direction[0] = abs(direction[0]) * np.sign(centre_x)
            direction /= np.linalg.norm(direction)
            length = rng.uniform(40.0, 90.0)
            radius = rng.uniform(1.0, 3.0)
            _paint_tube(hu, lungs, label, geometry, hilum, hilum + direction * length, radius)
    if spec.fibrosis:
        texture = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), (1.0, 2.0, 2.0))
        reticular = np.abs(texture) < 0.02
        basal = (zz < -20.0) & (yy > 10.0)
        hu += np.where((lungs > 0) & basal & reticular, 250.0, 0.0).astype(np.float32)
        ground_glass = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), 4.0) > 0.03
        hu += np.where((lungs > 0) & basal & ground_glass, 120.0, 0.0).astype(np.float32)
    hu = ndimage.gaussian_filter(hu, 0.6 / spacing[::-1])
    hu += rng.normal(0.0, spec.noise_sd, size=shape).astype(np.float32)
    phantom.hu = np.clip(hu, -1024, 3000).astype(np.int16)
    phantom.lobes = lobes
    return phantom


def _paint_tube(hu, lungs, label, geometry, start, end, radius):
    spacing = np.array(geometry.spacing)
    origin = np.array(geometry.origin)
    low = np.floor((np.minimum(start, end) - radius - 1 - origin) / spacing).astype(int)
    high = np.ceil((np.maximum(start, end) + radius + 1 - origin) / spacing).astype(int)
    low = np.maximum(low, 0)
    high = np.minimum(high, np.array(lungs.shape[::-1]) - 1)
    if np.any(high <= low):
        return
    box = tuple(slice(lo, hi + 1) for lo, hi in zip(low[::-1], high[::-1]))
    zz, yy, xx = np.meshgrid(*[origin[a] + np.arange(low[a], high[a] + 1) * spacing[a] for a in (2, 1, 0)],
                             indexing="ij")
    p = np.stack([xx, yy, zz], axis=-1)
    axis = end - start
    t = np.clip(((p - start) @ axis) / (axis @ axis), 0.0, 1.0)
    distance = np.linalg.norm(p - (start + t[..., None] * axis), axis=-1)
    local_radius = radius * (1.0 - 0.6 * t)
    inside = (distance <= local_radius) & (lungs[box] == label)
    hu[box][inside] = VESSEL_HU
