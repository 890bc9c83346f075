"""Counting (spec section 4): NNPOL per lobe, R and L totals, LDO, separately recorded findings.

Only findings whose status is in ``statuses`` count: ``("confirmed",)`` for the figures that
stand, ``("confirmed", "pending")`` for the labelled provisional figure. Rejected findings
never count.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..common.anatomy import LEFT_LOBES, LOBE_CODES, RIGHT_LOBES
from .policy import ScoringPolicy
from .reading import SEPARATE_KINDS, Finding, Reading

CONFIRMED = ("confirmed",)
CONFIRMED_OR_PENDING = ("confirmed", "pending")
PO_SHORT_AXIS_LIMIT_MM = 4.0


def counted_findings(reading: Reading, statuses: Iterable[str]) -> list[Finding]:
    statuses = tuple(statuses)
    return [f for f in reading.findings if f.status in statuses]


def effective_kind(finding: Finding) -> str:
    """The kind that counts: a 'nodular' finding measured >= 4 mm short axis is not a PO (spec
    section 3) but a large calcified nodule, recorded separately."""
    if (finding.kind == "nodular" and finding.short_axis_mm is not None
            and finding.short_axis_mm >= PO_SHORT_AXIS_LIMIT_MM):
        return "large_calcified"
    return finding.kind


def dendriform_lobes(reading: Reading, statuses: Iterable[str]) -> list[str]:
    """Lobes with dendriform PO: flagged by the reader, or holding a counted dendriform finding."""
    from_findings = {f.lobe for f in counted_findings(reading, statuses) if f.kind == "dendriform"}
    return [code for code in LOBE_CODES if reading.lobe(code).dendriform or code in from_findings]


def nodular_po_per_lobe(reading: Reading, statuses: Iterable[str]) -> dict[str, int]:
    """Nodular POs per lobe before the dendriform-lobe rule is applied."""
    counts = dict.fromkeys(LOBE_CODES, 0)
    for finding in counted_findings(reading, statuses):
        if effective_kind(finding) == "nodular":
            counts[finding.lobe] += 1
    return counts


def nnpol(reading: Reading, policy: ScoringPolicy, statuses: Iterable[str]) -> dict[str, int]:
    """NNPOL(lobe): nodular POs per lobe; a dendriform lobe contributes none unless the policy
    variant ``dendriform_nodules=count`` is chosen."""
    statuses = tuple(statuses)
    counts = nodular_po_per_lobe(reading, statuses)
    if policy.dendriform_nodules == "exclude":
        for code in dendriform_lobes(reading, statuses):
            counts[code] = 0
    return counts


def right_total(counts: dict[str, int]) -> int:
    return sum(counts[code] for code in RIGHT_LOBES)


def left_total(counts: dict[str, int]) -> int:
    return sum(counts[code] for code in LEFT_LOBES)


def ldo(reading: Reading, statuses: Iterable[str]) -> int:
    """LDO: the number of lobes with dendriform PO."""
    return len(dendriform_lobes(reading, statuses))


def separately_recorded(reading: Reading, statuses: Iterable[str]) -> dict:
    """Calcified nodules >= 4 mm and suspected granulomas: recorded, never counted as POs."""
    result = {kind: dict.fromkeys(LOBE_CODES, 0) for kind in SEPARATE_KINDS}
    for finding in counted_findings(reading, statuses):
        kind = effective_kind(finding)
        if kind in SEPARATE_KINDS and finding.lobe in LOBE_CODES:
            result[kind][finding.lobe] += 1
    return {kind: {"total": sum(per_lobe.values()), "by_lobe": per_lobe}
            for kind, per_lobe in result.items()}
