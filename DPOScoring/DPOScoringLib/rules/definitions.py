"""DPO definitions 1 and 2 (spec section 5), with their named variants.

Definition 1 (default): R >= 1 and L >= 1 and R + L >= 10; variant ``total``: R + L >= 10.
Definition 2 (default): a lobe with NNPOL >= 5 and R >= 1 and L >= 1; variant ``lobe``: a lobe
with NNPOL >= 5 only; variant ``each-lung``: a right lobe >= 5 and a left lobe >= 5.
"""

from __future__ import annotations

from ..common.anatomy import LEFT_LOBES, RIGHT_LOBES
from .counting import left_total, right_total
from .policy import DEF1_VARIANTS, DEF2_VARIANTS

DEF1_TOTAL_THRESHOLD = 10
DEF2_LOBE_THRESHOLD = 5


def is_bilateral(counts: dict[str, int]) -> bool:
    return right_total(counts) >= 1 and left_total(counts) >= 1


def dpo_definition_1(counts: dict[str, int], variant: str = "default") -> bool:
    total = right_total(counts) + left_total(counts)
    if variant == "default":
        return is_bilateral(counts) and total >= DEF1_TOTAL_THRESHOLD
    if variant == "total":
        return total >= DEF1_TOTAL_THRESHOLD
    raise ValueError(f"def1 variant {variant!r} is not one of {', '.join(DEF1_VARIANTS)}")


def dpo_definition_2(counts: dict[str, int], variant: str = "default") -> bool:
    def any_lobe_reaches(codes) -> bool:
        return any(counts[code] >= DEF2_LOBE_THRESHOLD for code in codes)

    if variant == "default":
        return any_lobe_reaches(RIGHT_LOBES + LEFT_LOBES) and is_bilateral(counts)
    if variant == "lobe":
        return any_lobe_reaches(RIGHT_LOBES + LEFT_LOBES)
    if variant == "each-lung":
        return any_lobe_reaches(RIGHT_LOBES) and any_lobe_reaches(LEFT_LOBES)
    raise ValueError(f"def2 variant {variant!r} is not one of {', '.join(DEF2_VARIANTS)}")


def all_variants(counts: dict[str, int]) -> dict[str, dict[str, bool]]:
    """Every variant of both definitions, so a study can report sensitivity in one run."""
    return {
        "def1": {variant: dpo_definition_1(counts, variant) for variant in DEF1_VARIANTS},
        "def2": {variant: dpo_definition_2(counts, variant) for variant in DEF2_VARIANTS},
    }
