"""What a real scanner and room add around the synthetic chest: a patient table, noisy outside
air with streaks, padding outside the reconstruction circle, a prone posture, a cropped field of
view and a patient lying off the isocentre.

Values are those seen on real scans, not detector parameters: outside air reads about -980 HU
with a standard deviation of 40-60 HU on sharp kernels (the issue's scans: mean -942 to -967);
scanners write -2000 or -3024 outside the scan circle; a table is a carbon-fibre shell
(~200 HU) around a foam core (~-900 HU, lung-like!) under the patient (in front of a prone one).
A prone patient is stored as scanners store it: the anatomy is turned 180 degrees about the
body axis in the image and the header's direction cosines say so (LPS stays truthful).
"""

from __future__ import annotations

import numpy as np

from .phantom_anatomy import ChestGeometry

OUTSIDE_AIR_HU = -980.0
OUTSIDE_AIR_SD = 50.0

# Scanner and anatomy variants of PhantomSpec.fibrosis_preset used by the lung-mask tests and
# benchmarks/realistic_detection_report.py: options of the preset, by name.
SCANNER_VARIANTS = {
    "supine-fibrosis": dict(seed=21),
    "healthy-padding-3024": dict(seed=22, fibrosis=0.0, ground_glass=False, consolidation=False,
                                 honeycomb_clusters=0, padding_hu=-3024),
    "sharp-kernel-air-955": dict(seed=27, outside_air_hu=-955.0, streaks=True),
    "prone": dict(seed=23, posture="prone", padding_hu=-3024),
    "crop-right": dict(seed=24, crop="right", fused_lungs=False, patient_offset_mm=(40.0, 0.0)),
    "crop-left": dict(seed=25, crop="left", fused_lungs=False, patient_offset_mm=(-30.0, 0.0), padding_hu=None),
}
TABLE_SHELL_HU, TABLE_FOAM_HU = 200.0, -900.0


def outside_body(geo: ChestGeometry, x, y) -> np.ndarray:
    """2D mask (j, i) of the air around the body (the table is painted later over it)."""
    return geo.body_radius(x, y) >= 1.0


def table_hu(geo: ChestGeometry, x, y, prone: bool, width: float) -> np.ndarray:
    """2D map (j, i) of the table's HU (NaN where no table): a concave top that cradles the
    body 3 mm below the skin (behind a supine patient, in front of a prone one)."""
    sign = -1.0 if prone else 1.0
    depth = sign * y  # distance towards the table side
    top = geo.half_depth + 3.0 - 0.0015 * x ** 2
    rel = depth - top
    out = np.full(np.broadcast_shapes(np.shape(x), np.shape(y)), np.nan, np.float32)
    across = np.abs(np.broadcast_to(x, out.shape)) <= width / 2.0
    rel = np.broadcast_to(rel, out.shape)
    out[across & (rel >= 0) & (rel < 16.0)] = TABLE_SHELL_HU
    out[across & (rel >= 2.0) & (rel < 14.0)] = TABLE_FOAM_HU
    return out


def noisy_outside_air(array: np.ndarray, outside: np.ndarray, rng: np.random.Generator, base_sd: float,
                      level_hu: float = OUTSIDE_AIR_HU) -> None:
    """Raise the outside air to ``level_hu`` and its noise to ~50 HU sd (in place; the array
    already carries the in-body noise ``base_sd``), with a slow slice-to-slice drift."""
    extra = float(np.sqrt(max(OUTSIDE_AIR_SD ** 2 - base_sd ** 2, 0.0)))
    count = int(outside.sum())
    for k in range(array.shape[0]):
        level = level_hu - (-1000.0) + rng.normal(0.0, 8.0)
        array[k][outside] += (level + rng.normal(0.0, extra, count)).astype(np.float32)


def add_streaks(array: np.ndarray, x, y, source: tuple[float, float], rng: np.random.Generator,
                fraction: float = 0.5) -> None:
    """Streak artefacts (in place): on ``fraction`` of the slices, 1-3 thin bright or dark lines
    through a dense structure (``source``, e.g. the spine), across the whole slice."""
    xx, yy = np.broadcast_arrays(x, y)
    for k in range(array.shape[0]):
        if rng.random() >= fraction:
            continue
        for _ in range(int(rng.integers(1, 4))):
            angle = rng.uniform(0.0, np.pi)
            normal = np.array([-np.sin(angle), np.cos(angle)])
            distance = (xx - source[0]) * normal[0] + (yy - source[1]) * normal[1]
            width = rng.uniform(0.8, 2.0)
            amplitude = rng.choice([-1.0, 1.0]) * rng.uniform(30.0, 80.0)
            array[k] += (amplitude * np.exp(-0.5 * (distance / width) ** 2)).astype(np.float32)


def scan_circle_padding(array: np.ndarray, x, y, centre: tuple[float, float], radius: float, value: int) -> None:
    """Write the scanner's padding value outside the reconstruction circle (in place)."""
    outside = ((x - centre[0]) ** 2 + (y - centre[1]) ** 2) > radius ** 2
    array[:, outside] = value


def prone_flip(arrays: list[np.ndarray], origin, spacing):
    """Turn the stored image 180 degrees about z as a scanner stores a prone patient: array
    columns and rows reversed, direction cosines (-1, -1, 1), origin at the new first voxel.
    Returns the flipped arrays, the new origin and the direction (LPS positions unchanged)."""
    flipped = [np.ascontiguousarray(a[:, ::-1, ::-1]) for a in arrays]
    nk, nj, ni = arrays[0].shape
    origin = np.array(origin, float) + np.array([(ni - 1) * spacing[0], (nj - 1) * spacing[1], 0.0])
    return flipped, origin, (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def crop_columns(arrays: list[np.ndarray], origin, spacing, x_lo: float, x_hi: float):
    """Keep the columns whose x (LPS mm) lies in [x_lo, x_hi] (identity direction)."""
    ni = arrays[0].shape[2]
    x = origin[0] + np.arange(ni) * spacing[0]
    keep = np.nonzero((x >= x_lo) & (x <= x_hi))[0]
    lo, hi = int(keep[0]), int(keep[-1]) + 1
    cropped = [np.ascontiguousarray(a[:, :, lo:hi]) for a in arrays]
    origin = np.array(origin, float)
    origin[0] = x[lo]
    return cropped, origin, (x[lo] - spacing[0] / 2.0, x[hi - 1] + spacing[0] / 2.0)
