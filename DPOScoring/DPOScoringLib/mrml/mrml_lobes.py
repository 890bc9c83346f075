"""Lobes in the scene: a segmentation node read back as the spec's label values 1-6, whoever made
it (the ``lobes`` command's ``.seg.nrrd``, lungmask, a TotalSegmentator import, the Segment Editor),
the fissure points the reader drags, and the lobes recomputed from them.

A segment is recognised as a lobe, in this order, by our own ``DPOScoring.LobeCode`` tag, by its
standard terminology (SNOMED CT type code and laterality, as Slicer's terminology entries hold
them), or by its name ("right upper lobe", "lung_upper_lobe_left", "LING" ...). A left upper lobe
that includes the lingula is split by the core's lingula split.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from ..common.anatomy import BY_CODE, BY_LABEL, lungs_from_lobes
from ..common.errors import DPOInputError
from ..ct.ct_image import orient_lps
from ..lobes.lobe_files import lobe_code_for_name, terminology_tag, to_spec_labels
from .mrml_lobe_layer import LobeLayer

LOBE_CODE_TAG = "DPOScoring.LobeCode"
FISSURE_ATTRIBUTE = "DPOScoring.Fissure"
_RIGHT, _LEFT = "24028007", "7771000"  # SNOMED CT laterality (DICOM master list)
_UPPER, _MIDDLE, _LOWER = "45653009", "72481006", "90572001"


def code_from_terminology(tag: str) -> str | None:
    """Our lobe code (``LUL+`` for a left upper lobe that may hold the lingula) from a serialized
    terminology entry ``context~category~type~modifier~anatomicContext~region~regionModifier``
    (vtkSlicerTerminologiesModuleLogic::SerializeTerminologyEntry, Slicer 5.8-5.12)."""
    codes = []
    for field in tag.rstrip("|").split("~"):
        parts = field.split("^")
        if len(parts) == 3:
            codes.append((parts[1], parts[2].lower()))
    values = {value for value, _ in codes}
    meanings = " ".join(meaning for _, meaning in codes)
    if "lingula" in meanings:
        return "LING"
    right, left = _RIGHT in values or " right" in f" {meanings}", _LEFT in values or " left" in f" {meanings}"
    if _MIDDLE in values:
        return "RML"
    if right == left:
        return None
    if _UPPER in values:
        return "RUL" if right else ("LUL" if "division" in meanings else "LUL+")
    if _LOWER in values:
        return "RLL" if right else "LLL"
    return None


def segment_lobe_code(segment) -> str | None:
    """How a segment is recognised as a lobe: our tag, then terminology, then its name."""
    tag = vtk.mutable("")
    if segment.GetTag(LOBE_CODE_TAG, tag) and str(tag) in BY_CODE:
        return str(tag)
    terminology = vtk.mutable("")
    if segment.GetTag(segment.GetTerminologyEntryTagName(), terminology) and str(terminology):
        code = code_from_terminology(str(terminology))
        if code:
            return code
    return lobe_code_for_name(segment.GetName() or "")


class MRMLLobes:
    """Mixed into ``DPOScoringMRMLLogic``: needs ``self.scene``, ``self.segmentations_logic``,
    ``labelmap_from_array``, ``volume_to_image`` and ``checked_ct``."""

    def lobes_to_segmentation(self, lobes: np.ndarray, image: sitk.Image, reference_volume=None,
                              segmentation=None):
        """The six lobes as named, coloured segments with terminology, in a new segmentation node
        or replacing the segments of ``segmentation`` (the node keeps its ID and display)."""
        present = [int(v) for v in np.unique(lobes) if v > 0]
        if not present:
            raise DPOInputError("lobes", "are empty: no lobe to put into the segmentation")
        labelmap = self.labelmap_from_array(lobes.astype(np.uint8), image, "lobes labelmap")
        if segmentation is None:
            segmentation = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "DPO lobes")
        else:
            segmentation.GetSegmentation().RemoveAllSegments()
        if reference_volume is not None:
            segmentation.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
        try:
            if not self.segmentations_logic.ImportLabelmapToSegmentationNode(labelmap, segmentation):
                raise DPOInputError("lobes", "could not be imported into a segmentation")
        finally:
            self.scene.RemoveNode(labelmap)
        segments = segmentation.GetSegmentation()
        for index, value in enumerate(present):
            lobe = BY_LABEL[value]
            segment = segments.GetNthSegment(index)
            segment.SetName(lobe.name)
            segment.SetColor(*lobe.color)
            segment.SetTag(segment.GetTerminologyEntryTagName(), terminology_tag(lobe.code))
            segment.SetTag(LOBE_CODE_TAG, lobe.code)
        return segmentation

    def lobe_codes(self, segmentation) -> dict[str, str]:
        """Segment ID -> lobe code (or ``LUL+``) for every segment recognised as a lobe."""
        segments = segmentation.GetSegmentation()
        found = {}
        for index in range(segments.GetNumberOfSegments()):
            code = segment_lobe_code(segments.GetNthSegment(index))
            if code:
                found[segments.GetNthSegmentID(index)] = code
        return found

    def lobe_array(self, segmentation, reference_volume) -> np.ndarray:
        """The segmentation back as spec labels 1-6 on the reference volume's grid (LPS-oriented
        array as the core uses it). Raises when no segment is recognisable as a lobe."""
        codes = self.lobe_codes(segmentation)
        if not codes:
            names = [segmentation.GetSegmentation().GetNthSegment(i).GetName()
                     for i in range(segmentation.GetSegmentation().GetNumberOfSegments())]
            raise DPOInputError(segmentation.GetName(), "has no segment recognisable as a lung lobe "
                                f"(by terminology or name; segments: {', '.join(names) or 'none'})")
        layer = LobeLayer.find(segmentation, reference_volume, codes)
        if layer is not None:  # the six lobes in one layer on the volume's grid: read in place
            return layer.read()
        lobes, needs_split = self.exported_lobes(segmentation, reference_volume, codes)
        if needs_split:  # a left upper lobe with the lingula (lungmask, TotalSegmentator)
            from ..lobes.lingula_split import split_lingula

            lobes, _points = split_lingula(lobes, self.checked_ct(reference_volume).geometry)
        return lobes.astype(np.uint8)

    def exported_lobes(self, segmentation, reference_volume, codes: dict) -> tuple:
        """The lobe segments ``codes`` (segment ID -> code) exported through Slicer's
        ``ExportSegmentsToLabelmapNode`` onto the reference volume's grid, as spec labels and
        whether the lingula is still to be split out (``to_spec_labels``)."""
        ids = vtk.vtkStringArray()
        for segment_id in codes:
            ids.InsertNextValue(segment_id)
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        try:
            self.segmentations_logic.ExportSegmentsToLabelmapNode(segmentation, ids, labelmap, reference_volume)
            exported = sitk.GetArrayFromImage(orient_lps(self.volume_to_image(labelmap)))
        finally:
            self.scene.RemoveNode(labelmap)
        return to_spec_labels(exported, dict(enumerate(codes.values(), start=1)))

    @staticmethod
    def segmentation_content_key(segmentation) -> tuple:
        """Changes whenever a segment's voxels, the segment list or the node changes: the
        modification times of each segment's binary labelmap (what the Segment Editor edits; the
        segmentation node's own MTime does not change then)."""
        segments = segmentation.GetSegmentation()
        name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
        key = [segmentation.GetID(), segmentation.GetMTime(), segments.GetMTime()]
        for index in range(segments.GetNumberOfSegments()):
            segment = segments.GetNthSegment(index)
            representation = segment.GetRepresentation(name)
            key += [segments.GetNthSegmentID(index), segment.GetMTime(),
                    representation.GetMTime() if representation is not None else 0]
        return tuple(key)

    def cached_lobe_array(self, segmentation, volume):
        """``(lobe_array, image)``, recomputed only when the segmentation's content changed; both
        LPS-oriented (the image's voxels in the lobe array's order, whatever the volume's axes)."""
        key = (self.segmentation_content_key(segmentation), volume.GetID(), volume.GetMTime())
        if getattr(self, "_lobe_cache_key", None) != key:
            self._lobe_cache = (self.lobe_array(segmentation, volume), orient_lps(self.volume_to_image(volume)))
            self._lobe_cache_key = key
        return self._lobe_cache

    # --- fissure points as markups ----------------------------------------------------------
    def show_fissure_points(self, points: dict) -> list:
        """One markups node per fissure ("DPO fissure RO" ...), for the reader to drag; reused
        (emptied and refilled) when lobes are computed again."""
        from ..lobes.fissures import FISSURE_NAMES
        from .mrml_logic import LPS_TO_RAS

        self._shown_points = {name: np.asarray(values, dtype=float).copy() for name, values in points.items()}
        self._shown_for = None  # (which segmentation: remember_lobe_points says)
        nodes = []
        for name, values in points.items():
            node = self.scene.GetFirstNodeByName(f"DPO fissure {name}") or \
                self.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", f"DPO fissure {name}")
            node.RemoveAllControlPoints()
            node.SetAttribute(FISSURE_ATTRIBUTE, name)
            node.SetDescription(FISSURE_NAMES[name])
            for lps in values:
                node.AddControlPoint(vtk.vtkVector3d(*(LPS_TO_RAS @ np.asarray(lps, dtype=float))))
            nodes.append(node)
        return nodes

    def remember_lobe_points(self, segmentation, volume, points: dict) -> bool:
        """The lobes of ``segmentation`` were made from ``points``: kept on the node with the lobes'
        digest (``mrml_lobe_points``), so that a drag after a scene reload takes the fast path.
        Needs the lobes in one shared layer on ``volume``'s grid (else nothing is stored)."""
        layer = LobeLayer.find(segmentation, volume, self.lobe_codes(segmentation))
        if layer is not None:
            self.keep_lobe_points(segmentation, points, layer.digest())
        self._shown_for = segmentation
        return layer is not None

    def keep_lobe_points(self, segmentation, points: dict, digest: str) -> None:
        """``points`` and the digest of the lobes made from them stored on the node, and the node
        watched: an edit of its lobes from now on (Segment Editor, an import) marks them edited
        (``mrml_lobe_points.mark_edited``), so that after a reload a drag keeps the edits."""
        from .mrml_lobe_points import store_points

        store_points(segmentation, points, digest)
        self._watch_lobe_edits(segmentation)

    def watch_stored_lobes(self) -> int:
        """Every segmentation node of the scene holding stored points is watched for edits (a
        scene just opened). Returns how many nodes are watched."""
        from .mrml_lobe_points import POINTS_ATTRIBUTE

        for index in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")):
            node = self.scene.GetNthNodeByClass(index, "vtkMRMLSegmentationNode")
            if node.GetAttribute(POINTS_ATTRIBUTE):
                self._watch_lobe_edits(node)
        return len(getattr(self, "_edit_watches", {}))

    def _watch_lobe_edits(self, segmentation) -> None:
        """One observer per node of the segmentation's voxel edits (the node re-sends
        vtkSegmentation::SourceRepresentationModified, which Segment Editor effects cause)."""
        from .mrml_lobe_points import mark_edited

        watches = getattr(self, "_edit_watches", {})
        entry = watches.get(segmentation.GetID())
        if entry is None or entry[0] is not segmentation:
            tag = segmentation.AddObserver(slicer.vtkSegmentation.SourceRepresentationModified,
                                           lambda caller, event: mark_edited(caller))
            watches[segmentation.GetID()] = (segmentation, tag)
        self._edit_watches = watches

    def fissure_nodes(self) -> list:
        """The scene's fissure point nodes ("DPO fissure RO" ...), e.g. after a scene was opened."""
        from ..lobes.fissures import FISSURES

        nodes = [self.scene.GetFirstNodeByName(f"DPO fissure {name}") for name in FISSURES]
        return [node for node in nodes if node is not None and node.GetAttribute(FISSURE_ATTRIBUTE)]

    def observe_fissure_drags(self, nodes, callback) -> int:
        """``callback()`` when the reader releases a dragged fissure point: one observer per node
        however often lobes are computed (the previous one is replaced). Returns how many nodes
        are observed."""
        observers = getattr(self, "_fissure_observers", {})
        for node in nodes:
            previous = observers.pop(node.GetID(), None)
            if previous is not None and previous[0] is node:
                node.RemoveObserver(previous[1])
            tag = node.AddObserver(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent,
                                   lambda caller, event: callback())
            observers[node.GetID()] = (node, tag)
        self._fissure_observers = observers
        return len(observers)

    def fissure_points(self) -> dict:
        """The fissure points as they are now in the scene (LPS)."""
        from ..lobes.fissures import FISSURES
        from .mrml_logic import LPS_TO_RAS

        points = {}
        for name in FISSURES:
            node = self.scene.GetFirstNodeByName(f"DPO fissure {name}")
            if node is not None and node.GetNumberOfControlPoints() >= 3:
                ras = [[0.0, 0.0, 0.0] for _ in range(node.GetNumberOfControlPoints())]
                for index, position in enumerate(ras):
                    node.GetNthControlPointPosition(index, position)
                points[name] = np.array(ras) @ LPS_TO_RAS
        return points

    @property
    def lobe_updates(self):
        """After a drag: the lobes recomputed in a worker thread, written back where they change
        (``mrml_lobe_drag.LobeUpdates``: start / poll / wait)."""
        if getattr(self, "_lobe_updates", None) is None:
            from .mrml_lobe_drag import LobeUpdates

            self._lobe_updates = LobeUpdates(self)
        return self._lobe_updates

    def recompute_lobes(self, volume, segmentation, in_place: bool = False):
        """Lobes from the lungs of ``segmentation`` and the scene's fissure points: a new node, or
        with ``in_place`` the same node's segments replaced (the CT checked, every voxel imported:
        the slow path; a drag takes ``lobe_updates``). Nothing is changed when the
        segmentation holds no lobes or the result would be empty."""
        from ..lobes.fissures import assign_lobes, update_lobes

        ct = self.checked_ct(volume)
        current = self.lobe_array(segmentation, volume)
        lungs = lungs_from_lobes(current)
        points = self.fissure_points()
        shown = getattr(self, "_shown_points", None)
        if shown and set(shown) == set(points):
            # only the voxels a moved surface swept change: the other fissures (fitted to the image,
            # which their control points only approximate) and the reader's edits stay as they are
            lobes, _ = update_lobes(current, lungs, ct.geometry, shown, points)
        else:
            lobes = assign_lobes(lungs, ct.geometry, points)
        self._shown_points = {name: np.asarray(values, dtype=float).copy() for name, values in points.items()}
        result = self.lobes_to_segmentation(lobes, ct.image, volume, segmentation if in_place else None)
        self.remember_lobe_points(result, volume, points)  # stored fresh: the import's 'edited' mark replaced
        return result

    def forget_scene_state(self) -> None:
        """After Close Scene: no cache or observer may refer to the closed scene's nodes."""
        observed = [*getattr(self, "_fissure_observers", {}).values(), *getattr(self, "_edit_watches", {}).values()]
        for node, tag in observed:
            node.RemoveObserver(tag)
        self._fissure_observers = {}
        self._edit_watches = {}
        if getattr(self, "_lobe_updates", None) is not None:
            self._lobe_updates.forget()
        self._shown_points = None
        self._shown_for = None
        self._lobe_cache_key = None
        self._lobe_cache = None
