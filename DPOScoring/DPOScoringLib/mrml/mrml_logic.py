"""MRML logic: turns Slicer volumes, segmentations, markups and tables into core calls and back.

Imports ``slicer`` and ``vtk`` (the real MRML library: inside Slicer, or the ``slicer-core`` wheel
headless), never ``qt`` or ``ctk``: the widget wires the GUI to these methods and holds no rules.
Every decision is written to the scene at once (the control point's description holds the
candidate's record and status, so it survives saving the markups file; the decision log and the
per-lobe assessments are node attributes, saved with the scene) and, when a review folder is set,
autosaved there atomically.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from ..common.anatomy import BY_CODE, lobe_at
from ..common.errors import DPOInputError
from ..common.safe_files import atomic_target, atomic_write_json
from ..ct.ct_image import CTVolume, check_ct_image
from ..detection.candidates_file import reading_from_candidates
from ..rules.reading import (
    BACKGROUNDS,
    KINDS,
    READING_SCHEMA,
    STATUSES,
    Reading,
    parse_finding,
    parse_lobes,
    parse_reading,
)
from ..rules.score_summary import LOBE_COLUMNS, banner_text, display_layer, lobe_rows
from ..rules.scoring import score_reading
from .mrml_lobes import MRMLLobes

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
DECISION_LOG = "DPOScoring.DecisionLog"
LOBE_ASSESSMENTS = "DPOScoring.Lobes"
BANNER = "DPOScoring.Banner"
STATUS_LAYERS = {  # what the views show: one markups node per status, coloured
    "pending": ("DPO pending", (1.0, 0.85, 0.1)),
    "confirmed": ("DPO confirmed", (0.2, 0.9, 0.3)),
    "rejected": ("DPO rejected", (0.6, 0.6, 0.6)),
    "separate": ("DPO recorded separately", (0.3, 0.6, 1.0)),
}
LAYERS = "DPOScoring.StatusLayers"
LAYER_OF = "DPOScoring.StatusLayer"
BONE_WINDOW = (2500.0, 500.0)  # width, level (spec section 2): shows -750 to 1750 HU
LUNG_WINDOW = (1500.0, -600.0)


def create_headless_scene():
    """A scene with the module logics attached as in Slicer (segmentation converters registered,
    markups logic with its selection node) for tests and batch use without the application."""
    scene = slicer.vtkMRMLScene()
    selection = slicer.vtkMRMLSelectionNode()
    selection.SetSingletonTag("Singleton")
    scene.AddNode(selection)
    segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations.SetMRMLScene(scene)
    markups = slicer.vtkSlicerMarkupsLogic()
    markups.SetMRMLScene(scene)
    scene._dpo_logics = (segmentations, markups)  # keep them alive with the scene
    return scene


class DPOScoringMRMLLogic(MRMLLobes):
    def __init__(self, scene, segmentations_logic=None):
        self.scene = scene
        self.segmentations_logic = segmentations_logic or getattr(scene, "_dpo_logics", (None,))[0] \
            or slicer.vtkSlicerSegmentationsModuleLogic()
        self.review_folder: Path | None = None
        self._findings: dict[str, tuple] = {}  # markups node ID -> (node, parsed findings), kept in step
        # lobes whose fissure points are stored on their node are watched for edits (mrml_lobes),
        # in the scene as it is and in every scene opened into it
        self._scene_observers = [
            scene.AddObserver(slicer.vtkMRMLScene.EndCloseEvent, self._on_scene_closed),
            scene.AddObserver(slicer.vtkMRMLScene.EndImportEvent, lambda caller, event: self.watch_stored_lobes())]
        self.watch_stored_lobes()

    def detach(self) -> None:
        """The module is reloaded or Slicer closes: this logic lets go of the scene (its scene and
        node observers removed, a running lobe update stopped), so that it no longer reacts to it."""
        self.forget_scene_state()
        for tag in self._scene_observers:
            self.scene.RemoveObserver(tag)
        self._scene_observers = []

    def _finding_cache(self, markups) -> list:
        """Parsed findings of a markups node, kept in step with each decision. Keyed by the node
        itself, not its ID: scene IDs restart after Close Scene, and a second review of the same CT
        must never see the first one's statuses."""
        entry = self._findings.get(markups.GetID())
        if entry is None or entry[0] is not markups or len(entry[1]) != markups.GetNumberOfControlPoints():
            entry = (markups, [self._as_finding(r, i) for i, r in enumerate(self.records(markups))])
            self._findings[markups.GetID()] = entry
        return entry[1]

    def _on_scene_closed(self, caller=None, event=None) -> None:
        self._findings = {}
        self.forget_scene_state()

    @staticmethod
    def _as_finding(record: dict, index: int):
        keys = ("id", "lobe", "kind", "status", "zone", "background", "short_axis_mm", "source")
        return parse_finding({k: record[k] for k in keys if record.get(k) is not None}, f"findings[{index}]")

    def _changed(self, markups, index: int, record: dict) -> None:
        markups.SetNthControlPointDescription(index, json.dumps(record))
        entry = self._findings.get(markups.GetID())
        if entry is not None and entry[0] is markups and index < len(entry[1]):
            entry[1][index] = self._as_finding(record, index)

    # --- volumes -----------------------------------------------------------------------------
    def load_volume(self, path: str | Path, name: str = "CT"):
        node = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        storage = self.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
        storage.SetFileName(str(path))
        if not storage.ReadData(node):
            self.scene.RemoveNode(node)
            raise DPOInputError(str(path), "could not be read as a volume")
        node.SetAndObserveStorageNodeID(storage.GetID())
        return node

    def load_segmentation(self, path: str | Path, name: str = "DPO lobes"):
        """A ``.seg.nrrd`` read by Slicer's segmentation storage node. The node keeps no storage
        node pointing at ``path`` (a temporary file): saving the scene writes it anew."""
        node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        storage = self.scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
        storage.SetFileName(str(path))
        ok = storage.ReadData(node)
        node.SetAndObserveStorageNodeID(None)
        self.scene.RemoveNode(storage)
        if not ok:
            self.scene.RemoveNode(node)
            raise DPOInputError(str(path), "could not be read as a segmentation")
        node.SetName(name)
        node.CreateDefaultDisplayNodes()
        return node

    @staticmethod
    def volume_to_image(node) -> sitk.Image:
        """The node's voxels as a SimpleITK image in LPS (as files are)."""
        image_data = node.GetImageData()
        if image_data is None:
            raise DPOInputError(node.GetName(), "has no image data")
        dims = image_data.GetDimensions()
        array = numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars()).reshape(dims[::-1])
        m, spacing, direction = DPOScoringMRMLLogic._ijk_to_lps(node)
        image = sitk.GetImageFromArray(array.copy())
        image.SetSpacing(tuple(float(s) for s in spacing))
        image.SetOrigin(tuple(float(v) for v in LPS_TO_RAS @ m[:3, 3]))
        image.SetDirection(tuple(float(v) for v in direction.ravel()))
        return image

    @staticmethod
    def _ijk_to_lps(node) -> tuple:
        """``(IJK-to-RAS matrix, spacing, direction cosines in LPS)`` of a volume node."""
        matrix = vtk.vtkMatrix4x4()
        node.GetIJKToRASMatrix(matrix)
        m = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
        spacing = np.linalg.norm(m[:3, :3], axis=0)
        return m, spacing, LPS_TO_RAS @ (m[:3, :3] / spacing)

    @staticmethod
    def volume_orientation(node) -> str:
        """The DICOM orientation code of the node's voxel order (``"LPS"`` for an axial CT stored
        head first supine, e.g. ``"RAS"`` prone), as ``sitk.DICOMOrient`` takes it."""
        direction = DPOScoringMRMLLogic._ijk_to_lps(node)[2]
        return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
            tuple(float(v) for v in direction.ravel()))

    def checked_ct(self, node) -> CTVolume:
        """Core checks (3-D, spacing, HU) on a volume node; warnings as for files."""
        return check_ct_image(self.volume_to_image(node), node.GetName(), f"scene:{node.GetID()}",
                              sha256="-")

    def labelmap_from_array(self, array: np.ndarray, image: sitk.Image, name: str):
        node = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
        data = vtk.vtkImageData()
        data.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
        data.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=1,
                                                                  array_type=vtk.VTK_UNSIGNED_CHAR))
        node.SetAndObserveImageData(data)
        direction = LPS_TO_RAS @ np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
        matrix = vtk.vtkMatrix4x4()
        for r in range(3):
            for c in range(3):
                matrix.SetElement(r, c, float(direction[r, c]))
            matrix.SetElement(r, 3, float((LPS_TO_RAS @ np.array(image.GetOrigin()))[r]))
        node.SetIJKToRASMatrix(matrix)
        return node

    @staticmethod
    def set_window(volume_node, window: tuple[float, float]) -> None:
        """Window/level on the volume's display node, so every slice view showing it follows."""
        if volume_node.GetDisplayNode() is None:
            volume_node.CreateDefaultDisplayNodes()
        display = volume_node.GetDisplayNode()
        display.SetAutoWindowLevel(False)
        display.SetWindowLevel(*window)

    def zoom_slice_views(self, field_of_view_mm: float) -> None:
        """Every slice view shows ``field_of_view_mm`` across (aspect kept): a candidate fills it."""
        for index in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
            node = self.scene.GetNthNodeByClass(index, "vtkMRMLSliceNode")
            fov = node.GetFieldOfView()
            node.SetFieldOfView(field_of_view_mm, field_of_view_mm * fov[1] / max(fov[0], 1e-6), fov[2])

    def lobe_at(self, lobe_array: np.ndarray, image: sitk.Image, lps) -> str:
        """Lobe code at an LPS point (nearest lobe within 5 mm, as for detected candidates)."""
        ijk = np.array(image.TransformPhysicalPointToContinuousIndex([float(v) for v in lps]))
        return lobe_at(lobe_array, ijk[::-1], np.array(image.GetSpacing()[::-1]))

    # --- candidates as markups ---------------------------------------------------------------
    def candidates_to_markups(self, document: dict, name: str = "DPO candidates"):
        markups = self.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
        markups.SetAttribute(DECISION_LOG, "[]")
        markups.SetAttribute(LOBE_ASSESSMENTS, "{}")
        markups.SetAttribute("DPOScoring.Input", json.dumps(document.get("input", {})))
        modifying = markups.StartModify()  # one modified event for all points: 40x faster
        for candidate in document["candidates"]:
            self._add_point(markups, candidate)
        markups.EndModify(modifying)
        return markups

    def _add_point(self, markups, record: dict) -> int:
        ras = LPS_TO_RAS @ np.array(record["lps"], dtype=float)
        index = markups.AddControlPoint(vtk.vtkVector3d(*ras), record["id"])
        markups.SetNthControlPointDescription(index, json.dumps(record))
        markups.SetNthControlPointLocked(index, True)  # no accidental drags
        return index

    @staticmethod
    def record(markups, index: int) -> dict:
        return json.loads(markups.GetNthControlPointDescription(index))

    def records(self, markups) -> list[dict]:
        return [self.record(markups, i) for i in range(markups.GetNumberOfControlPoints())]

    def decide(self, markups, index: int, reader: str, status: str | None = None, kind: str | None = None,
               background: str | None = None, autosave: bool = True) -> dict:
        """Confirm, reject, reset or re-classify one candidate; logged at once and saved to the
        review folder (``autosave=False`` lets a GUI refresh its tallies first and call
        ``autosave`` right after, so the display never waits for the disk)."""
        record = self.record(markups, index)
        before = dict(record)
        change = {}
        for field, value, allowed in (("status", status, STATUSES), ("kind", kind, KINDS),
                                      ("background", background, BACKGROUNDS)):
            if value is None:
                continue
            if value not in allowed:
                raise DPOInputError(field, f"{value!r} is not one of {', '.join(allowed)}")
            change[field] = (record.get(field), value)
            record[field] = value
        self._as_finding(record, index)  # the whole record valid before anything is written
        self._changed(markups, index, record)
        self._relayer(markups, before, record)
        self._log(markups, reader, {"id": record["id"], **{k: list(v) for k, v in change.items()}}, autosave)
        return record

    def undo(self, markups, reader: str) -> dict | None:
        """Reverts the last decision (itself logged); a point the reader placed is removed."""
        log = json.loads(markups.GetAttribute(DECISION_LOG) or "[]")
        last = next((entry for entry in reversed(log) if "id" in entry and not entry.get("undone")), None)
        if last is None:
            return None
        index = next((i for i in range(markups.GetNumberOfControlPoints())
                      if markups.GetNthControlPointLabel(i) == last["id"]), None)
        if index is None:
            raise DPOInputError("undo", f"{last['id']} is no longer among the candidates")
        record = self.record(markups, index)
        if last.get("added"):
            self._remove_from_layer(markups, record)
            markups.RemoveNthControlPoint(index)
            self._findings.pop(markups.GetID(), None)
        else:
            before = dict(record)
            for field in ("status", "kind", "background"):
                if field in last:
                    record[field] = last[field][0]
            self._changed(markups, index, record)
            self._relayer(markups, before, record)
        last["undone"] = True
        markups.SetAttribute(DECISION_LOG, json.dumps(log))
        self._log(markups, reader, {"undo": last["id"]})
        return record

    def measure_reader_point(self, volume, lps, lungs: np.ndarray | None = None) -> dict:
        """Measurements of the ossification at a placed point, as for a detected candidate."""
        from ..detection.point_measurement import measure_point

        ct = self.checked_ct(volume)
        ijk = ct.image.TransformPhysicalPointToContinuousIndex([float(v) for v in lps])
        measured = measure_point(ct.array, ct.spacing, list(ijk)[::-1], lungs)
        if "centre_kji" in measured:
            measured["lps"] = [round(float(v), 3) for v in ct.ijk_to_lps(measured.pop("centre_kji")[::-1])]
        return measured

    def add_reader_finding(self, markups, lps, lobe: str, reader: str, kind: str | None = None,
                           measurements: dict | None = None) -> int:
        """A point the reader places on a missed ossification; confirmed by placing it. With
        ``measurements`` (``measure_reader_point``) it carries sizes, HU, zone and its centre."""
        number = sum(1 for r in self.records(markups) if r.get("source") == "reader") + 1
        measured = dict(measurements or {})
        record = {"id": f"r{number:03d}", "lps": [float(v) for v in lps], "lobe": lobe,
                  "status": "confirmed", "source": "reader", **measured,
                  "kind": kind or measured.get("kind", "nodular")}
        try:
            self._as_finding(record, markups.GetNumberOfControlPoints())  # valid before it is added
        except DPOInputError as error:
            if lobe in BY_CODE:
                raise
            raise DPOInputError("placed point", "is in no lobe: compute or load the lobes first, "
                                "or place it inside a lobe") from error
        index = self._add_point(markups, record)
        self._relayer(markups, None, record)
        self._log(markups, reader, {"id": record["id"], "added": True})
        return index

    def suggest_extents(self, markups, lobe_array: np.ndarray, image: sitk.Image, only=None) -> dict:
        """Software suggestions for the extent answer (``extent_suggestion.py``), stored beside the
        reader's answers, which they never replace."""
        from ..detection.extent_suggestion import suggested_extent_fractions

        positions: dict[str, list] = {}
        for record in self.records(markups):
            if (record.get("status") == "confirmed" and record.get("kind") in ("nodular", "dendriform")
                    and (only is None or record.get("lobe") in only)):
                ijk = image.TransformPhysicalPointToContinuousIndex([float(v) for v in record["lps"]])
                positions.setdefault(record["lobe"], []).append(list(ijk)[::-1])
        fractions = suggested_extent_fractions(lobe_array, image.GetSpacing(), positions)
        lobes = json.loads(markups.GetAttribute(LOBE_ASSESSMENTS) or "{}")
        for code, fraction in fractions.items():
            lobes.setdefault(code, {})["extent_fraction_suggested"] = fraction
        markups.SetAttribute(LOBE_ASSESSMENTS, json.dumps(lobes))
        return fractions

    @staticmethod
    def lobe_assessments(markups) -> dict:
        """The per-lobe assessments saved with the candidates (lobe code -> answers)."""
        return json.loads(markups.GetAttribute(LOBE_ASSESSMENTS) or "{}")

    def set_lobe_assessment(self, markups, code: str, assessment: dict, reader: str) -> None:
        """Replaces a lobe's answers (the software's extent suggestion is kept)."""
        lobes = self.lobe_assessments(markups)
        suggestion = lobes.get(code, {}).get("extent_fraction_suggested")
        lobes[code] = dict(assessment)
        if suggestion is not None:
            lobes[code].setdefault("extent_fraction_suggested", suggestion)
        parse_reading({"schema": READING_SCHEMA, "lobes": lobes})  # validated before it is kept
        markups.SetAttribute(LOBE_ASSESSMENTS, json.dumps(lobes))
        self._log(markups, reader, {"lobe": code, "assessment": assessment})

    def update_lobe_assessment(self, markups, code: str, reader: str, ild: dict | None = None, **answers) -> dict:
        """Changes only the given answers of a lobe (one table cell), keeping all others;
        ``ild={"honeycombing": 2}`` changes one pattern, ``ild={"honeycombing": None}`` clears it."""
        current = self.lobe_assessments(markups).get(code, {})
        merged = {k: v for k, v in current.items() if k != "extent_fraction_suggested"}
        merged.update(answers)
        if ild:
            patterns = dict(merged.get("ild", {}))
            patterns.update(ild)
            merged["ild"] = {k: v for k, v in patterns.items() if v is not None}
        self.set_lobe_assessment(markups, code, merged, reader)
        return merged

    def _log(self, markups, reader: str, entry: dict, autosave: bool = True) -> None:
        log = json.loads(markups.GetAttribute(DECISION_LOG) or "[]")
        log.append({"time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "reader": reader, **entry})
        markups.SetAttribute(DECISION_LOG, json.dumps(log))
        if autosave and self.review_folder is not None:
            self.autosave(markups, self.review_folder)

    # --- status layers: what the views show -------------------------------------------------
    @staticmethod
    def layer_of(record: dict) -> str:
        return display_layer(record)

    def status_layers(self, markups) -> dict:
        """One locked markups node per status (pending yellow, confirmed green, rejected grey,
        recorded separately blue) mirroring the candidates; the data node itself is hidden. Each
        decision moves one point between layers."""
        for index in reversed(range(self.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode"))):
            old = self.scene.GetNthNodeByClass(index, "vtkMRMLMarkupsFiducialNode")
            if old.GetAttribute(LAYER_OF) is not None:  # one review shown at a time
                self.scene.RemoveNode(old)
        layers = {}
        for status, (name, colour) in STATUS_LAYERS.items():
            node = self.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
            node.SetAttribute(LAYER_OF, status)
            node.CreateDefaultDisplayNodes()
            display = node.GetDisplayNode()
            display.SetSelectedColor(*colour)
            display.SetColor(*colour)
            node.SetLocked(True)
            layers[status] = node
        modifying = {status: node.StartModify() for status, node in layers.items()}
        for record in self.records(markups):
            self._layer_add(layers[self.layer_of(record)], record)
        for status, node in layers.items():
            node.EndModify(modifying[status])
        markups.SetAttribute(LAYERS, json.dumps({status: node.GetID() for status, node in layers.items()}))
        if markups.GetDisplayNode() is None:
            markups.CreateDefaultDisplayNodes()
        markups.GetDisplayNode().SetVisibility(False)
        return layers

    def _layers(self, markups) -> dict:
        ids = json.loads(markups.GetAttribute(LAYERS) or "{}")
        return {status: self.scene.GetNodeByID(node_id) for status, node_id in ids.items()
                if self.scene.GetNodeByID(node_id) is not None}

    @staticmethod
    def _layer_add(layer, record: dict) -> None:
        index = layer.AddControlPoint(vtk.vtkVector3d(*(LPS_TO_RAS @ np.array(record["lps"], dtype=float))),
                                      record["id"])
        layer.SetNthControlPointLocked(index, True)

    def _remove_from_layer(self, markups, record: dict) -> None:
        layer = self._layers(markups).get(self.layer_of(record))
        if layer is None:
            return
        for index in range(layer.GetNumberOfControlPoints()):
            if layer.GetNthControlPointLabel(index) == record["id"]:
                layer.RemoveNthControlPoint(index)
                return

    def _relayer(self, markups, before: dict | None, after: dict) -> None:
        layers = self._layers(markups)
        if not layers:
            return
        if before is not None:
            self._remove_from_layer(markups, before)
        self._layer_add(layers[self.layer_of(after)], after)

    def show_layer(self, markups, status: str, visible: bool) -> None:
        layer = self.layer(markups, status)
        if layer is not None and layer.GetDisplayNode() is not None:
            layer.GetDisplayNode().SetVisibility(bool(visible))

    def layer(self, markups, status: str):
        """The markups node showing ``status`` for these candidates (None before status_layers)."""
        return self._layers(markups).get(status)

    # --- the candidates table ----------------------------------------------------------------
    CANDIDATE_COLUMNS = ("id", "lobe", "short axis (mm)", "peak HU", "kind", "zone", "status")

    def candidates_table(self, markups, table=None):
        """One row per control point, in the same order (row i is point i), for the sortable view."""
        if table is None:
            table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", "DPO candidates table")
        table.RemoveAllColumns()
        records = self.records(markups)
        columns = [[r.get("id", ""), r.get("lobe", ""), f"{r.get('short_axis_mm', float('nan')):.1f}",
                    f"{r.get('peak_hu', float('nan')):.0f}", r.get("kind", ""), r.get("zone") or "",
                    r.get("status", "")] for r in records]
        for number, name in enumerate(self.CANDIDATE_COLUMNS):
            array = vtk.vtkStringArray()
            array.SetName(name)
            array.SetNumberOfValues(len(records))
            for row, values in enumerate(columns):
                array.SetValue(row, values[number])
            table.AddColumn(array)
        return table

    def update_candidate_row(self, table, markups, index: int) -> None:
        record = self.record(markups, index)
        table.SetCellText(index, self.CANDIDATE_COLUMNS.index("kind"), record.get("kind", ""))
        table.SetCellText(index, self.CANDIDATE_COLUMNS.index("status"), record.get("status", ""))

    # --- reading, scores, table --------------------------------------------------------------
    def reading(self, markups, reader: str = "") -> dict:
        document = {"input": json.loads(markups.GetAttribute("DPOScoring.Input") or "{}") or
                    {"source": "", "sha256": ""}, "candidates": self.records(markups)}
        document["input"].setdefault("source", "")
        document["input"].setdefault("sha256", "")
        reading = reading_from_candidates(document, reader=reader)
        reading["lobes"] = json.loads(markups.GetAttribute(LOBE_ASSESSMENTS) or "{}")
        reading["decisions"] = json.loads(markups.GetAttribute(DECISION_LOG) or "[]")
        return reading

    def update_results(self, markups, table=None, policy=None, reader: str | None = None) -> tuple[dict, object]:
        """Scores from the core engine into a table node (one row per lobe) and its banner. With
        ``reader`` (the reader's id, "" when none was given) the banner says "not assessed" where no
        ILD answer was given and "complete" only for a reviewed case, as the report does."""
        from ..rules.policy import DEFAULT_POLICY

        assessments = json.loads(markups.GetAttribute(LOBE_ASSESSMENTS) or "{}")
        reading = Reading(findings=tuple(self._finding_cache(markups)), lobes=parse_lobes(assessments))
        words = None if reader is None else self.reading(markups, reader)
        scores = score_reading(reading, policy or DEFAULT_POLICY)
        if table is None:
            table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", "DPO results")
        table.RemoveAllColumns()
        for column in LOBE_COLUMNS:
            array = vtk.vtkStringArray()
            array.SetName(column)
            table.AddColumn(array)
        for row in lobe_rows(scores, words):
            index = table.AddEmptyRow()
            for column, value in enumerate(row):
                table.SetCellText(index, column, value)
        table.SetAttribute(BANNER, banner_text(scores, words))
        return scores, table

    # --- saving ------------------------------------------------------------------------------
    def save_review(self, markups, folder: str | Path) -> Path:
        """The review folder: markups (.mrk.json), reading.json and decisions.json, written
        atomically; the markups file goes through Slicer's own storage node."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        storage = markups.GetStorageNode()
        if storage is None:
            storage = self.scene.AddNewNodeByClass("vtkMRMLMarkupsJsonStorageNode")
            markups.SetAndObserveStorageNodeID(storage.GetID())
        with atomic_target(folder / "candidates.mrk.json", overwrite=True, keep_suffixes=True) as temporary:
            storage.SetFileName(str(temporary))
            if not storage.WriteData(markups):
                raise DPOInputError(str(folder), "the markups could not be written")
        storage.SetFileName(str(folder / "candidates.mrk.json"))
        reading = self.reading(markups)
        atomic_write_json(folder / "reading.json", reading, overwrite=True)
        atomic_write_json(folder / "decisions.json", reading["decisions"], overwrite=True)
        return folder

    def autosave(self, markups, folder: str | Path | None = None) -> Path | None:
        """After every decision: ``reading.json`` (findings with positions and statuses, lobe
        assessments, decision log) written atomically; enough to restore the review."""
        folder = folder or self.review_folder
        if folder is None:
            return None
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return atomic_write_json(folder / "reading.json", self.reading(markups), overwrite=True)

    def load_review(self, folder: str | Path):
        """Markups restored from a review folder's ``reading.json``, with statuses, lobe
        assessments and the decision log."""
        from ..rules.reading import load_json_file

        folder = Path(folder)
        reading = load_json_file(folder / "reading.json", "reading file")
        try:
            parse_reading({k: v for k, v in reading.items() if k != "decisions"})
        except DPOInputError as error:
            raise DPOInputError(f"{folder / 'reading.json'}: {error.where}", error.problem) from None
        markups = self.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "DPO candidates")
        modifying = markups.StartModify()
        for finding in reading.get("findings", []):
            if "lps" not in finding:
                raise DPOInputError(f"{folder / 'reading.json'}: findings", f"{finding.get('id')} has no position")
            self._add_point(markups, finding)
        markups.EndModify(modifying)
        markups.SetAttribute(LOBE_ASSESSMENTS, json.dumps(reading.get("lobes", {})))
        markups.SetAttribute(DECISION_LOG, json.dumps(reading.get("decisions", [])))
        markups.SetAttribute("DPOScoring.Input", json.dumps(reading.get("ct", {})))
        return markups
