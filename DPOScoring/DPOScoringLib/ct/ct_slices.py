"""Where a DICOM series' slices really are: gaps and non-uniform spacing from the slices' own
positions (ImagePositionPatient along the slice normal), never from an average.

A series reader stacks the slices at their average spacing: a missing file or a sequential
HRCT with 10 mm gaps becomes a "contiguous" volume whose distances and volumes are wrong
without a word. ``slice_layout`` measures every slice position; ``SliceLayout`` records them,
names each gap, and says whether the volume is contiguous. The loader then gives the volume
the usual step as its slice spacing (true within each run of contiguous slices) and every
slice its true position (``ct_image.Geometry.slice_offsets_mm``: LPS of candidates and ijk of
the file are right across gaps). What needs contiguous slices (the dendriform test: branching
followed over slices) must check ``CTVolume.contiguous`` and refuse, or stay within one run
(``SliceLayout.runs``, ``gaps[i]["oriented_k"]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..common.errors import DPOInputError

GAP_FACTOR = 1.5  # a step this many times the usual slice step leaves slices out
UNIFORM_TOLERANCE = 0.1  # steps within 10 % of the usual step count as uniform
SAME_POSITION_MM = 0.01


@dataclass
class SliceLayout:
    """Slice positions (mm along the slice normal, ascending as the reader stacked them) and
    what they imply. ``gaps`` name the two slices (index in the file order and in the oriented
    array) around each gap."""

    positions_mm: list[float]
    step_mm: float
    thickness_mm: float | None = None
    gaps: list[dict] = field(default_factory=list)
    non_uniform_steps_mm: list[float] = field(default_factory=list)
    gaps_between_all_slices: bool = False
    reversed_in_array: bool = False  # the LPS-oriented array holds the slices in reverse order

    @property
    def contiguous(self) -> bool:
        return not self.gaps and not self.gaps_between_all_slices

    def runs(self) -> list[tuple[int, int]]:
        """(first, last) slice index (file order) of each run of contiguous slices."""
        if self.gaps_between_all_slices:
            return [(k, k) for k in range(len(self.positions_mm))]
        starts = [0] + [gap["after_slice"] + 1 for gap in self.gaps]
        ends = [gap["after_slice"] for gap in self.gaps] + [len(self.positions_mm) - 1]
        return list(zip(starts, ends))

    def oriented_runs(self) -> list[tuple[int, int]]:
        """``runs()`` as (first, last) k of the LPS-oriented array (``CTVolume.array[k]``), ascending."""
        last = len(self.positions_mm) - 1
        if not self.reversed_in_array:
            return self.runs()
        return sorted((last - end, last - start) for start, end in self.runs())

    def warnings(self) -> list[str]:
        found = []
        if self.gaps:
            described = "; ".join(f"{g['gap_mm']:.1f} mm between slices at {g['from_mm']:.1f} and {g['to_mm']:.1f} "
                                  f"mm (about {g['missing_slices']} missing)" for g in self.gaps[:5])
            more = f"; and {len(self.gaps) - 5} more" if len(self.gaps) > 5 else ""
            found.append(f"slice gaps in the DICOM series (usual step {self.step_mm:.2f} mm): {described}{more}; "
                         "positions follow the DICOM slices, but sizes and branching across a gap "
                         "(the dendriform test) cannot be assessed")
        if self.non_uniform_steps_mm:
            found.append("non-uniform slice spacing in the DICOM series: steps from "
                         f"{min(self.non_uniform_steps_mm):.2f} to {max(self.non_uniform_steps_mm):.2f} mm "
                         f"(usual {self.step_mm:.2f} mm)")
        if self.gaps_between_all_slices:
            found.append(f"gaps between all slices: {self.thickness_mm:g} mm thick slices every {self.step_mm:g} mm "
                         "(sequential HRCT?); sizes across slices and branching over contiguous slices "
                         "(the dendriform test) cannot be assessed")
        return found

    def to_dict(self) -> dict:
        return {"positions_mm": [round(p, 3) for p in self.positions_mm], "step_mm": round(self.step_mm, 4),
                "thickness_mm": self.thickness_mm, "contiguous": self.contiguous, "gaps": self.gaps,
                "non_uniform_steps_mm": [round(s, 3) for s in self.non_uniform_steps_mm],
                "gaps_between_all_slices": self.gaps_between_all_slices}


def _floats(text: str, count: int) -> list[float] | None:
    try:
        values = [float(v) for v in text.replace(",", "\\").split("\\") if v.strip()]
    except ValueError:
        return None
    return values if len(values) == count else None


def slice_layout(positions_lps, orientation, thickness_text: str, oriented_flip: bool,
                 where: str) -> SliceLayout | None:
    """The layout of slices at ``positions_lps`` (ImagePositionPatient of each slice, in the
    reader's order) with ImageOrientationPatient ``orientation`` (six numbers); None when the
    positions are not all known. ``oriented_flip``: the LPS-oriented array holds the slices in
    reverse order."""
    if orientation is None or len(positions_lps) < 2 or any(p is None for p in positions_lps):
        return None
    row, column = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, column)
    if not np.isfinite(normal).all() or np.linalg.norm(normal) < 0.5:
        return None
    normal /= np.linalg.norm(normal)
    along = np.array([float(np.dot(p, normal)) for p in positions_lps])
    if along[-1] < along[0]:
        along = along[::-1] * -1.0  # distances along the stacking direction
    same = np.diff(np.sort(along)) < SAME_POSITION_MM  # whatever order the reader stacked them in
    if same.any():
        count = int(same.sum())
        raise DPOInputError(where, f"DICOM series has {count} slice(s) at the same position as another (two "
                            "acquisitions mixed in one series?)")
    steps = np.diff(along)
    if (steps < 0).any():
        raise DPOInputError(where, "DICOM series' slice positions are not in order along the slice normal")
    step = float(np.median(steps))
    count = len(along)
    gaps, irregular = [], []
    for index, value in enumerate(steps):
        if value > GAP_FACTOR * step:
            oriented = (count - 2 - index, count - 1 - index) if oriented_flip else (index, index + 1)
            gaps.append({"after_slice": index, "oriented_k": list(oriented), "from_mm": round(float(along[index]), 3),
                         "to_mm": round(float(along[index + 1]), 3), "gap_mm": round(float(value), 3),
                         "missing_slices": max(int(round(value / step)) - 1, 1)})
        elif abs(value - step) > UNIFORM_TOLERANCE * step:
            irregular.append(float(value))
    thickness = None
    try:
        thickness = float(thickness_text)
    except (TypeError, ValueError):
        pass
    between_all = bool(thickness and thickness > 0 and step > GAP_FACTOR * thickness)
    return SliceLayout(positions_mm=[float(a) for a in along], step_mm=step, thickness_mm=thickness, gaps=gaps,
                       non_uniform_steps_mm=irregular, gaps_between_all_slices=between_all,
                       reversed_in_array=oriented_flip)


def dicom_slice_layout(reader, count: int, thickness_text: str, oriented_flip: bool, where: str):
    """``slice_layout`` from a SimpleITK ImageSeriesReader that kept each slice's metadata."""
    def value(index: int, key: str) -> str:
        try:
            return reader.GetMetaData(index, key) if reader.HasMetaDataKey(index, key) else ""
        except RuntimeError:
            return ""

    positions = [_floats(value(index, "0020|0032"), 3) for index in range(count)]
    orientation = _floats(value(0, "0020|0037"), 6)
    return slice_layout(positions, orientation, thickness_text, oriented_flip, where)
