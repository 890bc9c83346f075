"""The six lobes of the scoring spec (section 1): codes, names, label values and lungs.

The lingula is a lobe of its own. Label value 0 is background. These label values are the
exchange format for lobe label maps (files and the ``--lobes`` option).
"""

from __future__ import annotations

from dataclasses import dataclass

RIGHT = "right"
LEFT = "left"


@dataclass(frozen=True)
class Lobe:
    code: str
    name: str
    label: int
    lung: str
    color: tuple[float, float, float]


LOBES: tuple[Lobe, ...] = (
    Lobe("RUL", "right upper lobe", 1, RIGHT, (0.69, 0.48, 0.39)),
    Lobe("RML", "right middle lobe", 2, RIGHT, (0.43, 0.72, 0.44)),
    Lobe("RLL", "right lower lobe", 3, RIGHT, (0.44, 0.54, 0.86)),
    Lobe("LUL", "left upper lobe, upper division", 4, LEFT, (0.89, 0.74, 0.38)),
    Lobe("LING", "lingula", 5, LEFT, (0.78, 0.42, 0.75)),
    Lobe("LLL", "left lower lobe", 6, LEFT, (0.38, 0.78, 0.80)),
)

LOBE_CODES: tuple[str, ...] = tuple(lobe.code for lobe in LOBES)
RIGHT_LOBES: tuple[str, ...] = tuple(lobe.code for lobe in LOBES if lobe.lung == RIGHT)
LEFT_LOBES: tuple[str, ...] = tuple(lobe.code for lobe in LOBES if lobe.lung == LEFT)
BY_CODE: dict[str, Lobe] = {lobe.code: lobe for lobe in LOBES}
BY_LABEL: dict[int, Lobe] = {lobe.label: lobe for lobe in LOBES}
UNASSIGNED = "unassigned"
BACKGROUND_LABEL = 0


def lung_of(code: str) -> str:
    """``right`` or ``left`` for a lobe code; raises KeyError for anything else."""
    return BY_CODE[code].lung


def code_for_label(label: int) -> str:
    """Lobe code for a label value 1-6, or ``unassigned`` for background and unknown values."""
    lobe = BY_LABEL.get(int(label))
    return lobe.code if lobe else UNASSIGNED
