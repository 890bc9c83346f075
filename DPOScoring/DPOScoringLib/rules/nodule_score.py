"""Average nodule score (spec section 6).

ANS = sum of NNPOL over the lobes without dendriform PO / (6 - LDO). No PO at all gives 0.
LDO = 6 leaves ANS undefined (null, with the reason); a cohort may impute it with the pooled
mean lobar count over the non-dendriform lobes of patients with 1-5 dendriform lobes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..common.anatomy import LOBE_CODES

ANS_UNDEFINED_NOTE = ("undefined: dendriform PO in all six lobes (LDO = 6); the paper excludes "
                      "such patients (N = 887 of 892); a cohort may impute the pooled mean lobar "
                      "count of patients with 1-5 dendriform lobes")


@dataclass(frozen=True)
class AverageNoduleScore:
    value: float | None
    numerator: int
    denominator: int
    note: str

    @property
    def fraction(self) -> str:
        return f"{self.numerator}/{self.denominator}"


def average_nodule_score(counts: dict[str, int], dendriform: Iterable[str]) -> AverageNoduleScore:
    dendriform = set(dendriform)
    denominator = len(LOBE_CODES) - len(dendriform)
    numerator = sum(counts[code] for code in LOBE_CODES if code not in dendriform)
    if denominator == 0:
        return AverageNoduleScore(None, numerator, 0, ANS_UNDEFINED_NOTE)
    if numerator == 0:
        note = "no nodular PO in the lobes without dendriform PO"
    else:
        note = f"{numerator} nodular PO over {denominator} lobes without dendriform PO"
    return AverageNoduleScore(numerator / denominator, numerator, denominator, note)


def pooled_imputation_value(patients: Iterable[tuple[dict[str, int], Iterable[str]]]) -> float | None:
    """The pooled mean lobar count over the non-dendriform lobes of patients with 1-5 dendriform
    lobes; None when the cohort has no such patient. Each patient is (NNPOL, dendriform lobes)."""
    total = 0
    lobes = 0
    for counts, dendriform in patients:
        dendriform = set(dendriform)
        if 1 <= len(dendriform) <= 5:
            kept = [code for code in LOBE_CODES if code not in dendriform]
            total += sum(counts[code] for code in kept)
            lobes += len(kept)
    return total / lobes if lobes else None
