"""Per-lobe characterisation (spec section 7): which lobes, extent, distribution, background.

Done for every lobe with >= 5 nodular POs and every lobe with dendriform PO.
* Extent: do the POs occupy more than 50 % of the lobe; exactly 50 % is "no". The reader's
  answer stands; the software's suggested fraction is used only when the reader gave none.
* Axial distribution of a PO, first that applies: pleural (within 1 mm of the lung surface),
  cortical (outer third along the ray from the centroid of that lung's axial cross-section
  through the PO to the surface), medullary (the rest). Lobe distribution: the category holding
  more than half of the lobe's POs, else random. POs with no zone recorded count in the
  denominator (a category must hold more than half of all the lobe's POs).
* Background: normal lung or an ILD pattern, reader-entered per PO.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .reading import ILD_PATTERNS, ZONES, Finding, LobeAssessment

CHARACTERISATION_MIN_NODULES = 5
PLEURAL_DISTANCE_MM = 1.0
CORTICAL_RADIAL_FRACTION = 2.0 / 3.0
EXTENT_THRESHOLD = 0.5


def characterised_lobes(nodular_counts: dict[str, int], dendriform: Iterable[str]) -> list[str]:
    dendriform = set(dendriform)
    return [code for code, count in nodular_counts.items()
            if count >= CHARACTERISATION_MIN_NODULES or code in dendriform]


def extent_is_over_half(fraction: float) -> bool:
    return fraction > EXTENT_THRESHOLD


def lobe_extent(assessment: LobeAssessment) -> tuple[bool | None, str]:
    """(answer, source): the reader's answer, else the software's suggestion, else not assessed."""
    if assessment.extent_over_half is not None:
        return assessment.extent_over_half, "reader"
    if assessment.extent_fraction_suggested is not None:
        return extent_is_over_half(assessment.extent_fraction_suggested), "suggested"
    return None, "not assessed"


def classify_zone(distance_to_surface_mm: float, radial_fraction: float) -> str:
    """Zone of one PO. ``radial_fraction`` is its distance from the centroid of the lung's axial
    cross-section divided by the centroid-to-surface distance along the same ray (0 at the
    centroid, 1 at the surface)."""
    if distance_to_surface_mm <= PLEURAL_DISTANCE_MM:
        return "pleural"
    if radial_fraction >= CORTICAL_RADIAL_FRACTION:
        return "cortical"
    return "medullary"


def lobe_distribution(zones: Iterable[str | None]) -> dict:
    zones = list(zones)
    counts = Counter(zone for zone in zones if zone is not None)
    unknown = len(zones) - sum(counts.values())
    category = "random"
    for zone in ZONES:
        if counts[zone] * 2 > len(zones):
            category = zone
    result = {"category": category if zones else None,
              "counts": {zone: counts[zone] for zone in ZONES}, "unknown": unknown}
    if unknown:
        result["note"] = f"{unknown} PO without a recorded zone"
    return result


def background_summary(findings: Iterable[Finding]) -> dict:
    """Counts per background, the share of POs in ILD and the predominant ILD pattern."""
    backgrounds = Counter(f.background for f in findings)
    recorded = sum(n for bg, n in backgrounds.items() if bg is not None)
    in_ild = sum(backgrounds[pattern] for pattern in ILD_PATTERNS)
    predominant = None
    best = 0
    for pattern in ILD_PATTERNS:
        if backgrounds[pattern] > best:
            predominant, best = pattern, backgrounds[pattern]
    return {
        "counts": {bg: n for bg, n in backgrounds.items() if bg is not None},
        "unrecorded": backgrounds[None],
        "fraction_in_ild": in_ild / recorded if recorded else None,
        "predominant_ild_pattern": predominant,
    }
