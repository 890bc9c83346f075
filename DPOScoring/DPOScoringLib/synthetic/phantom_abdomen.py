"""An upper-abdomen phantom with no lungs: a scan the pipeline must refuse ("no lungs in the
field of view"), not score.

Body with fat and muscle, lower ribs, spine, aorta and cava, liver (right), spleen and kidneys
(posterior), a stomach with an air-fluid level (gas anterior when supine) and bowel: colon loops
with gas pockets 5-35 mm across and small-bowel loops with small bubbles. The same scanner
additions as the chest (table, noisy outside air, streaks, padding) apply. The truth has no
lungs, no lobes and no findings, and records the volume of gas inside the body.
"""

from __future__ import annotations

import numpy as np

from ..common.progress import Progress
from .phantom_anatomy import ChestGeometry

LIVER_HU, SPLEEN_HU, KIDNEY_HU, BOWEL_WALL_HU, FLUID_HU, GAS_HU = 60.0, 50.0, 35.0, 40.0, 15.0, -1000.0


def _ellipsoid(centre, axes):
    c, a = np.asarray(centre, float), np.asarray(axes, float)
    return lambda p: np.sum(((p - c) / a) ** 2, axis=-1) <= 1.0


def generate_abdomen(spec, progress: Progress):
    from .phantom import BLOOD_HU, CORTEX_HU, FAT_HU, MUSCLE_HU, RIB_HU, SPINE_HU, Canvas, finish_phantom

    rng = np.random.default_rng(spec.seed + 86028121)
    canvas = Canvas(spec)
    fov = np.array(spec.fov_mm)
    body = spec.body_mm or (0.47 * fov[0], 0.47 * fov[1])
    geo = ChestGeometry(half_width=float(body[0]), half_depth=float(body[1]), z0=0.0, height=fov[2])
    A, B, H = geo.half_width, geo.half_depth, fov[2]
    x = canvas.axis_mm(0)[None, :]
    y = canvas.axis_mm(1)[:, None]
    from .phantom_scanner import table_hu

    table = table_hu(geo, x, y, spec.posture == "prone", float(fov[0])) if spec.table else None
    for k, z in enumerate(canvas.axis_mm(2)):
        if k % 16 == 0:
            progress.step(0.5 * k / len(canvas.axis_mm(2)), "painting the abdomen")
        sl = canvas.hu[k]
        r = geo.body_radius(x, y)
        sl[r < 1.0] = FAT_HU
        sl[(r < 0.95) & (r > 0.88)] = MUSCLE_HU  # abdominal wall; fat inside (mesentery)
        if table is not None:
            sl[~np.isnan(table) & (r >= 1.0)] = table[~np.isnan(table) & (r >= 1.0)]
        sl[geo.rib_band(x, y, z) & (z > 0.5 * H)] = RIB_HU
        liver = ((x + 0.35 * A) / (0.55 * A)) ** 2 + ((y + 0.05 * B) / (0.75 * B)) ** 2 <= 1.0 - 0.3 * (1 - z / H)
        sl[liver & (r < 0.88)] = LIVER_HU
        spleen = ((x - 0.62 * A) / (0.2 * A)) ** 2 + ((y - 0.35 * B) / (0.3 * B)) ** 2 <= 1.0
        sl[spleen & (z > 0.3 * H)] = SPLEEN_HU
        for sign in (-1.0, 1.0):
            kidney = ((x - sign * 0.4 * A) / (0.14 * A)) ** 2 + ((y - 0.5 * B) / (0.22 * B)) ** 2 <= 1.0
            sl[kidney & (z < 0.7 * H)] = KIDNEY_HU
        spine = geo.spine_sdf(x, y)
        sl[spine < 0] = CORTEX_HU
        sl[spine < -2.0] = SPINE_HU
        sl[np.sqrt((x - 0.05 * A) ** 2 + (y - 0.3 * B) ** 2) < 10.0] = BLOOD_HU  # aorta
        sl[np.sqrt((x + 0.18 * A) ** 2 + (y - 0.25 * B) ** 2) < 11.0] = BLOOD_HU  # cava
    gas = []
    # stomach: fluid below, gas above the air-fluid level (anterior, non-dependent)
    stomach_c, stomach_a = np.array([0.3 * A, -0.25 * B, 0.65 * H]), np.array([0.25 * A, 0.35 * B, 0.2 * H])
    canvas.paint(stomach_c - stomach_a - 4, stomach_c + stomach_a + 4, _ellipsoid(stomach_c, stomach_a + 3),
                 BOWEL_WALL_HU, 2)
    canvas.paint(stomach_c - stomach_a - 1, stomach_c + stomach_a + 1, _ellipsoid(stomach_c, stomach_a), FLUID_HU, 2)
    level = stomach_c[1] - 0.2 * stomach_a[1]
    dependent = 1.0 if spec.posture == "prone" else -1.0  # gas rises to the non-dependent side

    def stomach_gas(p):
        return _ellipsoid(stomach_c, stomach_a)(p) & (dependent * (p[..., 1] - level) > 0)
    canvas.paint(stomach_c - stomach_a - 1, stomach_c + stomach_a + 1, stomach_gas, GAS_HU, 2)
    gas.append(("stomach", stomach_c))
    # colon and small bowel: loops with gas pockets of 5-35 mm
    for n in range(int(rng.integers(10, 16))):
        size = rng.uniform(5.0, 35.0) if n < 8 else rng.uniform(3.0, 10.0)
        angle = rng.uniform(0, 2 * np.pi)
        rad = rng.uniform(0.2, 0.7)
        centre = np.array([rad * 0.8 * A * np.cos(angle), -abs(rad * 0.6 * B * np.sin(angle)) + 0.1 * B,
                           rng.uniform(0.1, 0.6) * H])
        axes = np.array([size / 2, size / 2 * rng.uniform(0.6, 1.0), size / 2 * rng.uniform(0.8, 2.0)])
        canvas.paint(centre - axes - 4, centre + axes + 4, _ellipsoid(centre, axes + 2.0), BOWEL_WALL_HU, 2)
        canvas.paint(centre - axes - 1, centre + axes + 1, _ellipsoid(centre, axes), GAS_HU, 2)
        gas.append(("bowel", centre))
    progress.step(0.75, "blurring and adding noise")
    lobes = np.zeros(canvas.shape, np.uint8)
    inside = geo.body_radius(x, y) < 1.0
    gas_ml = float(((canvas.hu < -500) & inside[None]).sum()) * float(np.prod(spec.spacing)) / 1000.0
    phantom = finish_phantom(canvas, geo, spec, lobes, lobes.copy(), [], [], [], progress)
    phantom.truth["anatomy"] = "upper abdomen (no lungs)"
    phantom.truth["gas_inside_body_ml"] = round(gas_ml, 1)
    return phantom
