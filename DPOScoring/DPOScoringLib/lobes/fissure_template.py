"""The starting position of the four fissure surfaces, from anatomy and landmarks found in the CT.

Textbook anatomy (Gray's Anatomy, 41st ed., chapter "Lungs"; Standring 2016) places the fissures
relative to fixed structures, not to the lung's height:

* oblique fissure (right and left): from the posterior lung surface at about the level of the
  fourth-fifth thoracic vertebra, i.e. the level of the carina (T4-T5), running forward and
  downward to the diaphragmatic surface near the sixth costochondral junction, i.e. the
  anterior-inferior edge of the lung base;
* horizontal fissure: from the oblique fissure at the mid-axillary line, horizontally forward to
  the anterior border (fourth costal cartilage);
* lingular boundary (no fissure in most people): the lingula is the left counterpart of the middle
  lobe, so its upper boundary is built like the horizontal fissure: flat, at the height of the
  left oblique fissure at the lung's mid-axillary line.

Landmarks found in the CT: the carina (the airway tracker of ``airways.py``), each lung's posterior
and anterior extent, the height of its anterior base (lowest lung voxels of the anterior quarter of
the lung's lateral half, away from the heart) and its diaphragm dome.

A plane through the two oblique-fissure landmarks (carina level posteriorly, anterior base) was
the first template; on the real thorax CT it is far too shallow (16-25 degrees against 55-75
degrees seen) and, with the horizontal fissure and lingular boundary built on it, gave a middle
lobe of 6 % of the right lung and a lingula of 2 % of the left, where CT volumetry of healthy
adults gives the middle lobe 17 % of the right lung (Yamada et al. 2020, below). With the whole
lung in the field of view the template therefore takes the lobes' published volume shares as
its anatomy, the CT's own landmarks and lung volume as its frame:

* oblique fissure: a plane through the anterior-inferior landmark (where the textbook puts its
  lower end) inclined so that the lower lobe holds ``LOWER_LOBE_SHARE`` of the lung's volume;
* horizontal fissure / lingular boundary: flat (as the textbook's horizontal fissure), at the
  height that puts ``MIDDLE_SHARE`` of the lung between the oblique fissure and it. The fit
  places it again over the fitted oblique fissure (``fissure_fit.fit_fissures``).

With a lung cut by the field of view its volume is not known, and the two-landmark planes are kept.
The template is a plane per fissure; the fit (``fissure_fit.py``) then moves it to the fissure seen
in the image.

A field of view that cuts the lung (lung in the top or bottom slice over more than
``CUT_FRACTION`` of the lung's largest cross-section) is reported, and nothing is scaled to fill
it: a missing carina is placed ``CARINA_ABOVE_DOME_MM`` above the higher diaphragm dome (or
``CARINA_BELOW_APEX_MM`` below the apex), distances measured on the real thorax CT of the test
data (apex-to-bases, 2 mm; see Docs/lobes.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fissures import FISSURE_LUNG, FISSURES

CUT_FRACTION = 0.03
CARINA_ABOVE_DOME_MM = 76.0   # thorax CT: carina z -4.5 mm, higher (left) dome -80.5 mm (one CT only)
CARINA_BELOW_APEX_MM = 82.0   # thorax CT: higher apex +77.5 mm (one CT only)
SAMPLE_VOXELS = 200_000
# Lobar shares of each lung's volume, CT volumetry of 32 healthy volunteers, supine, inspiration
# (Yamada et al., Respiration 2020;99:598-605, doi:10.1159/000507265, table 3: right lung 53.6 %,
# RLL 26.5 %, RML 9.3 % (range 6.6-13.8); left lung 46.4 %, LLL 23.2 %, LUL with lingula 23.1 %
# of both lungs). The lingula, not measured there, is taken as the size of its homologue the
# middle lobe (two bronchopulmonary segments each, of the left lung's 8-9 and the right's 10):
# 9.3 % of both lungs = 20 % of the left lung, 40 % of its upper lobe.
LOWER_LOBE_SHARE = {1: 26.5 / 53.6, 2: 23.2 / 46.4}
MIDDLE_SHARE = {1: 9.3 / 53.6, 2: 9.3 / 46.4}


@dataclass
class LungLandmarks:
    apex_z: float
    base_z: float
    dome_z: float
    y_front: float
    y_back: float
    x_range: tuple
    anterior_base_z: float
    sample: np.ndarray | None = field(default=None, repr=False)  # (n, 3) LPS mm of lung voxels (a subsample)


@dataclass
class Landmarks:
    carina_z: float | None
    carina_source: str
    lungs: dict = field(default_factory=dict)  # 1 / 2 -> LungLandmarks
    cut_top: bool = False
    cut_bottom: bool = False
    warnings: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"carina_z_mm": None if self.carina_z is None else round(self.carina_z, 1),
                "carina": self.carina_source, "cut_top": self.cut_top, "cut_bottom": self.cut_bottom,
                "lungs": {("right" if k == 1 else "left"): {key: (round(v, 1) if isinstance(v, float) else
                                                                  [round(a, 1) for a in v])
                                                            for key, v in vars(lm).items() if key != "sample"}
                          for k, lm in self.lungs.items()}}


def _voxel_sample(lung: np.ndarray, geometry) -> np.ndarray:
    """LPS positions of about ``SAMPLE_VOXELS`` of the lung's voxels (a regular subsample)."""
    step = max(int(round((lung.sum() / SAMPLE_VOXELS) ** (1.0 / 3.0))), 1)
    k, j, i = np.nonzero(lung[::step, ::step, ::step])
    ijk = np.stack([i, j, k], axis=1) * step
    return np.array(geometry.origin) + ijk * np.array(geometry.spacing)


def _columns(lung: np.ndarray):
    """Per (j, i) column: whether it holds lung, and its lowest and highest lung slice."""
    present = lung.any(axis=0)
    nk = lung.shape[0]
    low = np.argmax(lung, axis=0)
    high = nk - 1 - np.argmax(lung[::-1], axis=0)
    return present, low, high


def find_landmarks(lungs: np.ndarray, geometry, hu: np.ndarray | None = None,
                   carina_slice: int | None = None) -> Landmarks:
    spacing = np.array(geometry.spacing, dtype=float)
    origin = np.array(geometry.origin, dtype=float)
    nk = lungs.shape[0]
    source = "airway tracker (lung mask)" if carina_slice is not None else ""
    if carina_slice is None and hu is not None:
        from ..ct.airways import track_airways

        try:
            carina_slice = track_airways(hu, None, tuple(spacing)).carina_slice
            source = "airway tracker"
        except (ValueError, IndexError):
            carina_slice = None
    carina_z = None if carina_slice is None else float(origin[2] + carina_slice * spacing[2])
    result = Landmarks(carina_z, source)
    areas = lungs.reshape(nk, -1).astype(bool).sum(axis=1)
    largest = max(int(areas.max()), 1)
    result.cut_bottom = bool(areas[0] > CUT_FRACTION * largest)
    result.cut_top = bool(areas[-1] > CUT_FRACTION * largest)
    for where, cut in (("bottom (lung bases)", result.cut_bottom), ("top (lung apices)", result.cut_top)):
        if cut:
            result.warnings.append(f"the field of view cuts the lungs at the {where}: the lobes near that edge "
                                   "follow the fissure template only where no fissure is seen; check them")
    for label in (1, 2):
        lung = lungs == label
        if not lung.any():
            continue
        present, low, high = _columns(lung)
        jj, ii = np.nonzero(present)
        ys = origin[1] + jj * spacing[1]
        xs = origin[0] + ii * spacing[0]
        bottoms = origin[2] + low[present] * spacing[2]
        tops = origin[2] + high[present] * spacing[2]
        y_front, y_back = float(np.percentile(ys, 1)), float(np.percentile(ys, 99))
        # the lateral half of the lung, away from the heart and mediastinum (which raise the medial
        # lung bottom, most on the left)
        middle_x = 0.5 * (xs.min() + xs.max())
        lateral = xs <= middle_x if label == 1 else xs >= middle_x
        anterior = lateral & (ys <= y_front + 0.25 * (y_back - y_front))
        central = lateral & (np.abs(ys - np.median(ys)) < 0.25 * np.ptp(ys))
        result.lungs[label] = LungLandmarks(
            apex_z=float(tops.max()), base_z=float(bottoms.min()),
            dome_z=float(np.percentile(bottoms[central], 90)) if central.any() else float(np.median(bottoms)),
            y_front=y_front, y_back=y_back, x_range=(float(xs.min()), float(xs.max())),
            anterior_base_z=float(np.median(bottoms[anterior])),
            sample=_voxel_sample(lung, geometry))
    if result.carina_z is None and result.lungs:
        why = "not found in the scan" if hu is not None else "not looked for (no CT given)"
        if not result.cut_bottom:
            result.carina_z = max(lm.dome_z for lm in result.lungs.values()) + CARINA_ABOVE_DOME_MM
            result.carina_source = f"{why}: {CARINA_ABOVE_DOME_MM:g} mm above the higher diaphragm dome"
        elif not result.cut_top:
            result.carina_z = max(lm.apex_z for lm in result.lungs.values()) - CARINA_BELOW_APEX_MM
            result.carina_source = f"{why}: {CARINA_BELOW_APEX_MM:g} mm below the apex"
        else:
            result.carina_z = float(origin[2] + (nk - 1) * spacing[2]) + 30.0
            result.carina_source = f"{why} and lungs cut at both ends: assumed 30 mm above the scan"
        if hu is not None:
            result.warnings.append(f"carina {result.carina_source}; the fissure template is less reliable")
    return result


def oblique_line(lm: LungLandmarks, carina_z: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """(y, z) of the oblique fissure's posterior-superior and anterior-inferior ends by the two
    textbook landmarks (the carina's level posteriorly, the anterior base): the template's line when
    the lung's volume cannot be trusted (a field of view that cuts the lungs)."""
    back = (lm.y_back, carina_z)
    front = (lm.y_front + 0.1 * (lm.y_back - lm.y_front), lm.anterior_base_z)
    return back, front


def oblique_slope_for_share(lm: LungLandmarks, share: float) -> float:
    """dz/dy of the plane through the anterior-inferior landmark that leaves ``share`` of the lung's
    volume below it (the lower lobe), by bisection on its inclination (5-80 degrees)."""
    (_, _), (yf, zf) = oblique_line(lm, 0.0)
    y, z = lm.sample[:, 1], lm.sample[:, 2]
    low, high = np.radians(5.0), np.radians(80.0)
    for _ in range(40):
        middle = 0.5 * (low + high)
        if float(np.mean(z < zf + np.tan(middle) * (y - yf))) < share:
            low = middle
        else:
            high = middle
    return float(np.tan(0.5 * (low + high)))


def flat_height_for_share(sample: np.ndarray, oblique_points: np.ndarray, share: float) -> float:
    """Height of a flat boundary that puts ``share`` of the lung between the oblique fissure (the
    surface through ``oblique_points``) and itself: the middle lobe or the lingula."""
    from .fissures import FissureSurface

    oblique = FissureSurface("oblique", np.asarray(oblique_points, dtype=float)).height(sample[:, 0], sample[:, 1])
    above = np.sort(sample[sample[:, 2] >= oblique, 2])
    wanted = int(round(share * len(sample)))
    if len(above) == 0:
        return float(sample[:, 2].max())
    return float(above[min(max(wanted, 0), len(above) - 1)])


def _grid(lm: LungLandmarks):
    x0, x1 = lm.x_range
    return [(x, y) for x in np.linspace(x0 + 0.15 * (x1 - x0), x1 - 0.15 * (x1 - x0), 3)
            for y in np.linspace(lm.y_front, lm.y_back, 3)]


def flat_boundary_points(lm: LungLandmarks, oblique_points: np.ndarray, share: float) -> np.ndarray:
    """3 x 3 control points of the flat middle-lobe or lingular boundary over ``oblique_points``."""
    z = flat_height_for_share(lm.sample, oblique_points, share)
    return np.array([(x, y, z) for x, y in _grid(lm)])


def template_points(landmarks: Landmarks) -> dict[str, np.ndarray]:
    """A 3 x 3 grid of control points per fissure (LPS mm), planes through the landmarks.

    With the whole lung in the field of view: the oblique fissure through the anterior-inferior
    landmark, inclined so that the lower lobe holds ``LOWER_LOBE_SHARE`` of the lung, the flat
    horizontal fissure (lingular boundary) so that the middle lobe (lingula) holds ``MIDDLE_SHARE``.
    With the lung cut by the field of view (its volume unknown): the two-landmark oblique line
    (carina level posteriorly, anterior base) and the flat boundary at its height at mid-depth."""
    points = {}
    for name in FISSURES:
        label = FISSURE_LUNG[name]
        lm = landmarks.lungs.get(label)
        if lm is None or landmarks.carina_z is None:
            continue
        by_volume = (lm.sample is not None and len(lm.sample) > 100
                     and not (landmarks.cut_top or landmarks.cut_bottom))
        (yb, zb), (yf, zf) = oblique_line(lm, landmarks.carina_z)
        slope = oblique_slope_for_share(lm, LOWER_LOBE_SHARE[label]) if by_volume else (zb - zf) / (yb - yf)
        oblique = np.array([(x, y, zf + slope * (y - yf)) for x, y in _grid(lm)])
        if name in ("RO", "LO"):
            points[name] = oblique
        elif by_volume:
            points[name] = flat_boundary_points(lm, oblique, MIDDLE_SHARE[label])
        else:  # flat, at the oblique's height at mid-depth
            z = zf + slope * (0.5 * (lm.y_front + lm.y_back) - yf)
            points[name] = np.array([(x, y, z) for x, y in _grid(lm)])
    return points
