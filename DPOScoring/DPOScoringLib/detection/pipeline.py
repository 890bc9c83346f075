"""One CT through the GUI-free pipeline: load and check, lungs, contrast, candidates.

This is what ``dpo-score detect`` and the Slicer logic call; every step reports progress and
can be cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..common.anatomy import lung_volumes_ml, lungs_from_lobes
from ..common.progress import Progress, ensure_progress
from ..ct.airways import track_airways
from ..ct.contrast import (
    brightest_blood_level,
    contrast_warning,
    enhanced_fraction,
    lung_vessel_values,
    vessel_enhanced_share,
)
from ..ct.ct_image import CTVolume, load_ct
from ..ct.label_maps import LOBE_VALUES, LUNG_VALUES, load_label_map
from ..ct.lung_mask import segment_lungs
from .candidates import DetectionParams, DetectionResult, detect_candidates


@dataclass
class DetectionRun:
    ct: CTVolume
    lungs: np.ndarray
    lobes: np.ndarray | None
    result: DetectionResult
    warnings: list[str] = field(default_factory=list)
    sources: dict = field(default_factory=dict)
    lung_volumes_ml: dict = field(default_factory=dict)


def run_detection(ct_path: str | Path, lobes_path: str | Path | None = None,
                  lungs_path: str | Path | None = None, contrast: str = "auto",
                  params: DetectionParams | None = None, series_uid: str | None = None,
                  progress: Progress | None = None) -> DetectionRun:
    """``contrast``: ``auto`` (detect it), ``on`` or ``off``."""
    progress = ensure_progress(progress)
    progress.step(0.0, "loading the CT")
    ct = load_ct(ct_path, series_uid)
    sources = {"ct": str(ct_path)}
    lobes = load_label_map(lobes_path, ct, "--lobes", LOBE_VALUES) if lobes_path else None
    lungs = None
    if lobes_path:
        sources["lobes"] = str(lobes_path)
    if lungs_path:
        lungs = load_label_map(lungs_path, ct, "--lungs", LUNG_VALUES)
        sources["lungs"] = str(lungs_path)
    elif lobes is not None:
        lungs = lungs_from_lobes(lobes)
        sources["lungs"] = "from --lobes"
    return detect_on_ct(ct, lungs, lobes, None, contrast, params, sources, progress)


def detect_on_ct(ct: CTVolume, lungs: np.ndarray | None, lobes: np.ndarray | None, airways: np.ndarray | None,
                 contrast: str = "auto", params: DetectionParams | None = None, sources: dict | None = None,
                 progress: Progress | None = None) -> DetectionRun:
    """Detection on a loaded CT: lungs computed when not given, airways tracked when not given
    (for the hilar rule), contrast judged, candidates found."""
    progress = ensure_progress(progress)
    warnings = list(ct.warnings)
    sources = dict(sources or {})
    volumes = None
    if lungs is None:
        mask = segment_lungs(ct.array, ct.spacing, ct.image.GetOrigin()[0], progress.sub(0.05, 0.55))
        lungs, airways, volumes = mask.labels, mask.airways, dict(mask.volumes_ml)  # counted by the same rule
        warnings += mask.warnings
        sources["lungs"] = "weight-free lung mask (lung_mask.py)"
    if airways is None:
        progress.step(0.5, "tracking the trachea and main bronchi")
        tracked = track_airways(ct.array, None, ct.spacing)
        airways = tracked.mask if tracked.trachea_found else None
        if airways is None:
            warnings.append("trachea not found: hilar calcifications are not excluded by position")
    if volumes is None:
        volumes = lung_volumes_ml(lungs, ct.spacing)
    fraction = enhanced_fraction(ct.array, lungs)
    vessel_values = lung_vessel_values(ct.array, lungs, ct.spacing[::-1])
    vessel_share = vessel_enhanced_share(vessel_values)
    if contrast == "auto":
        enhanced = contrast_warning(fraction, vessel_share)
        contrast_on = enhanced is not None
        if enhanced and not any(w.startswith("contrast-enhanced") for w in warnings):
            warnings.append(enhanced)
    else:
        contrast_on = contrast == "on"
        if contrast_on and not any(w.startswith("contrast-enhanced") for w in warnings):
            warnings.append("contrast mode on (set by the user): contrast-filled vessels are suppressed")
    blood_hu = brightest_blood_level(vessel_values)
    sources["contrast"] = {"mode": contrast,
                           "enhanced_fraction": None if fraction is None else round(fraction, 4),
                           "lung_vessels_enhanced_share": None if vessel_share is None else round(vessel_share, 4),
                           "brightest_blood_hu": None if blood_hu is None else round(blood_hu, 1)}
    geometry = ct.geometry
    result = detect_candidates(
        ct.array, ct.spacing, lungs, lobes, airways, contrast=contrast_on, params=params, blood_hu=blood_hu,
        lps_of=geometry.ijk_to_lps,
        ijk_of=lambda index: ct.original.lps_to_ijk(geometry.ijk_to_lps(index)),
        progress=progress.sub(0.6, 1.0))
    if not ct.contiguous:
        warnings += _dendriform_across_gaps(result, ct)
    return DetectionRun(ct, lungs, lobes, result, warnings, sources, volumes)


def _dendriform_across_gaps(result: DetectionResult, ct: CTVolume) -> list[str]:
    """Dendriform means branching over contiguous slices (spec section 3): a structure that
    spans a slice gap cannot be judged so, and is shown as nodular for the reader to judge."""
    runs = ct.contiguous_runs()
    changed = []
    for candidate in result.candidates:
        if candidate.kind != "dendriform":
            continue
        k = ct.geometry.lps_to_ijk(candidate.lps)[2]
        low, high = k - candidate.slices / 2.0, k + candidate.slices / 2.0
        if not any(first - 0.5 <= low and high <= last + 0.5 for first, last in runs):
            candidate.kind = "nodular"
            changed.append(candidate.id)
    if not changed:
        return []
    return [f"slice gaps: {', '.join(changed)} span a gap between slices, so branching over contiguous "
            "slices (dendriform) cannot be judged; shown as nodular for the reader to decide"]
