"""DPOScoring: the 3D Slicer module.

The widget only wires GUI events to ``DPOScoringLib.mrml_logic`` (MRML) and to the ``dpo-score``
command line run in a background process (lobes, detection: progress shown, Cancel kills it);
every scoring rule lives in ``DPOScoringLib``.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from DPOScoringLib.lobes import LOBES
from DPOScoringLib.mrml_logic import BANNER, BONE_WINDOW, LUNG_WINDOW, DPOScoringMRMLLogic
from DPOScoringLib.policy import DEF1_VARIANTS, DEF2_VARIANTS, DENDRIFORM_NODULE_VARIANTS, ScoringPolicy
from DPOScoringLib.reading import BACKGROUNDS, KINDS

LOBE_METHODS = ["fissures", "lungmask", "import"]
ASSESSMENT_COLUMNS = ["dendriform", "ggo", "fine_reticulation", "coarse_reticulation", "honeycombing",
                      "consolidation", "overall", "extent_over_half"]
KIND_LABELS = {"nodular": "nodular", "dendriform": "dendriform", "large_calcified": "large calcified",
               "granuloma": "suspected granuloma"}


class DPOScoring(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DPO Scoring")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Chest Imaging")]
        self.parent.dependencies = ["Markups", "Segmentations"]
        self.parent.contributors = ["DPOScoring contributors"]
        self.parent.helpText = _("""
Semi-automatic scoring of diffuse pulmonary ossification (DPO) on chest CT, following
Egashira et al., Radiology 2017;284:255-263: per-lobe nodular ossification counts (the lingula is
a lobe of its own), DPO definitions 1 and 2, average nodule score and coarseness score.
See the <a href="https://github.com/DPOScoring/SlicerDPOScoring#readme">documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Scoring rules from Egashira R, Jacob J, Kokosi MA, et al. Diffuse Pulmonary Ossification in
Fibrosing Interstitial Lung Diseases: Prevalence and Associations. Radiology 2017;284:255-263.
""")


@parameterNodeWrapper
class DPOScoringParameterNode:
    """What the reader chose and made (CT, reader, review folder, lobe method and result, the
    review's markups and tables, the scoring policy); saved with the scene."""

    inputVolume: vtkMRMLScalarVolumeNode
    readerId: str = ""
    reviewFolder: Path
    lobeMethod: Annotated[str, Choice(LOBE_METHODS)] = "fissures"
    lobeImportPath: Path
    lungmaskWeights: Path
    lobeSegmentation: vtkMRMLSegmentationNode
    candidates: vtkMRMLMarkupsFiducialNode
    candidatesTable: vtkMRMLTableNode
    resultsTable: vtkMRMLTableNode
    def1: Annotated[str, Choice(list(DEF1_VARIANTS))] = "default"
    def2: Annotated[str, Choice(list(DEF2_VARIANTS))] = "default"
    dendriformNodules: Annotated[str, Choice(list(DENDRIFORM_NODULE_VARIANTS))] = "exclude"


class DPOScoringWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._worker = None
        self._workerDone = None
        self._current = 0
        self._shortcuts = []
        self._readerPoints = None
        self._updatingAssessments = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DPOScoring.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = DPOScoringLogic()

        for kind in KINDS:
            self.ui.kindComboBox.addItem(KIND_LABELS[kind], kind)
        self.ui.backgroundComboBox.addItem("", "")
        for background in BACKGROUNDS:
            self.ui.backgroundComboBox.addItem(background.replace("_", " "), background)
        self._setupAssessmentTable()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.computeLobesButton.connect("clicked(bool)", self.onComputeLobes)
        self.ui.recomputeLobesButton.connect("clicked(bool)", self.onRecomputeLobes)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.detectButton.connect("clicked(bool)", self.onDetect)
        self.ui.boneWindowButton.connect("clicked(bool)", lambda: self.onWindow(BONE_WINDOW))
        self.ui.lungWindowButton.connect("clicked(bool)", lambda: self.onWindow(LUNG_WINDOW))
        self.ui.previousButton.connect("clicked(bool)", lambda: self.onStep(-1))
        self.ui.nextButton.connect("clicked(bool)", lambda: self.onStep(1))
        self.ui.confirmButton.connect("clicked(bool)", lambda: self.onDecide(status="confirmed"))
        self.ui.rejectButton.connect("clicked(bool)", lambda: self.onDecide(status="rejected"))
        self.ui.undoButton.connect("clicked(bool)", self.onUndo)
        self.ui.kindComboBox.connect("activated(int)", lambda _: self.onDecide(
            kind=self.ui.kindComboBox.currentData))
        self.ui.backgroundComboBox.connect("activated(int)", lambda _: self.onDecide(
            background=self.ui.backgroundComboBox.currentData or None))
        self.ui.addPointButton.connect("clicked(bool)", self.onPlacePoint)
        self.ui.showRejectedCheckBox.connect("toggled(bool)", lambda _: self._refreshVisibility())
        self.ui.candidatesTableView.connect("clicked(QModelIndex)", self.onTableClicked)
        self.ui.saveReviewButton.connect("clicked(bool)", self.onSaveReview)
        self.ui.openReviewButton.connect("clicked(bool)", self.onOpenReview)
        self.ui.lobeAssessmentTable.connect("itemChanged(QTableWidgetItem*)", self.onAssessmentChanged)
        for combo in (self.ui.def1ComboBox, self.ui.def2ComboBox, self.ui.dendriformNodulesComboBox):
            combo.connect("currentIndexChanged(int)", lambda _: self._refreshResults())

        for key, action in (("N", lambda: self.onStep(1)), ("P", lambda: self.onStep(-1)),
                            ("C", lambda: self.onDecide(status="confirmed")),
                            ("R", lambda: self.onDecide(status="rejected")), ("U", self.onUndo),
                            ("A", self.onPlacePoint), ("B", lambda: self.onWindow(BONE_WINDOW)),
                            ("L", lambda: self.onWindow(LUNG_WINDOW))):
            shortcut = qt.QShortcut(qt.QKeySequence(key), slicer.util.mainWindow())
            shortcut.connect("activated()", action)
            shortcut.setEnabled(False)
            self._shortcuts.append(shortcut)

        self.initializeParameterNode()

    def _setupAssessmentTable(self) -> None:
        table = self.ui.lobeAssessmentTable
        table.setRowCount(len(LOBES))
        table.setColumnCount(len(ASSESSMENT_COLUMNS))
        table.setHorizontalHeaderLabels(["dendriform", "GGO", "fine ret.", "coarse ret.", "honeycomb",
                                         "consolid.", "overall", "> 50 %"])
        table.setVerticalHeaderLabels([lobe.code for lobe in LOBES])
        self._updatingAssessments = True
        for row in range(len(LOBES)):
            for column, name in enumerate(ASSESSMENT_COLUMNS):
                item = qt.QTableWidgetItem("")
                if name in ("dendriform", "extent_over_half"):
                    item.setFlags(qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsEnabled)
                    item.setCheckState(qt.Qt.Unchecked)
                else:
                    item.setText("0" if name != "overall" else "")
                table.setItem(row, column, item)
        self._updatingAssessments = False
        table.resizeColumnsToContents()

    def cleanup(self) -> None:
        self.onCancel()
        self.removeObservers()
        for shortcut in self._shortcuts:
            shortcut.setParent(None)
        self._shortcuts = []

    def enter(self) -> None:
        self.initializeParameterNode()
        for shortcut in self._shortcuts:
            shortcut.setEnabled(True)

    def exit(self) -> None:
        for shortcut in self._shortcuts:
            shortcut.setEnabled(False)
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanRun)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanRun)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanRun)
            self._checkCanRun()
            self._showReview()

    def _checkCanRun(self, caller=None, event=None) -> None:
        node = self._parameterNode
        busy = self._worker is not None
        hasVolume = bool(node and node.inputVolume)
        hasCandidates = bool(node and node.candidates)
        self.ui.computeLobesButton.enabled = hasVolume and not busy
        self.ui.recomputeLobesButton.enabled = hasVolume and not busy and node.lobeMethod == "fissures"
        self.ui.detectButton.enabled = hasVolume and not busy
        for button in (self.ui.confirmButton, self.ui.rejectButton, self.ui.undoButton, self.ui.previousButton,
                       self.ui.nextButton, self.ui.addPointButton, self.ui.saveReviewButton):
            button.enabled = hasCandidates
        self.ui.cancelButton.enabled = busy
        if node and node.reviewFolder and str(node.reviewFolder) not in ("", "."):
            self.logic.mrml.review_folder = Path(node.reviewFolder)

    # --- background work ----------------------------------------------------------------------
    def _runWorker(self, arguments, onDone) -> None:
        """Runs ``dpo-score ARGUMENTS`` in PythonSlicer; progress from its '[ 42%] ...' lines."""
        python = shutil.which("PythonSlicer") or os.path.join(os.path.dirname(sys.executable), "PythonSlicer")
        process = qt.QProcess()
        environment = qt.QProcessEnvironment.systemEnvironment()
        moduleDir = os.path.dirname(__file__)
        environment.insert("PYTHONPATH", moduleDir + os.pathsep + environment.value("PYTHONPATH", ""))
        environment.insert("PYTHONUNBUFFERED", "1")
        process.setProcessEnvironment(environment)
        process.setProgram(python)
        process.setArguments(["-m", "DPOScoringLib", *arguments])
        process.readyReadStandardError.connect(self._onWorkerOutput)
        process.finished.connect(self._onWorkerFinished)
        self._worker, self._workerDone, self._workerErrors = process, onDone, []
        self.ui.progressBar.value = 0
        process.start()
        self._checkCanRun()

    def _onWorkerOutput(self) -> None:
        raw = self._worker.readAllStandardError()
        text = (raw.data() if hasattr(raw, "data") else bytes(raw)).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith("[") and "%]" in line:
                self.ui.progressBar.value = int(line[1:line.index("%]")])
                self.ui.progressBar.setFormat(line[line.index("%]") + 2:].strip() + " %p%")
            elif line.strip():
                self._workerErrors.append(line)

    def _onWorkerFinished(self, exitCode, exitStatus=None) -> None:
        onDone, errors = self._workerDone, self._workerErrors
        self._worker = None
        self._checkCanRun()
        if exitCode == 0:
            self.ui.progressBar.value = 100
            onDone(errors)
        elif exitCode != 130 and not getattr(self, "_cancelled", False):
            slicer.util.errorDisplay("\n".join(errors[-3:]) or _("The background process failed."))
        self._cancelled = False

    def onCancel(self) -> None:
        if self._worker is not None:
            self._cancelled = True
            self._worker.kill()
            self.ui.progressBar.setFormat(_("cancelled"))

    def _volumeFile(self) -> str:
        """The CT as a temporary NRRD for the background process."""
        folder = tempfile.mkdtemp(prefix="dpo-")
        path = os.path.join(folder, "ct.nrrd")
        slicer.util.saveNode(self._parameterNode.inputVolume, path)
        return path

    # --- lobes --------------------------------------------------------------------------------
    def onComputeLobes(self) -> None:
        node = self._parameterNode
        if node.lobeMethod == "lungmask" and not self.logic.ensureLungmask():
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to start the lobe segmentation."), waitCursor=True):
            self.logic.ensureDependencies()
            ctPath = self._volumeFile()
            out = os.path.join(os.path.dirname(ctPath), "lobes.seg.nrrd")
            points = os.path.join(os.path.dirname(ctPath), "points.json")
            arguments = ["lobes", ctPath, "--method", node.lobeMethod, "--out", out, "--points-out", points]
            if node.lobeMethod == "import":
                arguments += ["--from", str(node.lobeImportPath)]
            if node.lobeMethod == "lungmask" and node.lungmaskWeights:
                arguments += ["--weights", str(node.lungmaskWeights)]
            self._runWorker(arguments, lambda messages: self._lobesReady(out, points, messages))

    def _lobesReady(self, segPath, pointsPath, messages) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the lobes."), waitCursor=True):
            segmentation = slicer.util.loadSegmentation(segPath)
            segmentation.SetName("DPO lobes")
            self._parameterNode.lobeSegmentation = segmentation
            if os.path.exists(pointsPath):
                for fissureNode in self.logic.showFissurePoints(pointsPath):
                    # lobes follow the points: recomputed when the reader releases a dragged point
                    self.addObserver(fissureNode, slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent,
                                     lambda caller, event: self.onRecomputeLobes())
            self.ui.warningsLabel.text = "\n".join(m for m in messages if m.startswith("warning"))

    def onRecomputeLobes(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to recompute the lobes."), waitCursor=True):
            self.logic.recomputeLobesFromPoints(self._parameterNode)

    # --- candidates ---------------------------------------------------------------------------
    def onDetect(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start detection."), waitCursor=True):
            self.logic.ensureDependencies()
            ctPath = self._volumeFile()
            out = os.path.join(os.path.dirname(ctPath), "candidates.json")
            arguments = ["detect", ctPath, "--out", out]
            if self._parameterNode.lobeSegmentation:
                lobesPath = self.logic.lobeLabelmapFile(self._parameterNode, os.path.dirname(ctPath))
                arguments += ["--lobes", lobesPath]
            self._runWorker(arguments, lambda messages: self._candidatesReady(out, messages))

    def _candidatesReady(self, path, messages) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the candidates."), waitCursor=True):
            self.logic.loadCandidates(self._parameterNode, path)
            self.ui.warningsLabel.text = "\n".join(m for m in messages if m.startswith("warning"))
            self._current = 0
            self.logic.suggestExtents(self._parameterNode)
            self._showReview()
            self.onWindow(BONE_WINDOW)
            self._jump()

    def _showReview(self) -> None:
        node = self._parameterNode
        if not node or not node.candidates:
            return
        self.ui.candidatesTableView.setMRMLTableNode(node.candidatesTable)
        self.ui.resultsTableView.setMRMLTableNode(node.resultsTable)
        self._refreshVisibility()
        self._refreshResults()
        self._checkCanRun()

    def onTableClicked(self, index) -> None:
        self._current = index.row()
        self._jump()

    def onStep(self, step: int) -> None:
        node = self._parameterNode
        if node and node.candidates and node.candidates.GetNumberOfControlPoints():
            self._current = (self._current + step) % node.candidates.GetNumberOfControlPoints()
            self._jump()

    def _jump(self) -> None:
        node = self._parameterNode.candidates
        if node is None or not node.GetNumberOfControlPoints():
            return
        slicer.modules.markups.logic().JumpSlicesToNthPointInMarkup(node.GetID(), self._current, True)
        for sliceNode in slicer.util.getNodesByClass("vtkMRMLSliceNode"):
            fov = sliceNode.GetFieldOfView()
            sliceNode.SetFieldOfView(40.0, 40.0 * fov[1] / max(fov[0], 1e-6), fov[2])
        self.ui.candidatesTableView.selectRow(self._current)
        record = self.logic.mrml.record(node, self._current)
        self.ui.kindComboBox.setCurrentIndex(max(self.ui.kindComboBox.findData(record.get("kind")), 0))
        self.ui.backgroundComboBox.setCurrentIndex(max(self.ui.backgroundComboBox.findData(
            record.get("background") or ""), 0))

    def onDecide(self, status=None, kind=None, background=None) -> None:
        node = self._parameterNode
        if not node or not node.candidates:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to record the decision."), waitCursor=False):
            self.logic.decide(node, self._current, node.readerId, status=status, kind=kind, background=background)
            if status == "confirmed":  # after the display update; only the decided candidate's lobe
                lobe = self.logic.mrml.record(node.candidates, self._current).get("lobe")
                qt.QTimer.singleShot(0, lambda: self.logic.suggestExtents(node, {lobe}))
            self._refreshVisibility()
            self._refreshResults()
            qt.QTimer.singleShot(0, lambda: self.logic.mrml.autosave(node.candidates))
            if status is not None:
                self.onStep(1)

    def onUndo(self) -> None:
        node = self._parameterNode
        if node and node.candidates:
            self.logic.mrml.undo(node.candidates, node.readerId)
            self.logic.mrml.candidates_table(node.candidates, node.candidatesTable)
            self._refreshResults()

    def onPlacePoint(self) -> None:
        node = self._parameterNode
        if not node or not node.candidates:
            return
        if self._readerPoints is None:
            self._readerPoints = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "DPO reader points")
            self.addObserver(self._readerPoints, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                             self._onReaderPointPlaced)
        slicer.modules.markups.logic().SetActiveList(self._readerPoints)
        slicer.modules.markups.logic().StartPlaceMode(False)

    def _onReaderPointPlaced(self, caller, event) -> None:
        position = [0.0, 0.0, 0.0]
        caller.GetNthControlPointPosition(caller.GetNumberOfControlPoints() - 1, position)
        caller.RemoveAllControlPoints()
        with slicer.util.tryWithErrorDisplay(_("Failed to add the point."), waitCursor=True):
            self.logic.addReaderFinding(self._parameterNode, position)
            self._refreshResults()

    def _refreshVisibility(self) -> None:
        node = self._parameterNode.candidates if self._parameterNode else None
        if node is None:
            return
        rejected = slicer.mrmlScene.GetFirstNodeByName("DPO rejected")
        if rejected is not None and rejected.GetDisplayNode() is not None:
            rejected.GetDisplayNode().SetVisibility(self.ui.showRejectedCheckBox.checked)

    def _refreshResults(self) -> None:
        node = self._parameterNode
        if not node or not node.candidates:
            return
        _scores, table = self.logic.mrml.update_results(node.candidates, node.resultsTable, self.logic.policyFrom(node))
        self.ui.bannerLabel.text = table.GetAttribute(BANNER)

    # --- per lobe, window, saving ---------------------------------------------------------------
    def onAssessmentChanged(self, item) -> None:
        node = self._parameterNode
        if self._updatingAssessments or not node or not node.candidates:
            return
        row = item.row()
        assessment, ild = {}, {}
        for column, name in enumerate(ASSESSMENT_COLUMNS):
            cell = self.ui.lobeAssessmentTable.item(row, column)
            if name in ("dendriform", "extent_over_half"):
                assessment[name] = cell.checkState() == qt.Qt.Checked
            elif cell.text().strip():
                ild[name] = int(cell.text())
        assessment["ild"] = ild
        with slicer.util.tryWithErrorDisplay(_("Invalid lobe assessment."), waitCursor=False):
            self.logic.mrml.set_lobe_assessment(node.candidates, LOBES[row].code, assessment, node.readerId)
            self._refreshResults()

    def onWindow(self, window) -> None:
        if self._parameterNode and self._parameterNode.inputVolume:
            self.logic.mrml.set_window(self._parameterNode.inputVolume, window)

    def onOpenReview(self) -> None:
        """Restores a review (statuses, lobe assessments, decision log) from its folder."""
        folder = qt.QFileDialog.getExistingDirectory(None, _("Open review folder"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to open the review."), waitCursor=True):
            node = self._parameterNode
            markups = self.logic.mrml.load_review(folder)
            self.logic.mrml.status_layers(markups)
            node.candidates = markups
            node.candidatesTable = self.logic.mrml.candidates_table(markups)
            _scores, node.resultsTable = self.logic.mrml.update_results(markups, None, self.logic.policyFrom(node))
            node.reviewFolder = Path(folder)
            self._showReview()

    def onSaveReview(self) -> None:
        node = self._parameterNode
        folder = node.reviewFolder if node.reviewFolder and str(node.reviewFolder) not in ("", ".") else None
        if folder is None:
            folder = qt.QFileDialog.getExistingDirectory(None, _("Review folder"))
            if not folder:
                return
            node.reviewFolder = Path(folder)
        with slicer.util.tryWithErrorDisplay(_("Failed to save the review."), waitCursor=True):
            self.logic.mrml.save_review(node.candidates, folder)
            slicer.util.showStatusMessage(_("Review saved in {folder}").format(folder=folder), 3000)


class DPOScoringLogic(ScriptedLoadableModuleLogic):
    """Module logic: parameter-node values into DPOScoringLib calls; usable without the GUI."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.mrml = DPOScoringMRMLLogic(slicer.mrmlScene, slicer.modules.segmentations.logic()
                                        if hasattr(slicer.modules, "segmentations") else None)

    def getParameterNode(self):
        return DPOScoringParameterNode(super().getParameterNode())

    @staticmethod
    def policyFrom(parameterNode) -> ScoringPolicy:
        return ScoringPolicy(def1=parameterNode.def1, def2=parameterNode.def2,
                             dendriform_nodules=parameterNode.dendriformNodules)

    def ensureDependencies(self) -> None:
        """scipy, scikit-image, cc3d and edt into Slicer's Python, with the user's consent
        (Slicer's own numpy and SimpleITK are left alone)."""
        import slicer.packaging as packaging

        path = os.path.join(os.path.dirname(__file__), "Resources", "requirements.txt")
        packaging.pip_ensure(packaging.load_requirements(path), requester="DPO Scoring")

    def ensureLungmask(self) -> bool:
        try:
            import torch  # noqa: F401
        except ImportError:
            slicer.util.errorDisplay(_("lungmask needs PyTorch: install the PyTorch extension (PyTorch Utils) "
                                       "from the Extensions Manager, or choose the fissure method."))
            return False
        import slicer.packaging as packaging

        packaging.pip_ensure(["lungmask==0.2.22"], requester="DPO Scoring (lungmask)")
        return True

    def lobeLabelmapFile(self, parameterNode, folder: str) -> str:
        """The lobe segmentation as a label map with the spec's values 1-6 on the CT's grid."""
        from DPOScoringLib.lobe_files import write_label_map

        volume = parameterNode.inputVolume
        lobes = self.mrml.lobe_array(parameterNode.lobeSegmentation, volume)
        path = os.path.join(folder, "lobes.nrrd")
        write_label_map(path, lobes, self.mrml.volume_to_image(volume))
        return path

    def loadCandidates(self, parameterNode, path: str) -> None:
        from DPOScoringLib.candidates_file import load_candidates

        document = load_candidates(path)
        markups = self.mrml.candidates_to_markups(document)
        self.mrml.status_layers(markups)  # the views: one coloured markups node per status
        parameterNode.candidates = markups
        parameterNode.candidatesTable = self.mrml.candidates_table(markups)
        _scores, results = self.mrml.update_results(markups, None, self.policyFrom(parameterNode))
        parameterNode.resultsTable = results
        if parameterNode.reviewFolder and str(parameterNode.reviewFolder) not in ("", "."):
            self.mrml.review_folder = Path(parameterNode.reviewFolder)
            self.mrml.autosave(markups)

    def decide(self, parameterNode, index: int, reader: str, **change) -> None:
        self.mrml.decide(parameterNode.candidates, index, reader or "unknown", autosave=False, **change)
        if parameterNode.candidatesTable:
            self.mrml.update_candidate_row(parameterNode.candidatesTable, parameterNode.candidates, index)

    def addReaderFinding(self, parameterNode, ras) -> None:
        """A missed ossification: measured like a detected one and given its lobe."""
        lps = [-ras[0], -ras[1], ras[2]]
        lobes, image = self.lobeArray(parameterNode) if parameterNode.lobeSegmentation else (None, None)
        lungs = None if lobes is None else (lobes > 0).astype("uint8") + (lobes > 3).astype("uint8")
        measured = self.mrml.measure_reader_point(parameterNode.inputVolume, lps, lungs)
        lps = measured.get("lps", lps)
        lobe = "unassigned" if lobes is None else self.mrml.lobe_at(lobes, image, lps)
        self.mrml.add_reader_finding(parameterNode.candidates, lps, lobe, parameterNode.readerId or "unknown",
                                     measurements=measured)
        self.mrml.candidates_table(parameterNode.candidates, parameterNode.candidatesTable)

    def lobeArray(self, parameterNode):
        """The lobes as spec labels, cached until the segmentation changes (Segment Editor...)."""
        segmentation, volume = parameterNode.lobeSegmentation, parameterNode.inputVolume
        key = (segmentation.GetID(), segmentation.GetMTime(), volume.GetID())
        if getattr(self, "_lobeCacheKey", None) != key:
            self._lobeCache = (self.mrml.lobe_array(segmentation, volume), self.mrml.volume_to_image(volume))
            self._lobeCacheKey = key
        return self._lobeCache

    def suggestExtents(self, parameterNode, only=None) -> None:
        if parameterNode.lobeSegmentation and parameterNode.candidates:
            lobes, image = self.lobeArray(parameterNode)
            self.mrml.suggest_extents(parameterNode.candidates, lobes, image, only)

    def showFissurePoints(self, pointsPath: str) -> list:
        from DPOScoringLib.fissures import load_points

        return self.mrml.show_fissure_points(load_points(pointsPath))

    def recomputeLobesFromPoints(self, parameterNode) -> None:
        old = parameterNode.lobeSegmentation
        parameterNode.lobeSegmentation = self.mrml.recompute_lobes(parameterNode.inputVolume, old)
        slicer.mrmlScene.RemoveNode(old)


class DPOScoringTest(ScriptedLoadableModuleTest):
    """In-Slicer self-test: the whole flow on a synthetic CT (no download needed)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_WholeFlowOnPhantom()
        self.setUp()
        self.test_SampleChestCT()

    def test_SampleChestCT(self):
        """Lungs and lobes on Slicer's sample chest CT, when it can be downloaded."""
        try:
            import SampleData

            volume = SampleData.downloadSample("CTChest")
        except Exception as error:  # offline: the phantom test above still ran the whole flow
            self.delayDisplay(f"Sample chest CT not available ({error}); skipped")
            return
        from DPOScoringLib.lobe_pipeline import compute_lobes

        logic = DPOScoringLogic()
        ct = logic.mrml.checked_ct(volume)
        volumes = compute_lobes(ct, "fissures").volumes_ml(ct.spacing)
        self.assertTrue(all(v > 0 for v in volumes.values()), volumes)
        self.delayDisplay(f"Sample chest CT lobes (ml): {volumes}")

    def test_WholeFlowOnPhantom(self):
        from DPOScoringLib.candidates_file import candidates_document
        from DPOScoringLib.lobe_pipeline import compute_lobes
        from DPOScoringLib.phantom import PhantomSpec, generate_phantom, write_phantom
        from DPOScoringLib.pipeline import run_detection
        from DPOScoringLib.reading import parse_reading
        from DPOScoringLib.scoring import score_reading

        self.delayDisplay("Building a synthetic chest CT")
        folder = tempfile.mkdtemp(prefix="dpo-selftest-")
        paths = write_phantom(generate_phantom(PhantomSpec(fov_mm=(200.0, 170.0, 180.0), n_po=12)), folder)
        logic = DPOScoringLogic()
        volume = logic.mrml.load_volume(paths["ct"])
        ct = logic.mrml.checked_ct(volume)
        segmentation = logic.mrml.lobes_to_segmentation(compute_lobes(ct, "fissures").lobes, ct.image, volume)
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 6)
        run = run_detection(paths["ct"], paths["lobes"])
        markups = logic.mrml.candidates_to_markups(candidates_document(
            run.ct, run.result, run.warnings, run.sources, run.lung_volumes_ml))
        self.assertGreater(markups.GetNumberOfControlPoints(), 5)
        for index in range(markups.GetNumberOfControlPoints()):
            logic.mrml.decide(markups, index, "self-test", status="confirmed")
        scores, _table = logic.mrml.update_results(markups)
        self.assertEqual(scores, score_reading(parse_reading(logic.mrml.reading(markups))))
        self.assertTrue(scores["complete"])
        self.delayDisplay("Test passed")
