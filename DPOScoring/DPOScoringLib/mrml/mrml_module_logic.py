"""What the module's logic does with the parameter node (CT, lobes, candidates, tables, policy),
without the GUI: ``DPOScoring.DPOScoringLogic`` adds only Slicer's ``ScriptedLoadableModuleLogic``.

Everything here runs headless over the real MRML library (slicer-core), so the module's flow is
tested through files as Slicer does it (``Testing/Python/mrml/test_slicer_module_flow.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import SimpleITK as sitk

from ..common.anatomy import lungs_from_lobes
from ..common.errors import DPOInputError
from ..rules.policy import ScoringPolicy
from .module_panel import CHECKBOX_COLUMNS
from .mrml_logic import DPOScoringMRMLLogic
from .mrml_workspace import export_volume, new_work_folder, remove_all_work_folders, remove_work_folder

RESOURCES = Path(__file__).resolve().parents[2] / "Resources"
LUNGMASK_REQUIREMENT = "lungmask==0.2.22"


def has_value(path) -> bool:
    """A parameter node path that was really set (an empty one reads back as ``.``)."""
    return bool(path) and str(path) not in ("", ".")


class ModuleLogic:
    def __init__(self, scene=None, segmentations_logic=None) -> None:
        # ScriptedLoadableModuleLogic.__init__ calls super().__init__() without arguments (5.8-5.12):
        # DPOScoringLogic then calls this again with the scene.
        if scene is not None:
            self.mrml = DPOScoringMRMLLogic(scene, segmentations_logic)

    @staticmethod
    def policyFrom(parameterNode) -> ScoringPolicy:
        return ScoringPolicy(def1=parameterNode.def1, def2=parameterNode.def2,
                             dendriform_nodules=parameterNode.dendriformNodules)

    # --- dependencies ----------------------------------------------------------------------
    def ensureDependencies(self, testing: bool = False, slicer_module=None) -> str | None:
        """scikit-image, cc3d and edt into Slicer's Python (5.8-5.12), with the user's consent."""
        from .slicer_dependencies import ensure, requirement_lines

        folder = new_work_folder(prefix="dpo-pip-")
        try:
            return ensure(requirement_lines(RESOURCES / "requirements.txt"), "DPO Scoring", folder,
                          RESOURCES / "constraints.txt", slicer_module, testing)
        finally:
            remove_work_folder(folder)

    def ensureLungmask(self, slicer_module=None) -> str | None:
        from .slicer_dependencies import ensure

        folder = new_work_folder(prefix="dpo-pip-")
        try:
            return ensure([LUNGMASK_REQUIREMENT], "DPO Scoring (lungmask)", folder, None, slicer_module)
        finally:
            remove_work_folder(folder)

    # --- the background process's inputs ---------------------------------------------------
    def lobeArguments(self, parameterNode, folder) -> tuple[list, str, str, str]:
        """(``dpo-score lobes`` arguments, segmentation file, points file, provenance file) in a work folder."""
        ct = str(export_volume(parameterNode.inputVolume, Path(folder) / "ct.nrrd"))
        out, points = os.path.join(folder, "lobes.seg.nrrd"), os.path.join(folder, "points.json")
        provenance = os.path.join(folder, "provenance.json")
        arguments = ["lobes", ct, "--method", parameterNode.lobeMethod, "--out", out, "--points-out", points,
                     "--provenance-out", provenance]
        if parameterNode.lobeMethod == "import":
            if not has_value(parameterNode.lobeImportPath):
                raise ValueError("Choose the lobe file or TotalSegmentator folder to import (Import from).")
            arguments += ["--from", str(parameterNode.lobeImportPath)]
        if parameterNode.lobeMethod == "lungmask" and has_value(parameterNode.lungmaskWeights):
            arguments += ["--weights", str(parameterNode.lungmaskWeights)]
        return arguments, out, points, provenance

    def detectArguments(self, parameterNode, folder) -> tuple[list, str]:
        """(``dpo-score detect`` arguments, candidates file); the lobes as a label map when set."""
        ct = str(export_volume(parameterNode.inputVolume, Path(folder) / "ct.nrrd"))
        out = os.path.join(folder, "candidates.json")
        arguments = ["detect", ct, "--out", out]
        if parameterNode.lobeSegmentation:
            arguments += ["--lobes", self.lobeLabelmapFile(parameterNode, folder)]
        return arguments, out

    def lobeLabelmapFile(self, parameterNode, folder: str) -> str:
        """The lobe segmentation as a label map with the spec's values 1-6 on the CT's grid, in the
        voxel order of the CT file ``detectArguments`` writes (the volume's own, which the command
        line's grid check compares with), whatever order the module's arrays use (LPS)."""
        from ..lobes.lobe_files import write_label_map

        lobes, image = self.lobeArray(parameterNode)
        own = self.mrml.volume_orientation(parameterNode.inputVolume)
        labels = sitk.GetImageFromArray(lobes)
        labels.CopyInformation(image)
        labels = sitk.DICOMOrient(labels, own)
        return str(write_label_map(os.path.join(folder, "lobes.nrrd"), sitk.GetArrayFromImage(labels), labels))

    @staticmethod
    def newWorkFolder() -> Path:
        return new_work_folder()

    @staticmethod
    def removeWorkFolder(folder) -> None:
        remove_work_folder(folder)

    @staticmethod
    def removeAllWorkFolders() -> None:
        remove_all_work_folders()

    # --- lobes --------------------------------------------------------------------------------
    def loadLobes(self, parameterNode, segPath: str, pointsPath: str | None, provenancePath: str | None = None,
                  onDrag=None):
        """The ``lobes`` command's outputs into the scene, as Slicer's storage nodes read them; the
        fissure points (when written) as draggable markups, observed once each; how the lobes were
        made (per-fissure confidence) kept on the segmentation node."""
        from ..lobes.fissures import load_points
        from .mrml_fissure_confidence import load_provenance, store_provenance

        provenance = load_provenance(provenancePath) if provenancePath and os.path.exists(provenancePath) else None
        segmentation = self.mrml.load_segmentation(segPath, "DPO lobes")
        if provenance is not None:
            store_provenance(segmentation, provenance)
        parameterNode.lobeSegmentation = segmentation
        if pointsPath and os.path.exists(pointsPath):
            points = load_points(pointsPath)
            nodes = self.mrml.show_fissure_points(points)
            if parameterNode.inputVolume:  # kept on the node: a drag after a scene reload stays fast
                self.mrml.remember_lobe_points(segmentation, parameterNode.inputVolume, points)
            if onDrag is not None:
                self.mrml.observe_fissure_drags(nodes, onDrag)
        return segmentation

    def observeFissureDrags(self, onDrag) -> int:
        """The scene's fissure point nodes observed (once each), e.g. in a scene just opened."""
        return self.mrml.observe_fissure_drags(self.mrml.fissure_nodes(), onDrag)

    def lobeArray(self, parameterNode):
        """The lobes as spec labels and the CT's image, cached until the segmentation's voxels
        change (Segment Editor edits included)."""
        return self.mrml.cached_lobe_array(parameterNode.lobeSegmentation, parameterNode.inputVolume)

    def startLobeUpdate(self, parameterNode) -> str:
        """A fissure point was dragged: the lobes follow, computed off the GUI thread (``running``:
        call ``pollLobeUpdate`` until it is not; ``lobeUpdateProgress`` says what it does)."""
        if not parameterNode.lobeSegmentation or not parameterNode.inputVolume:
            return "idle"
        state = self.mrml.lobe_updates.start(parameterNode.inputVolume, parameterNode.lobeSegmentation)
        return state if state == "running" else self._lobesUpdated(parameterNode, state)

    def lobeUpdateProgress(self):
        """``(percent, message)`` of the running lobe update, or None."""
        progress = self.mrml.lobe_updates.progress if self.mrml.lobe_updates.running else None
        return None if progress is None else (int(round(100 * progress[0])), progress[1])

    def cancelLobeUpdate(self) -> None:
        self.mrml.lobe_updates.cancel()

    def pollLobeUpdate(self, parameterNode) -> str:
        """From the GUI thread: writes a finished update into the segmentation (latest drag only)."""
        return self._lobesUpdated(parameterNode, self.mrml.lobe_updates.poll())

    def recomputeLobesFromPoints(self, parameterNode) -> str:
        """Lobes again from the (dragged) fissure points, in the same segmentation node; returns
        when they are in the scene."""
        state = self.startLobeUpdate(parameterNode)
        return self._lobesUpdated(parameterNode, self.mrml.lobe_updates.wait()) if state == "running" else state

    def _lobesUpdated(self, parameterNode, state: str) -> str:
        if state == "applied":
            from .mrml_fissure_confidence import mark_moved

            mark_moved(parameterNode.lobeSegmentation, self.mrml.lobe_updates.last_moved)
        return state

    @staticmethod
    def fissureConfidenceText(parameterNode) -> str:
        """The panel's per-fissure confidence (which fissure to check), "" without lobes."""
        from .mrml_fissure_confidence import confidence_text, stored_provenance

        return confidence_text(stored_provenance(parameterNode.lobeSegmentation if parameterNode else None))

    # --- candidates ---------------------------------------------------------------------------
    def loadCandidates(self, parameterNode, path: str) -> None:
        from ..detection.candidates_file import load_candidates

        document = load_candidates(path)
        self.showCandidates(parameterNode, self.mrml.candidates_to_markups(document))
        if has_value(parameterNode.reviewFolder):
            self.mrml.review_folder = Path(parameterNode.reviewFolder)
            self.mrml.autosave(parameterNode.candidates)

    def openReview(self, parameterNode, folder) -> None:
        self.showCandidates(parameterNode, self.mrml.load_review(folder))
        parameterNode.reviewFolder = Path(folder)

    def showCandidates(self, parameterNode, markups) -> None:
        self.mrml.status_layers(markups)  # the views: one coloured markups node per status
        parameterNode.candidates = markups
        parameterNode.candidatesTable = self.mrml.candidates_table(markups)
        _scores, parameterNode.resultsTable = self.mrml.update_results(markups, None, self.policyFrom(parameterNode),
                                                                       parameterNode.readerId or "")

    def decide(self, parameterNode, index: int, reader: str, **change) -> None:
        self.mrml.decide(parameterNode.candidates, index, reader or "unknown", autosave=False, **change)
        if parameterNode.candidatesTable:
            self.mrml.update_candidate_row(parameterNode.candidatesTable, parameterNode.candidates, index)

    def undo(self, parameterNode) -> None:
        self.mrml.undo(parameterNode.candidates, parameterNode.readerId or "unknown")
        self.mrml.candidates_table(parameterNode.candidates, parameterNode.candidatesTable)

    @staticmethod
    def takePlacedPoint(markups):
        """The RAS position of the point the reader just placed in ``markups`` (the reader-points
        node, emptied again for the next one); None when it holds none."""
        count = markups.GetNumberOfControlPoints()
        if not count:
            return None
        position = [0.0, 0.0, 0.0]
        markups.GetNthControlPointPosition(count - 1, position)
        markups.RemoveAllControlPoints()
        return position

    def addReaderFinding(self, parameterNode, ras) -> None:
        """A missed ossification: measured like a detected one and given its lobe."""
        lps = [-ras[0], -ras[1], ras[2]]
        lobes, image = self.lobeArray(parameterNode) if parameterNode.lobeSegmentation else (None, None)
        lungs = None if lobes is None else lungs_from_lobes(lobes)
        measured = self.mrml.measure_reader_point(parameterNode.inputVolume, lps, lungs)
        lps = measured.get("lps", lps)
        lobe = "unassigned" if lobes is None else self.mrml.lobe_at(lobes, image, lps)
        self.mrml.add_reader_finding(parameterNode.candidates, lps, lobe, parameterNode.readerId or "unknown",
                                     measurements=measured)
        self.mrml.candidates_table(parameterNode.candidates, parameterNode.candidatesTable)

    def suggestExtents(self, parameterNode, only=None) -> None:
        if parameterNode.lobeSegmentation and parameterNode.candidates:
            lobes, image = self.lobeArray(parameterNode)
            self.mrml.suggest_extents(parameterNode.candidates, lobes, image, only)

    def setAssessmentCell(self, parameterNode, code: str, column: str, checked: bool, text: str) -> dict:
        """One cell of the per-lobe table changed: only that answer changes (checkbox columns
        take ``checked``, the others ``text``: a whole number, or empty to clear)."""
        reader = parameterNode.readerId or "unknown"
        if column in CHECKBOX_COLUMNS:
            return self.mrml.update_lobe_assessment(parameterNode.candidates, code, reader, **{column: bool(checked)})
        text = (text or "").strip()
        try:
            value = int(text) if text else None
        except ValueError:
            raise DPOInputError(f"{code} {column}", f"'{text}' is not a whole number (0-3)") from None
        return self.mrml.update_lobe_assessment(parameterNode.candidates, code, reader, ild={column: value})

    def refreshResults(self, parameterNode) -> str | None:
        """Scores with the parameter node's policy into its results table; the banner text."""
        if not parameterNode or not parameterNode.candidates:
            return None
        _scores, table = self.mrml.update_results(parameterNode.candidates, parameterNode.resultsTable,
                                                  self.policyFrom(parameterNode), parameterNode.readerId or "")
        return table.GetAttribute("DPOScoring.Banner")

    # --- DICOM ------------------------------------------------------------------------------------
    @staticmethod
    def canExportDicom(parameterNode) -> bool:
        """Export to DICOM is offered for a review with lobes of a CT loaded from Slicer's DICOM database."""
        from .mrml_dicom import is_dicom_volume

        node = parameterNode
        return bool(node and node.candidates and node.lobeSegmentation and is_dicom_volume(node.inputVolume))

    def exportDicom(self, parameterNode, reviewFolder, fileForInstance) -> str:
        """``lobes.dcm`` and ``findings.dcm`` of the review into ``reviewFolder``/dicom (``mrml_dicom``),
        that folder returned; ``fileForInstance``: the DICOM database's UID -> file lookup."""
        from .mrml_dicom import export_review_dicom

        node, folder = parameterNode, os.path.join(str(reviewFolder), "dicom")
        export_review_dicom(self.mrml, node.inputVolume, node.lobeSegmentation, node.candidates, folder,
                            fileForInstance, self.policyFrom(node), node.readerId or "", node.lobeMethod)
        return folder
