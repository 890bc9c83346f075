"""ILD extent and coarseness (spec section 8), from the reader's per-lobe pattern scores.

Pattern extents: 0 = 0 %, 1 = < 25 %, 2 = 25-50 %, 3 = > 50 %. The overall extent of a lobe is
the reader's, or else its largest pattern score; the patient's ILD extent is the sum over the six
lobes (0-18). The coarseness grade CG of a lobe is the grade of its most extensive graded pattern
(ground-glass 1, fine reticulation 2, coarse reticulation 3, honeycombing 4); ties go to the
higher grade; consolidation has no grade, so consolidation alone gives CG 0. The coarseness
score CS = sum of CG / LILD x 6, with LILD the number of lobes with CG >= 1 (range 6-24);
undefined (None) when LILD = 0.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..common.anatomy import LOBE_CODES
from .reading import ILDScores

COARSENESS_GRADES = {
    "ggo": 1,
    "fine_reticulation": 2,
    "coarse_reticulation": 3,
    "honeycombing": 4,
}


def overall_extent(scores: ILDScores) -> int:
    if scores.overall is not None:
        return scores.overall
    return max(scores.pattern_scores().values())


def ild_extent(per_lobe: Mapping[str, ILDScores]) -> int:
    """Patient ILD extent: the sum of the six lobes' overall extents (0-18)."""
    return sum(overall_extent(per_lobe.get(code, ILDScores())) for code in LOBE_CODES)


def coarseness_grade(scores: ILDScores) -> int:
    best_extent = 0
    best_grade = 0
    for pattern, grade in COARSENESS_GRADES.items():
        extent = getattr(scores, pattern)
        if extent > best_extent or (extent == best_extent and extent > 0 and grade > best_grade):
            best_extent, best_grade = extent, grade
    return best_grade


def lobes_with_ild(grades: Mapping[str, int]) -> int:
    """LILD: the number of lobes with a coarseness grade >= 1."""
    return sum(1 for grade in grades.values() if grade >= 1)


def coarseness_score(grades: Mapping[str, int]) -> float | None:
    lild = lobes_with_ild(grades)
    if lild == 0:
        return None
    return sum(grades.values()) / lild * len(LOBE_CODES)


def ild_consistency_warnings(code: str, scores: ILDScores) -> list[str]:
    """Reader-entered values that contradict each other (kept as entered, but flagged)."""
    largest = max(scores.pattern_scores().values())
    warnings = []
    if scores.overall is not None and scores.overall < largest:
        warnings.append(f"lobes.{code}.ild.overall is {scores.overall} but a pattern scores {largest}")
    if scores.overall is not None and scores.overall > 0 and largest == 0:
        warnings.append(f"lobes.{code}.ild.overall is {scores.overall} but no pattern is scored")
    return warnings
