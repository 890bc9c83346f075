"""The scoring engine: one reading in, every figure of spec sections 4-8 out (``dpo-scores/1``).

Figures at the top level count confirmed findings only. ``provisional`` repeats the count-based
figures with pending findings included, and ``complete`` says whether any finding is pending.
"""

from __future__ import annotations

from collections import Counter

from .. import __version__
from ..common.anatomy import LOBE_CODES
from .characterisation import (
    background_summary,
    characterised_lobes,
    lobe_distribution,
    lobe_extent,
)
from .counting import (
    CONFIRMED,
    CONFIRMED_OR_PENDING,
    PO_SHORT_AXIS_LIMIT_MM,
    counted_findings,
    dendriform_lobes,
    effective_kind,
    left_total,
    nnpol,
    nodular_po_per_lobe,
    right_total,
    separately_recorded,
)
from .definitions import all_variants, dpo_definition_1, dpo_definition_2
from .ild import (
    coarseness_grade,
    coarseness_score,
    ild_consistency_warnings,
    ild_extent,
    lobes_with_ild,
    overall_extent,
)
from .nodule_score import average_nodule_score
from .policy import DEFAULT_POLICY, ScoringPolicy
from .reading import PO_KINDS, Reading

SCORES_SCHEMA = "dpo-scores/1"


def count_figures(reading: Reading, policy: ScoringPolicy, statuses: tuple[str, ...]) -> dict:
    """NNPOL, totals, LDO, both definitions (policy and all variants) and ANS."""
    counts = nnpol(reading, policy, statuses)
    dendriform = dendriform_lobes(reading, statuses)
    right, left = right_total(counts), left_total(counts)
    ans = average_nodule_score(counts, dendriform)
    return {
        "nnpol": counts,
        "right_total": right,
        "left_total": left,
        "total": right + left,
        "ldo": len(dendriform),
        "dendriform_lobes": dendriform,
        "dpo_def1": dpo_definition_1(counts, policy.def1),
        "dpo_def2": dpo_definition_2(counts, policy.def2),
        "variants": all_variants(counts),
        "ans": ans.value,
        "ans_fraction": ans.fraction,
        "ans_note": ans.note,
    }


def _characterisation(reading: Reading, dendriform: list[str]) -> dict:
    confirmed = counted_findings(reading, CONFIRMED)
    raw_counts = nodular_po_per_lobe(reading, CONFIRMED)
    result = {}
    for code in characterised_lobes(raw_counts, dendriform):
        pos = [f for f in confirmed if f.lobe == code and effective_kind(f) in PO_KINDS]
        extent, source = lobe_extent(reading.lobe(code))
        triggers = []
        if raw_counts[code] >= 5:
            triggers.append(f"{raw_counts[code]} nodular PO (>= 5)")
        if code in dendriform:
            triggers.append("dendriform PO")
        result[code] = {
            "trigger": "; ".join(triggers),
            "extent_over_half": extent,
            "extent_source": source,
            "distribution": lobe_distribution(f.zone for f in pos),
            "background": background_summary(pos),
        }
    return result


def _ild_figures(reading: Reading) -> dict:
    ild = {code: reading.lobe(code).ild for code in LOBE_CODES}
    grades = {code: coarseness_grade(scores) for code, scores in ild.items()}
    score = coarseness_score(grades)
    return {
        "ild_extent": ild_extent(ild),
        "ild_overall_by_lobe": {code: overall_extent(scores) for code, scores in ild.items()},
        "coarseness_grades": grades,
        "lild": lobes_with_ild(grades),
        "coarseness_score": score,
        "coarseness_note": ("undefined: no lobe has a graded ILD pattern (LILD = 0)"
                            if score is None else "sum of grades / LILD x 6"),
    }


def _warnings(reading: Reading) -> list[str]:
    warnings = []
    for index, finding in enumerate(reading.findings):
        if finding.status != "rejected" and effective_kind(finding) != finding.kind:
            warnings.append(
                f"findings[{index}]: short axis {finding.short_axis_mm:g} mm >= "
                f"{PO_SHORT_AXIS_LIMIT_MM:g} mm, recorded separately as a large calcified nodule, "
                "not counted as a PO")
    for code in LOBE_CODES:
        warnings.extend(ild_consistency_warnings(code, reading.lobe(code).ild))
    return warnings


def score_reading(reading: Reading, policy: ScoringPolicy = DEFAULT_POLICY) -> dict:
    """Every score of the spec for one reading, as a JSON-ready dict (schema ``dpo-scores/1``)."""
    statuses = Counter(f.status for f in reading.findings)
    confirmed = count_figures(reading, policy, CONFIRMED)
    provisional = count_figures(reading, policy, CONFIRMED_OR_PENDING)
    characterisation = _characterisation(reading, confirmed["dendriform_lobes"])
    return {
        "schema": SCORES_SCHEMA,
        "engine": {"name": "DPOScoring", "version": __version__},
        "policy": policy.to_dict(),
        "complete": statuses["pending"] == 0,
        "findings": {status: statuses[status] for status in ("confirmed", "pending", "rejected")},
        **confirmed,
        **_ild_figures(reading),
        "lobe_distribution": {code: item["distribution"]["category"]
                              for code, item in characterisation.items()},
        "characterisation": characterisation,
        "separately_recorded": separately_recorded(reading, CONFIRMED),
        "provisional": {"includes": "confirmed and pending findings", **provisional},
        "warnings": _warnings(reading),
    }
