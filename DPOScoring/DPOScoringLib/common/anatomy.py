"""The six lobes of the scoring spec (section 1): codes, names, label values and lungs.

The lingula is a lobe of its own. Label value 0 is background. These label values are the
exchange format for lobe label maps (files and the ``--lobes`` option).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
# lung label maps (`--lungs`, the lung mask): 0 background, 1 right lung, 2 left lung
LUNG_LABELS = {RIGHT: 1, LEFT: 2}


def code_for_label(label: int) -> str:
    """Lobe code for a label value 1-6, or ``unassigned`` for background and unknown values."""
    lobe = BY_LABEL.get(int(label))
    return lobe.code if lobe else UNASSIGNED


def lobe_at(lobes: np.ndarray | None, centre_kji, spacing_kji, radius_mm: float = 5.0) -> str:
    """Lobe code at a (k, j, i) voxel position of a lobe label map; off the lobes, the lobe holding
    most voxels within ``radius_mm`` (a box); ``unassigned`` without lobes or with none near."""
    if lobes is None:
        return UNASSIGNED
    index = np.clip(np.round(centre_kji).astype(int), 0, np.array(lobes.shape) - 1)
    label = int(lobes[tuple(index)])
    if label == 0:
        r = np.ceil(radius_mm / np.asarray(spacing_kji, dtype=float)).astype(int)
        lo = np.maximum(index - r, 0)
        crop = lobes[lo[0]:index[0] + r[0] + 1, lo[1]:index[1] + r[1] + 1, lo[2]:index[2] + r[2] + 1]
        counts = np.bincount(crop.ravel(), minlength=7)[1:7]
        label = int(np.argmax(counts) + 1) if counts.any() else 0
    return code_for_label(label)


def lungs_from_lobes(lobes: np.ndarray) -> np.ndarray:
    """The lung label map (1 right, 2 left, 0 background) of a lobe label map (1-3 right, 4-6 left)."""
    table = np.zeros(256, dtype=np.uint8)
    for lobe in LOBES:
        table[lobe.label] = LUNG_LABELS[lobe.lung]
    return table[np.clip(lobes, 0, 255).astype(np.uint8, copy=False)]


def lobe_volumes_ml(lobes: np.ndarray, spacing) -> dict[str, float]:
    """Volume of each lobe in ml (0.1 ml), by code, of a lobe label map with voxel ``spacing`` in mm."""
    counts = np.bincount(np.asarray(lobes).ravel(), minlength=7)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return {lobe.code: round(float(counts[lobe.label]) * voxel_ml, 1) for lobe in LOBES}


def lung_volumes_ml(lungs: np.ndarray, spacing) -> dict[str, float]:
    """Volume of each lung in ml (0.1 ml), ``right`` and ``left``, of a lung label map."""
    lungs = np.asarray(lungs)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return {side: round(float(np.count_nonzero(lungs == label)) * voxel_ml, 1) for side, label in LUNG_LABELS.items()}
