"""Finding ossification candidates: structures of calcific attenuation inside the lungs or
abutting the pleura, measured and classified; ribs, spine, mediastinal and hilar calcification,
calcified airway cartilage and (with contrast) enhanced vessels are excluded.

Detection is hysteresis thresholding inside the lungs' bounding box: a structure is the
26-connected set of voxels >= ``grow_hu`` that holds at least one voxel >= ``seed_hu``. Each
structure is then judged on a small crop around it (see ``DetectionParams`` for every threshold
and Docs/detection.md for the sensitivity analysis).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import cc3d
import edt
import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..common.anatomy import UNASSIGNED, lobe_at
from ..common.progress import Progress, ensure_progress
from ..ct.contrast import VESSEL_ENHANCED_HU
from ..ct.voxel_boxes import bounding_box
from .bone_foci import claim, foci_on_bone
from .measurements import (
    DENDRIFORM_MAX_THICKNESS_MM,
    DENDRIFORM_MIN_EXTENT_MM,
    DENDRIFORM_MIN_SLICES,
    LARGE_SHORT_AXIS_MM,
    branches_off_axis,
    measure_candidate,
    principal_axes,
)
from .pleura_geometry import LungGeometry

LUNG_SIDE = {1: "right", 2: "left"}
VESSEL_SHIFT_MM = 3.0  # how far an oblique vessel moves in-plane from one slice to the next
VESSEL_CONTINUES_SHARE = 0.25  # enhanced blood there over this share of the piece's footprint: the vessel goes on
MEASURE_MARGIN_VOXELS = 4
NON_AERATED_HU = -100.0  # non-aerated tissue above this (lung aeration compartments: Gattinoni et al.)
MAX_PEAKS_PER_STRUCTURE = 6  # findings judged apart within one structure (close POs fused by blur)


@dataclass(frozen=True)
class DetectionParams:
    seed_hu: float = 300.0  # a candidate's peak must reach this (calcific attenuation)
    faint_seed_hu: float = 200.0  # or, for a small compact focus (a PO of 1.5-2 mm that partial volume
    #       keeps below seed_hu), this: "high attenuation" in the lungs (> 200 HU, the usual definition;
    #       Siegelman et al., AJR 1980: diffusely calcified nodules >= 164 HU, no malignant one above 147 HU)
    grow_hu: float = 100.0  # its extent: connected voxels at or above this (above soft tissue)
    contrast_seed_hu: float = 600.0  # with contrast: what in a vessel structure reaches this is kept
    contrast_grow_hu: float = 450.0  # with contrast: its extent (above enhanced blood)
    min_lung_fraction: float = 0.5  # share of a structure's voxels inside the lung (bounded by the pleura)
    touch_mm: float = 2.0  # structures this close to the lung are reported, as candidates or as excluded
    pleural_reach_mm: float = 3.0  # touching the lung with the centre this close to it: a pleural PO (radius <= 2 mm)
    max_volume_mm3: float = 3000.0  # larger structures are bone or mediastinum, not nodules
    hilar_margin_mm: float = 10.0  # candidates this close to trachea/main bronchi are hilar
    airway_lumen_hu: float = -900.0  # lumen air (as airways.py), for calcified cartilage lining an airway
    airway_lumen_share: float = 0.03  # share of the shell around a finding that is lumen air
    airway_lumen_min_mm3: float = 20.0  # the air space must be this big (an airway, not noise)
    airway_min_length_mm: float = 8.0  # an airway is a tube: at least this long within 12 mm of the finding
    airway_min_aspect: float = 2.5  # and this many times longer than wide (a cyst or bulla is round)
    hilar_max_lung_shell: float = 0.5  # near the main airways and mostly not surrounded by lung
    fragment_gap_mm: float = 3.0  # pieces this close are fragments of one branching structure
    vessel_elongation: float = 2.0  # with contrast, structures longer than this x their equivalent
    #                                 diameter are vessels unless part of them reaches contrast_seed_hu
    blood_margin_hu: float = 150.0  # a calcification must exceed the study's brightest blood (95th percentile of
    #       the medullary lung vessels: enhanced blood, sharp-kernel overshoot) by this: the 95th-to-99th
    #       percentile spread of enhanced blood on the real contrast CT (143 HU)


@dataclass
class Candidate:
    id: str
    lps: list[float]
    ijk: list[float]
    lung: str
    lobe: str
    kind: str
    short_axis_mm: float
    long_axis_mm: float
    volume_mm3: float
    peak_hu: float
    mean_hu: float
    slices: int
    zone: str
    distance_to_pleura_mm: float
    radial_fraction: float | None
    confidence: float
    status: str = "pending"
    source: str = "detected"
    fragments: int = 1  # pieces joined into this candidate (a branching structure broken by the grid)

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class DetectionResult:
    candidates: list[Candidate]
    excluded: list[dict]
    contrast: bool
    seconds: float
    structures_examined: int
    parameters: dict = field(default_factory=dict)


AIRWAY_WINDOW_MM = 12.0


def _air_space_is_tube(points_mm: np.ndarray, params: DetectionParams) -> bool:
    """An airway is a tube (long, narrow); a honeycomb cyst, a bulla or an emphysematous space is
    round or irregular. From the principal axes of the air space's voxels: its length along the
    first axis, and its width as the diameter of a cylinder with the same second moment."""
    if len(points_mm) < 4:
        return False
    centred, eigenvalues, vectors = principal_axes(points_mm)
    along = centred @ vectors[:, -1]
    length = float(along.max() - along.min())
    width = 4.0 * float(np.sqrt(max(eigenvalues[-2], 1e-6)))
    return length >= params.airway_min_length_mm and length >= params.airway_min_aspect * width


def _in_aerated_lung(region: np.ndarray, lung_local: np.ndarray) -> float:
    """Share of the 2-voxel shell around a finding that is lung (aerated parenchyma)."""
    shell = ndimage.binary_dilation(region, iterations=2) & ~region
    return float(lung_local[shell].mean()) if shell.any() else 0.0


def _elongation(component: np.ndarray, spacing_kji) -> float:
    """Largest bounding-box side over the diameter of the sphere of the same volume."""
    coords = np.argwhere(component) * spacing_kji
    longest = float((coords.max(axis=0) - coords.min(axis=0) + spacing_kji).max())
    volume = float(component.sum()) * float(np.prod(spacing_kji))
    return longest / ((6.0 * volume / np.pi) ** (1.0 / 3.0))


def _small_compact_focus(m) -> bool:
    """A focus below ``seed_hu`` counts only when PO-sized and compact: a nodular finding under
    4 mm (spec section 3), at most twice as long as wide, no larger than a 4 mm sphere. Partial
    volume dims a 1.5-2 mm PO this way; a larger structure that faint is not calcified."""
    return (m.kind == "nodular" and m.long_axis_mm < LARGE_SHORT_AXIS_MM
            and m.long_axis_mm <= 2.0 * max(m.short_axis_mm, 1e-3)
            and m.volume_mm3 <= np.pi / 6.0 * LARGE_SHORT_AXIS_MM ** 3)


def _confidence(peak: float, seed: float, lung_fraction: float, kind: str) -> float:
    strength = min(max((peak - seed) / 700.0, 0.0), 1.0)
    score = (0.55 + 0.45 * strength) * min(lung_fraction / 0.9, 1.0)
    return round(score * (0.9 if kind != "nodular" else 1.0), 3)


def _linked_groups(regions_mm: list[np.ndarray], eligible: list[int], gap_mm: float) -> list[list[int]]:
    """Groups of candidates whose voxels come within ``gap_mm`` of each other (chains count: the
    connected components of the graph of close pairs), in the order of ``eligible``."""
    if len(eligible) < 2:
        return []
    centres = {i: regions_mm[i].mean(axis=0) for i in eligible}
    reach = {i: float(np.linalg.norm(regions_mm[i] - centres[i], axis=1).max()) for i in eligible}
    trees: dict[int, cKDTree] = {}
    pairs = []
    for a_index, a in enumerate(eligible):
        for b_index in range(a_index + 1, len(eligible)):
            b = eligible[b_index]
            if np.linalg.norm(centres[a] - centres[b]) > reach[a] + reach[b] + gap_mm + 1.0:
                continue
            tree = trees.setdefault(a, cKDTree(regions_mm[a]))
            if tree.query(regions_mm[b], distance_upper_bound=gap_mm + 1e-6)[0].min() <= gap_mm:
                pairs.append((a_index, b_index))
    rows, cols = np.array(pairs, dtype=int).reshape(-1, 2).T
    graph = coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(len(eligible), len(eligible)))
    _, component = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = {}
    for index, i in enumerate(eligible):
        groups.setdefault(int(component[index]), []).append(i)
    return [members for members in groups.values() if len(members) > 1]


def _pieces_branch(points_mm: np.ndarray, spacing_kji: np.ndarray, extent_mm: float) -> bool:
    """Do pieces together form a branching structure (``branches_off_axis``: a side branch, not
    a row of beads) of dendriform size over contiguous slices?"""
    if extent_mm < DENDRIFORM_MIN_EXTENT_MM:
        return False
    if len(np.unique(np.round(points_mm[:, 0] / spacing_kji[0]))) < DENDRIFORM_MIN_SLICES:
        return False
    return branches_off_axis(points_mm)


LINEAR_ASPECT = 2.5  # a branch is a linear element: this many times longer than wide (as an airway tube)


def _linear(candidate: Candidate, slice_mm: float) -> bool:
    """A piece of a branch, not a bead: its length (the axial long axis, or its run over the
    slices less the two end slices that partial volume may add to a compact nodule) is at least
    ``LINEAR_ASPECT`` times its short axis."""
    run_mm = max(candidate.slices - 2, 0) * slice_mm
    return max(candidate.long_axis_mm, run_mm) >= LINEAR_ASPECT * max(candidate.short_axis_mm, 1e-3)


def _join_branching_fragments(candidates: list[Candidate], regions_mm: list[np.ndarray],
                              params: DetectionParams, spacing_kji: np.ndarray) -> list[Candidate]:
    """A branching ossification breaks into pieces where its thin branches fall between voxels.
    Pieces within ``fragment_gap_mm`` of each other are one candidate when one of them is
    dendriform (branching) or when together they branch (``_pieces_branch``) and one of them is a
    linear piece of a branch (``_linear``). Compact pieces close to each other, in a row or a
    cluster, stay separate candidates: beads are not branches, a cluster of POs is not a tree. The
    owner records how many pieces it took in (``fragments``), so the reader is told."""
    slice_mm = float(spacing_kji[0])
    eligible = [i for i, c in enumerate(candidates) if c.kind in ("nodular", "dendriform")]
    drop: set[int] = set()
    for members in _linked_groups(regions_mm, eligible, params.fragment_gap_mm):
        points = np.concatenate([regions_mm[i] for i in members])
        extent = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
        if not any(candidates[i].kind == "dendriform" for i in members) and not (
                any(_linear(candidates[i], slice_mm) for i in members) and _pieces_branch(points, spacing_kji, extent)):
            continue  # beads (compact pieces) in a row or a cluster: separate POs, not branches
        owner_index = max(members, key=lambda i: (candidates[i].kind == "dendriform",
                                                  candidates[i].volume_mm3))
        owner = candidates[owner_index]
        owner.kind = "dendriform"
        owner.volume_mm3 = sum(candidates[i].volume_mm3 for i in members)
        owner.peak_hu = max(candidates[i].peak_hu for i in members)
        owner.long_axis_mm = max(owner.long_axis_mm, extent)
        owner.slices = len(np.unique(np.round(points[:, 0] / slice_mm)))
        owner.fragments = len(members)
        drop.update(i for i in members if i != owner_index)
    return [c for i, c in enumerate(candidates) if i not in drop]


class _Detector:
    """One detection run: the thresholded lung box, and the judgement of each structure in it."""

    def __init__(self, hu, spacing, lungs, lobes, airways, contrast, params, ijk_of, lps_of, blood_hu=None):
        self.spacing = spacing
        self.spacing_kji = np.array(spacing[::-1], dtype=float)
        self.voxel_mm3 = float(np.prod(self.spacing_kji))
        self.lungs, self.lobes, self.contrast, self.params = lungs, lobes, contrast, params
        self.ijk_of, self.lps_of = ijk_of, lps_of
        self.grow_hu = params.grow_hu
        above_blood = (blood_hu + params.blood_margin_hu) if blood_hu is not None else -np.inf
        self.contrast_seed_hu = max(params.contrast_seed_hu, above_blood)
        self.seed_hu = max(params.seed_hu, above_blood)
        # small compact foci may peak lower (partial volume), but never below the brightest blood + margin
        self.faint_seed_hu = min(max(min(params.faint_seed_hu, params.seed_hu), above_blood), self.seed_hu)
        self.margin = np.ceil(2.0 * params.touch_mm / self.spacing_kji).astype(int) + 2
        self.box = bounding_box(lungs, self.margin)
        self.offset = np.array([s.start for s in self.box])
        self.ct = hu[self.box]
        self.geometry = LungGeometry(lungs, spacing)
        self.airway_tree = None
        if airways is not None and airways.any():
            airway_box = bounding_box(airways)
            points = np.argwhere(airways[airway_box]) + [b.start for b in airway_box]
            self.airway_tree = cKDTree(points * self.spacing_kji)
        self.candidates: list[Candidate] = []
        self.excluded: list[dict] = []
        self.regions_mm: list[np.ndarray] = []
        self.vessels_suppressed = 0

    def _lines_an_airway(self, region: np.ndarray, region_lo) -> bool:
        """Calcified cartilage lines an airway: lumen air (< ``airway_lumen_hu``) of a tube-shaped
        air space touches the finding's 2-voxel shell. The air space is looked at within 12 mm,
        so that a tube can be told from a cyst beside the finding."""
        params = self.params
        shell = ndimage.binary_dilation(region, iterations=2) & ~region
        lumen_shell = self.ct[tuple(slice(a, a + n) for a, n in zip(region_lo, region.shape))] < params.airway_lumen_hu
        if float((lumen_shell & shell).sum()) < params.airway_lumen_share * float(shell.sum()):
            return False
        reach = np.ceil(AIRWAY_WINDOW_MM / self.spacing_kji).astype(int)
        lo = np.maximum(np.asarray(region_lo) - reach, 0)
        hi = np.minimum(np.asarray(region_lo) + np.array(region.shape) + reach, self.ct.shape)
        spaces = cc3d.connected_components(self.ct[tuple(slice(a, b) for a, b in zip(lo, hi))]
                                           < params.airway_lumen_hu, connectivity=6)
        offset = np.asarray(region_lo) - lo
        local = tuple(slice(o, o + n) for o, n in zip(offset, region.shape))
        touching = np.unique(spaces[local][shell & lumen_shell])
        for label in touching[touching > 0]:
            points = np.argwhere(spaces == label)
            if len(points) * self.voxel_mm3 >= params.airway_lumen_min_mm3 and _air_space_is_tube(
                    points * self.spacing_kji, params):
                return True
        return False

    def _local(self, bbox_lo, bbox_hi, margin):
        lo = np.maximum(np.asarray(bbox_lo) - margin, 0)
        hi = np.minimum(np.asarray(bbox_hi) + margin, self.ct.shape)
        return lo, hi, tuple(slice(a, b) for a, b in zip(lo, hi))

    def _lung_crop(self, lo, hi) -> np.ndarray:
        return self.lungs[tuple(slice(a + o, b + o) for a, b, o in zip(lo, hi, self.offset))] > 0

    def _in_lung_share(self, component: np.ndarray, lung_local: np.ndarray) -> float:
        return float((component & lung_local).sum()) / float(component.sum())

    def _touches_lung(self, component: np.ndarray, lung_local: np.ndarray) -> bool:
        """Within ``touch_mm`` of the lung: the structure grown by that distance (on its crop) meets it."""
        if (component & lung_local).any():
            return True
        grown = edt.edt(~component, anisotropy=tuple(self.spacing_kji), black_border=False) <= self.params.touch_mm
        return bool((grown & lung_local).any())

    def _exclude(self, crop, component, lo, reason: str) -> None:
        centre = (np.argwhere(component).mean(axis=0) + lo + self.offset)[::-1]
        lps = [round(float(v), 3) for v in (self.lps_of(centre) if self.lps_of else centre)]
        self.excluded.append({"lps": lps, "peak_hu": round(float(crop[component].max()), 1), "reason": reason,
                              "volume_mm3": round(float(component.sum()) * self.voxel_mm3, 2)})

    def judge(self, labels: np.ndarray, label: int, seed_lo, seed_hi) -> None:
        """Decide on one structure (known by the box of its seed voxels): its share in or against
        the lung, then contrast vessels, hilar position and airway walls; measure and keep it
        when nothing excludes it."""
        lo, hi, local = self._local(seed_lo, seed_hi, self.margin)
        component = labels[local] == label
        lung_local = self._lung_crop(lo, hi)
        crop = self.ct[local]
        volume = float(component.sum()) * self.voxel_mm3
        share = self._in_lung_share(component, lung_local)
        if volume > self.params.max_volume_mm3 and not (self.contrast and share >= 0.5):
            if share > 0.0:  # bone or mediastinum against the lung (no distance map on such a large crop)
                # a PO on the pleura can blur into a rib touching the lung: the structure's
                # calcium inside the lung is judged apart from the bone, which is listed all the same
                self._judge_lung_side(crop, component, lo, lung_local)
                self._exclude(crop, component, lo, f"bone or mediastinum: a structure of {volume / 1000.0:.1f} "
                                                   "ml touching the lung (rib, spine, sternum, heart or great "
                                                   "vessel)")
            return
        if not self._at_lung(component, lung_local, share):
            if self._touches_lung(component, lung_local):
                self._exclude(crop, component, lo, f"outside the lung: {100.0 * (1.0 - share):.0f} % of it lies "
                                                   "beyond the lung surface and its centre more than "
                                                   f"{self.params.pleural_reach_mm:g} mm from it (chest wall, rib, "
                                                   "cartilage, mediastinum)")
            return
        if self.contrast:
            peak = float(crop[component].max())
            if peak < self.contrast_seed_hu:
                self.vessels_suppressed += 1
                return
            if _elongation(component, self.spacing_kji) > self.params.vessel_elongation:
                if not self._judge_pieces(crop, component, lo, self.params.contrast_grow_hu, self.contrast_seed_hu):
                    self.vessels_suppressed += 1
                return
        self._keep_or_exclude(crop, component, lo, lung_local)

    def _continues_as_vessel(self, component: np.ndarray, lo) -> bool:
        """With contrast: an enhanced vessel crossing the slices obliquely falls apart into one
        compact piece per slice. A piece that is itself elongated, or whose footprint, widened by
        ``VESSEL_SHIFT_MM``, holds enhanced blood (>= 150 HU) over ``VESSEL_CONTINUES_SHARE`` of its
        area in the slice above or below, is such a vessel; a calcification ends in lung. (One
        lying on an enhanced vessel is lost: a stated limit.)"""
        if _elongation(component, self.spacing_kji) > self.params.vessel_elongation:
            return True  # itself a stretch of vessel (bright enough over its length to stay whole)
        slices = np.nonzero(component.any(axis=(1, 2)))[0]
        radius = np.maximum(np.round(VESSEL_SHIFT_MM / self.spacing_kji[1:]).astype(int), 1)
        disk = np.ones(tuple(2 * radius + 1), dtype=bool)
        for k_piece, k_next in ((slices[-1], slices[-1] + 1), (slices[0], slices[0] - 1)):
            k_abs = k_next + lo[0]
            if not 0 <= k_abs < self.ct.shape[0]:
                continue
            rows, cols = np.nonzero(component[k_piece])
            rows, cols = rows + lo[1], cols + lo[2]
            r0, c0 = max(rows.min() - radius[0], 0), max(cols.min() - radius[1], 0)
            r1 = min(rows.max() + radius[0] + 1, self.ct.shape[1])
            c1 = min(cols.max() + radius[1] + 1, self.ct.shape[2])
            near = np.zeros((r1 - r0, c1 - c0), dtype=bool)
            near[rows - r0, cols - c0] = True
            near = ndimage.binary_dilation(near, structure=disk)
            window = self.ct[k_abs, r0:r1, c0:c1]
            if int((near & (window >= VESSEL_ENHANCED_HU)).sum()) >= VESSEL_CONTINUES_SHARE * rows.size:
                return True
        return False

    def _at_lung(self, component: np.ndarray, lung_local: np.ndarray, share: float) -> bool:
        """Inside the lung: mostly in the lung mask, or touching it with its centre within
        ``pleural_reach_mm`` of it (a PO on the pleura or in subpleural fibrosis denser than the
        lung mask reaches; the chest wall, ribs and cartilage lie further out)."""
        if share >= self.params.min_lung_fraction:
            return True
        if not self._touches_lung(component, lung_local):
            return False
        centre = np.round(np.argwhere(component).mean(axis=0)).astype(int)
        lo = np.maximum(centre - np.ceil(self.params.pleural_reach_mm / self.spacing_kji).astype(int) - 1, 0)
        hi = centre + np.ceil(self.params.pleural_reach_mm / self.spacing_kji).astype(int) + 2
        near = np.argwhere(lung_local[tuple(slice(a, b) for a, b in zip(lo, hi))])
        if near.size == 0:
            return False
        distance = np.sqrt(((((near + lo) - centre) * self.spacing_kji) ** 2).sum(axis=1)).min()
        return bool(distance <= self.params.pleural_reach_mm)

    def _judge_lung_side(self, crop, component, lo, lung_local) -> None:
        """The parts of a large structure (bone, mediastinum) that lie more than a voxel deep
        inside the lung and hold calcium (>= the seed threshold) are judged on their own: a PO or a
        dendriform ossification on the pleura fused by blur with a rib that touches the lung. The
        lung mask's edge may overlap a rib's cortex by a voxel: that sliver is no core. Each core is
        grown back by one voxel within the structure's part inside the lung (its edge voxels), so a
        core does not take the rib sliver it touches along. A PO on the pleura where a rib touches
        the lung may have no such core: it is found as a compact focus of its own at the lung
        (``bone_foci.foci_on_bone``: apart from the bone at the seed level, or brighter than it)."""
        inside = component & lung_local
        judged = np.zeros(component.shape, dtype=bool)
        calcific = inside & (crop >= self.seed_hu)
        if calcific.any():
            deep = edt.edt(lung_local, anisotropy=tuple(self.spacing_kji), black_border=False) > float(
                self.spacing_kji[1:].max())
            cores = cc3d.connected_components(inside & deep, connectivity=26)
            calcific_cores = np.unique(cores[calcific & deep])
            boxes = cc3d.statistics(cores)["bounding_boxes"] if calcific_cores.size else None
            for core in calcific_cores:
                box = tuple(slice(max(b.start - 2, 0), min(b.stop + 2, n)) for b, n in zip(boxes[core], cores.shape))
                part = ndimage.binary_dilation(cores[box] == core) & inside[box]
                if part.sum() * self.voxel_mm3 > self.params.max_volume_mm3 or not self._shaped_like_ossification(part):
                    continue  # too big for an ossification, or a sliver of the bone's surface
                claim(judged, box, part, self.spacing_kji)
                self._keep_or_exclude(crop[box], part, np.asarray(lo) + [b.start for b in box], lung_local[box])
        # a PO on the pleura with no core deep in the lung: a compact focus of its own at the lung (bone_foci)
        for window, piece in foci_on_bone(crop, component, lung_local, self.spacing_kji, self.faint_seed_hu,
                                          self.params.touch_mm, judged):
            self._keep_or_exclude(crop[window], piece, np.asarray(lo) + [w.start for w in window], lung_local[window])

    def _shaped_like_ossification(self, part: np.ndarray) -> bool:
        """A core split off a bone is a nodule (about as thick as it is long) or a branch (thinner
        than ``DENDRIFORM_MAX_THICKNESS_MM``), and more than a voxel thick: the lung mask's edge
        holds a sheet of a rib's surface one voxel thick, and where it overlaps the rib more (thick
        slices), a slab of rib, thick and much longer than thick."""
        box = bounding_box(part, 1)
        thickness = 2.0 * float(edt.edt(part[box], anisotropy=tuple(self.spacing_kji)).max())
        if thickness <= float(self.spacing_kji[1:].max()):
            return False
        points = np.argwhere(part) * self.spacing_kji
        length = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0))) + float(self.spacing_kji.min())
        return thickness < DENDRIFORM_MAX_THICKNESS_MM or thickness >= 0.5 * length

    def _judge_pieces(self, crop, component, lo, grow_hu: float, seed_hu: float) -> bool:
        """An enhanced vessel that may hold a calcification: its pieces at or above ``grow_hu``
        that reach ``seed_hu`` are judged on their own when small and at the lung. True when any
        piece was judged."""
        dense = component & (crop >= grow_hu)
        pieces = cc3d.connected_components(dense, connectivity=26)
        seeds = np.unique(pieces[component & (crop >= seed_hu)])
        seeds = seeds[seeds > 0]
        judged = False
        stats = cc3d.statistics(pieces) if seeds.size else None
        for piece in seeds:
            if stats["voxel_counts"][piece] * self.voxel_mm3 > self.params.max_volume_mm3:
                continue
            bbox = stats["bounding_boxes"][piece]
            p_lo, p_hi, p_local = self._local([b.start + o for b, o in zip(bbox, lo)],
                                              [b.stop + o for b, o in zip(bbox, lo)], self.margin)
            sub = np.zeros(self.ct.shape, dtype=bool)[p_local]
            rel = tuple(slice(a - o, b - o) for a, b, o in zip(p_lo, p_hi, lo))
            inner = (pieces == piece)
            window = tuple(slice(max(r.start, 0), min(r.stop, n)) for r, n in zip(rel, inner.shape))
            target = tuple(slice(w.start - r.start, w.stop - r.start) for w, r in zip(window, rel))
            sub[target] = inner[window]
            piece_lung = self._lung_crop(p_lo, p_hi)
            if self._at_lung(sub, piece_lung, self._in_lung_share(sub, piece_lung)):
                self._keep_or_exclude(self.ct[p_local], sub, p_lo, piece_lung)
                judged = True
        return judged

    def _judge_other_peaks(self, crop, component, region, background, lo, lung_local, depth: int) -> None:
        """Two POs closer than the blur's reach fuse into one structure at ``grow_hu``, and the
        half-maximum region around the peak holds only the brighter one. A part of the structure
        more than a voxel beyond that region, with a peak of its own (a local maximum at or above
        the seed threshold for small foci), is judged as another finding when it is a small
        compact focus (``_small_compact_focus``; the bumps of a calcified ridge are not) lying in
        lung (the median of its 2-voxel surround below ``NON_AERATED_HU``; a calcified bronchial
        wall at the hilum lies in soft tissue), measured with the first finding's region (grown by
        a voxel) set to the background: close POs stay separate candidates. Not with contrast
        (enhanced vessels are judged as a whole)."""
        taken = ndimage.binary_dilation(region, iterations=1)
        rest = component & ~taken
        seeds = rest & (crop >= self.faint_seed_hu)
        if not seeds.any():
            return
        peaks = seeds & (crop >= ndimage.maximum_filter(np.where(component, crop, crop.min()), size=3))
        pieces = cc3d.connected_components(rest, connectivity=26)
        apart = np.where(taken, np.asarray(background, dtype=crop.dtype), crop)  # measured without its neighbour
        for label in np.unique(pieces[peaks]):
            if not label:
                continue
            piece = pieces == label
            surround = ndimage.binary_dilation(piece, iterations=2) & ~component
            if surround.any() and float(np.median(crop[surround])) >= NON_AERATED_HU:
                continue  # a bump of a calcified wall in soft tissue (a bronchus at the hilum), not a PO in lung
            self._keep_or_exclude(apart, piece, lo, lung_local, depth + 1)

    def _keep_or_exclude(self, crop, component, lo, lung_local, depth: int = 0) -> None:
        params = self.params
        if self.contrast and self._continues_as_vessel(component, lo):
            self.vessels_suppressed += 1
            return
        lung_fraction = self._in_lung_share(component, lung_local)
        inner = bounding_box(component, MEASURE_MARGIN_VOXELS)  # measuring needs only a thin margin
        crop, component = crop[inner], component[inner]
        lo_outer = lo
        lo = lo + np.array([b.start for b in inner])
        m = measure_candidate(crop, component, self.spacing)
        if depth > 0 and not _small_compact_focus(m):
            return  # another peak of a structure counts apart only as a bead (a ridge's bump is no PO)
        if depth < MAX_PEAKS_PER_STRUCTURE - 1 and not self.contrast:
            self._judge_other_peaks(crop, component, m.region, m.background_hu, lo, lung_local[inner], depth)
        if m.peak_hu < self.seed_hu and not _small_compact_focus(m):
            return  # below calcific attenuation, and not a small compact focus that partial volume dims
        centre_kji = m.centre_kji + lo + self.offset
        ijk_kji = centre_kji[::-1]
        lps = [round(float(v), 3) for v in (self.lps_of(ijk_kji) if self.lps_of else ijk_kji)]
        reason = None
        if self.airway_tree is not None:
            distance = self.airway_tree.query(centre_kji * self.spacing_kji)[0] - 0.5 * m.long_axis_mm
            lung_local = lung_local[tuple(slice(a - b, a - b + n) for a, b, n in zip(lo, lo_outer, crop.shape))]
            if (distance <= params.hilar_margin_mm
                    and _in_aerated_lung(m.region, lung_local) < params.hilar_max_lung_shell):
                reason = f"hilar: {max(distance, 0.0):.1f} mm from the trachea or a main bronchus"
        if reason is None and self._lines_an_airway(m.region, lo):
            reason = "calcified airway wall: lines the lumen of a tube-shaped airway"
        if reason is not None:
            self.excluded.append({"lps": lps, "peak_hu": round(m.peak_hu, 1), "reason": reason,
                                  "volume_mm3": round(m.volume_mm3, 2)})
            return
        side = self.geometry.side_near(centre_kji)
        region_lo = lo + self.offset
        is_round = m.kind == "nodular" and m.long_axis_mm <= 1.5 * max(m.short_axis_mm, 0.1)
        round_radius = (3.0 * m.volume_mm3 / (4.0 * np.pi)) ** (1.0 / 3.0) if is_round else None
        zone, gap, fraction = (self.geometry.zone(m.region, region_lo, centre_kji, side, round_radius)
                               if side else ("medullary", float("nan"), None))
        self.regions_mm.append((np.argwhere(m.region) + region_lo) * self.spacing_kji)
        ijk = self.ijk_of(ijk_kji) if self.ijk_of else ijk_kji
        self.candidates.append(Candidate(
            id="", lps=lps, ijk=[round(float(v), 2) for v in ijk],
            lung=LUNG_SIDE.get(side, UNASSIGNED), lobe=lobe_at(self.lobes, centre_kji, self.spacing_kji),
            kind=m.kind, short_axis_mm=m.short_axis_mm, long_axis_mm=m.long_axis_mm,
            volume_mm3=m.volume_mm3, peak_hu=m.peak_hu, mean_hu=m.mean_hu, slices=m.slices, zone=zone,
            distance_to_pleura_mm=gap, radial_fraction=fraction,
            confidence=_confidence(m.peak_hu, self.seed_hu, lung_fraction, m.kind)))


def _seeded_structures(run: _Detector, labels: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(label, seed box low, seed box high) of every structure holding a seed voxel, found from
    the seed voxels alone (one pass, no per-label statistics over the volume). Bone is among
    them: a PO blurred into a rib is found inside it (``_judge_lung_side``)."""
    seeds = np.flatnonzero(run.ct >= run.faint_seed_hu)
    if seeds.size == 0:
        return []
    seed_labels = labels.ravel()[seeds]
    order = np.argsort(seed_labels, kind="stable")
    seeds, seed_labels = seeds[order], seed_labels[order]
    coords = np.stack(np.unravel_index(seeds, labels.shape), axis=1)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(seed_labels)) + 1])
    lows = np.minimum.reduceat(coords, starts, axis=0)
    highs = np.maximum.reduceat(coords, starts, axis=0) + 1
    return [(int(seed_labels[s]), lows[n], highs[n]) for n, s in enumerate(starts)]


def detect_candidates(hu: np.ndarray, spacing, lungs: np.ndarray, lobes: np.ndarray | None = None,
                      airways: np.ndarray | None = None, contrast: bool = False,
                      params: DetectionParams | None = None, ijk_of=None, lps_of=None,
                      progress: Progress | None = None, blood_hu: float | None = None) -> DetectionResult:
    """Candidates in an LPS-oriented (k, j, i) HU array. ``lungs``: 1 right / 2 left labels;
    ``lobes``: spec labels 1-6 or None; ``airways``: trachea and main bronchi (hilar exclusion);
    ``lps_of``/``ijk_of`` map an oriented (i, j, k) index to LPS mm and to the file's own ijk.
    ``contrast``: the study is enhanced, so large enhanced structures are vessels."""
    started = time.perf_counter()
    params = params or DetectionParams()
    progress = ensure_progress(progress)
    progress.step(0.0, "thresholding inside the lungs")
    run = _Detector(hu, spacing, lungs, lobes, airways, contrast, params, ijk_of, lps_of, blood_hu)
    labels = cc3d.connected_components(run.ct >= params.grow_hu, connectivity=26)
    seeded = _seeded_structures(run, labels)
    for number, (label, lo, hi) in enumerate(seeded):
        if number % 25 == 0:
            progress.step(0.1 + 0.85 * number / len(seeded), f"measuring structure {number + 1}")
        run.judge(labels, label, lo, hi)
    if run.vessels_suppressed:
        run.excluded.append({"reason": f"{run.vessels_suppressed} contrast-enhanced vessel structures "
                                       "suppressed", "count": run.vessels_suppressed})
    candidates = _join_branching_fragments(run.candidates, run.regions_mm, params, run.spacing_kji)
    candidates.sort(key=lambda c: (-c.confidence, c.lps[2], c.lps[1], c.lps[0]))
    for number, candidate in enumerate(candidates, start=1):
        candidate.id = f"c{number:03d}"
    progress.step(1.0, f"{len(candidates)} candidate{'s' if len(candidates) != 1 else ''}")
    parameters = asdict(params)
    parameters["effective"] = {"seed_hu": round(float(run.seed_hu), 1),
                               "faint_seed_hu": round(float(run.faint_seed_hu), 1),
                               "contrast_seed_hu": round(float(run.contrast_seed_hu), 1),
                               "brightest_blood_hu": None if blood_hu is None else round(float(blood_hu), 1)}
    return DetectionResult(candidates, run.excluded, contrast, time.perf_counter() - started, len(seeded),
                           parameters)
