"""DPOScoring: the 3D Slicer module (Slicer 5.8, 5.10 and 5.12; see Docs/slicer.md).

The widget only wires GUI events to ``DPOScoringLib.mrml.mrml_module_logic`` (MRML, testable headless)
and to the ``dpo-score`` command line run in a background process (lobes, detection: progress
shown, Cancel ends it); every scoring rule lives in ``DPOScoringLib``.
"""

import os
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

from DPOScoringLib.common.anatomy import LOBES
from DPOScoringLib.mrml import module_panel
from DPOScoringLib.mrml.module_panel import (
    ASSESSMENT_COLUMNS,
    CHECKBOX_COLUMNS,
    WORKER_BOOT,
    parse_worker_line,
    worker_environment,
)
from DPOScoringLib.mrml.mrml_logic import BONE_WINDOW, LUNG_WINDOW
from DPOScoringLib.mrml.mrml_module_logic import ModuleLogic, has_value
from DPOScoringLib.rules.policy import DEF1_VARIANTS, DEF2_VARIANTS, DENDRIFORM_NODULE_VARIANTS
from DPOScoringLib.rules.reading import BACKGROUNDS

LOBE_METHODS = ["fissures", "lungmask", "import"]
LOBE_POLL_MS = 50  # how often the GUI looks for a finished lobe update (computed in a worker thread)
# Single keys that Slicer's views do not use (5.8-5.12 bind b f g r s t v V there: b/f previous/next
# slice, r reset view, s markups, ...; see Docs/slicer.md and test_slicer_module_widget.py).
SHORTCUTS = (("N", "next"), ("P", "previous"), ("C", "confirm"), ("X", "reject"), ("U", "undo"),
             ("A", "place"), ("W", "bone"), ("L", "lung"))


class DPOScoring(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DPO Scoring")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Chest Imaging Platform")]
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
        self._worker = None  # (QProcess, work folder, on-done callback, stderr lines, python-real PID)
        self._cancelled = False
        self._current = 0
        self._shortcuts = []
        self._readerPoints = None
        self._updatingAssessments = False
        self._shownPolicy = None
        self._lobePolling = False  # a QTimer poll of the lobe update is scheduled

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DPOScoring.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DPOScoringLogic()

        for kind, label in module_panel.KIND_LABELS.items():
            self.ui.kindComboBox.addItem(label, kind)
        self.ui.backgroundComboBox.addItem("", "")
        for background in BACKGROUNDS:
            self.ui.backgroundComboBox.addItem(background.replace("_", " "), background)
        self._setupAssessmentTable()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)

        actions = {"next": lambda: self.onStep(1), "previous": lambda: self.onStep(-1),
                   "confirm": lambda: self.onDecide(status="confirmed"),
                   "reject": lambda: self.onDecide(status="rejected"), "undo": self.onUndo,
                   "place": self.onPlacePoint, "bone": lambda: self.onWindow(BONE_WINDOW),
                   "lung": lambda: self.onWindow(LUNG_WINDOW)}
        clicked = {"computeLobesButton": self.onComputeLobes, "recomputeLobesButton": self.onRecomputeLobes,
                   "lobeImportFolderButton": self.onChooseImportFolder, "cancelButton": self.onCancel,
                   "detectButton": self.onDetect, "boneWindowButton": actions["bone"],
                   "lungWindowButton": actions["lung"], "previousButton": actions["previous"],
                   "nextButton": actions["next"], "confirmButton": actions["confirm"],
                   "rejectButton": actions["reject"], "undoButton": self.onUndo,
                   "addPointButton": self.onPlacePoint, "saveReviewButton": self.onSaveReview,
                   "openReviewButton": self.onOpenReview, "exportDicomButton": self.onExportDicom}
        for button, handler in clicked.items():
            getattr(self.ui, button).connect("clicked(bool)", handler)
        self.ui.kindComboBox.connect("activated(int)", lambda _: self.onDecide(
            kind=self.ui.kindComboBox.currentData))
        self.ui.backgroundComboBox.connect("activated(int)", lambda _: self.onDecide(
            background=self.ui.backgroundComboBox.currentData or None))
        self.ui.showRejectedCheckBox.connect("toggled(bool)", lambda _: self._refreshVisibility())
        self.ui.candidatesTableView.connect("clicked(QModelIndex)", self.onTableClicked)
        self.ui.lobeAssessmentTable.connect("itemChanged(QTableWidgetItem*)", self.onAssessmentChanged)
        # Definition 1/2 and the dendriform policy: refreshed by _onParameterNodeModified, i.e. after
        # the GUI connector stored the value. Shortcuts: without a main window (--no-main-window), on the panel.
        parent = slicer.util.mainWindow() or self.parent
        for key, name in SHORTCUTS:
            shortcut = qt.QShortcut(qt.QKeySequence(key), parent)
            shortcut.connect("activated()", actions[name])
            shortcut.setEnabled(False)
            self._shortcuts.append(shortcut)

        self.initializeParameterNode()

    def _setupAssessmentTable(self) -> None:
        table = self.ui.lobeAssessmentTable
        table.setRowCount(len(LOBES))
        table.setColumnCount(len(ASSESSMENT_COLUMNS))
        table.setHorizontalHeaderLabels(list(module_panel.ASSESSMENT_HEADERS))
        table.setVerticalHeaderLabels([lobe.code for lobe in LOBES])
        for row in range(len(LOBES)):
            for column, name in enumerate(ASSESSMENT_COLUMNS):
                item = qt.QTableWidgetItem("")
                if name in CHECKBOX_COLUMNS:
                    item.setFlags(qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsEnabled)
                table.setItem(row, column, item)
        self._fillAssessmentTable()
        table.resizeColumnsToContents()

    def _fillAssessmentTable(self) -> None:
        """The table shows the saved per-lobe answers (after Detect, Open Review, scene load)."""
        node = self._parameterNode
        saved = self.logic.mrml.lobe_assessments(node.candidates) if node and node.candidates else {}
        table = self.ui.lobeAssessmentTable
        self._updatingAssessments = True
        for row, cells in enumerate(module_panel.assessment_cells(saved, [lobe.code for lobe in LOBES])):
            for column, value in enumerate(cells):
                if isinstance(value, bool):
                    table.item(row, column).setCheckState(qt.Qt.Checked if value else qt.Qt.Unchecked)
                else:
                    table.item(row, column).setText(value)
        self._updatingAssessments = False

    def cleanup(self) -> None:
        self.onCancel()
        self.logic.removeAllWorkFolders()  # Slicer closing mid-run (atexit may not run in Slicer)
        self.removeObservers()
        self.logic.mrml.detach()  # scene and fissure drag observers, a running lobe update (module reload)
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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        self.onCancel()
        self.setParameterNode(None)
        if self._readerPoints is not None:
            self.removeObserver(self._readerPoints, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                                self._onReaderPointPlaced)
        self._readerPoints = None
        self._current = 0
        self._shownPolicy = None
        self._fillAssessmentTable()  # empty again

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onSceneEndImport(self, caller, event) -> None:
        """A scene was opened (or added to this one): its fissure points follow drags again (the
        points the lobes were made from are read back from the segmentation node on the drag)."""
        self.logic.observeFissureDrags(self.onRecomputeLobes)

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self.logic.observeFissureDrags(self.onRecomputeLobes)  # e.g. in a scene opened before
            self._checkCanRun()
            self._showReview()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        self._checkCanRun()
        node = self._parameterNode
        if node and node.candidates and self.logic.policyFrom(node) != self._shownPolicy:
            self._refreshResults()  # Definition 1/2, dendriform policy: with the value just stored

    def _checkCanRun(self, caller=None, event=None) -> None:
        node = self._parameterNode
        state = module_panel.enabled_buttons(bool(node and node.inputVolume), bool(node and node.candidates),
                                             self._worker is not None, bool(node) and node.lobeMethod == "fissures",
                                             self.logic.canExportDicom(node))
        for name, enabled in state.items():
            getattr(self.ui, name).enabled = enabled
        self.ui.fissureConfidenceLabel.text = self.logic.fissureConfidenceText(node)
        if node and has_value(node.reviewFolder):
            self.logic.mrml.review_folder = Path(node.reviewFolder)

    # --- background work ----------------------------------------------------------------------
    def _runWorker(self, arguments, folder, onDone) -> None:
        """Runs ``dpo-score ARGUMENTS`` in PythonSlicer; progress from its '[ 42%] ...' lines.
        The QProcess is owned by the module panel (never deleted by Python inside its own
        signal); the work folder is removed when the process has ended, however it ended."""
        process = qt.QProcess(self.parent)
        environment = qt.QProcessEnvironment.systemEnvironment()
        for key, value in worker_environment(os.path.dirname(__file__), environment.value("PYTHONPATH", "")).items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        process.setProgram(module_panel.worker_program())
        process.setArguments(["-c", WORKER_BOOT, *arguments])
        process.connect("readyReadStandardError()", self._onWorkerOutput)
        process.connect("finished(int,QProcess::ExitStatus)", self._onWorkerFinished)
        process.connect("errorOccurred(QProcess::ProcessError)", self._onWorkerError)
        self._worker = {"process": process, "folder": folder, "onDone": onDone, "errors": [], "pid": None}
        self._cancelled = False
        self.ui.progressBar.value = 0
        self._checkCanRun()
        process.start()

    def _onWorkerOutput(self) -> None:
        if self._worker is None:
            return
        text = module_panel.decode_output(self._worker["process"].readAllStandardError())
        for kind, value, label in map(parse_worker_line, text.splitlines()):
            if kind == "pid" and self._worker["pid"] is None:
                self._worker["pid"] = value
            elif kind == "progress":
                self.ui.progressBar.value = value
                self.ui.progressBar.setFormat(label + " %p%")
            elif kind == "message":
                self._worker["errors"].append(label)

    def _onWorkerError(self, error) -> None:
        if error == qt.QProcess.FailedToStart:  # no finished() follows: end the run here
            self._endWorker(None, [_("PythonSlicer could not be started.")])

    def _onWorkerFinished(self, exitCode, exitStatus=None) -> None:
        if self._worker is not None:
            self._endWorker(exitCode, self._worker["errors"])

    def _endWorker(self, exitCode, errors) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        worker["process"].deleteLater()  # Qt deletes it after this signal has returned
        cancelled, self._cancelled = self._cancelled, False
        try:
            self._checkCanRun()
            if exitCode == 0 and not cancelled:
                self.ui.progressBar.value = 100
                worker["onDone"](errors)
            elif not cancelled and exitCode != 130:
                slicer.util.errorDisplay("\n".join(errors[-3:]) or _("The background process failed."))
        finally:
            self.logic.removeWorkFolder(worker["folder"])

    def onCancel(self) -> None:
        if self.logic.mrml.lobe_updates.running:  # a full lobe recompute in the worker thread
            self.logic.cancelLobeUpdate()
            self.ui.progressBar.setFormat(_("cancelled"))
        if self._worker is None:
            return
        self._cancelled = True
        module_panel.terminate(self._worker["pid"])  # python-real first: the launcher does not pass it on
        self._worker["process"].kill()
        self.ui.progressBar.setFormat(_("cancelled"))

    # --- lobes --------------------------------------------------------------------------------
    def onChooseImportFolder(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(None, _("TotalSegmentator output folder"))
        if folder:
            self.ui.lobeImportPathLineEdit.currentPath = folder

    def onComputeLobes(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Failed to start the lobe segmentation."), waitCursor=True):
            if node.lobeMethod == "lungmask" and not self.logic.ensureLungmaskWithTorch():
                return
            self.logic.ensureDependencies()
            self._startWorker(lambda folder: self.logic.lobeArguments(node, folder), self._lobesReady)

    def _startWorker(self, makeArguments, ready) -> None:
        """A work folder, the arguments written into it, the process; the folder goes if starting fails."""
        folder = self.logic.newWorkFolder()
        try:
            arguments, *outputs = makeArguments(folder)
            self._runWorker(arguments, folder, lambda messages: ready(*outputs, messages))
        except Exception:
            self.logic.removeWorkFolder(folder)
            raise

    def _lobesReady(self, segPath, pointsPath, provenancePath, messages) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the lobes."), waitCursor=True):
            self.logic.loadLobes(self._parameterNode, segPath, pointsPath, provenancePath, onDrag=self.onRecomputeLobes)
            self.ui.warningsLabel.text = "\n".join(m for m in messages if m.startswith("warning"))
            self._checkCanRun()

    def onRecomputeLobes(self) -> None:
        """A released fissure point or the button: computed off the GUI thread, written by a timer's poll."""
        with slicer.util.tryWithErrorDisplay(_("Failed to recompute the lobes."), waitCursor=False):
            state = self.logic.startLobeUpdate(self._parameterNode)
            if state == "running":
                self._schedulePoll()
            self._checkCanRun()
            self._showLobeProgress(state)

    def _pollLobeUpdate(self) -> None:
        self._lobePolling = False
        with slicer.util.tryWithErrorDisplay(_("Failed to recompute the lobes."), waitCursor=False):
            state = self.logic.pollLobeUpdate(self._parameterNode) if self._parameterNode else "idle"
            if state == "running":
                self._schedulePoll()
            self._checkCanRun()
            self._showLobeProgress(state)

    def _showLobeProgress(self, state: str) -> None:
        """The worker's progress while lobes are recomputed (a full recompute takes seconds; a
        local one is done before anyone reads it); the cancel button stops it."""
        if self._worker is not None:
            return  # the background process owns the bar
        progress = self.logic.lobeUpdateProgress()
        if progress is not None:
            self.ui.progressBar.value = progress[0]
            self.ui.progressBar.setFormat(progress[1] + " %p%")
        elif state in ("applied", "cancelled"):
            self.ui.progressBar.value = 100 if state == "applied" else 0
            self.ui.progressBar.setFormat(_("lobes updated") + " %p%" if state == "applied" else _("cancelled"))
        self.ui.cancelButton.enabled = progress is not None

    def _schedulePoll(self) -> None:  # one poll queued at a time
        if not self._lobePolling:
            self._lobePolling = True
            qt.QTimer.singleShot(LOBE_POLL_MS, self._pollLobeUpdate)

    # --- candidates ---------------------------------------------------------------------------
    def onDetect(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start detection."), waitCursor=True):
            self.logic.ensureDependencies()
            self._startWorker(lambda folder: self.logic.detectArguments(self._parameterNode, folder),
                              self._candidatesReady)

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
        self._fillAssessmentTable()
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
        self._current = min(self._current, node.GetNumberOfControlPoints() - 1)
        slicer.modules.markups.logic().JumpSlicesToNthPointInMarkup(node.GetID(), self._current, True)
        self.logic.mrml.zoom_slice_views(40.0)
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
            with slicer.util.tryWithErrorDisplay(_("Failed to undo."), waitCursor=False):
                self.logic.undo(node)
                self._refreshResults()
                self.logic.mrml.autosave(node.candidates)

    def onPlacePoint(self) -> None:
        node = self._parameterNode
        if not node or not node.candidates:
            return
        if self._readerPoints is None or slicer.mrmlScene.GetNodeByID(self._readerPoints.GetID()) is None:
            self._readerPoints = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "DPO reader points")
            self.addObserver(self._readerPoints, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                             self._onReaderPointPlaced)
        slicer.modules.markups.logic().SetActiveList(self._readerPoints)
        slicer.modules.markups.logic().StartPlaceMode(False)

    def _onReaderPointPlaced(self, caller, event) -> None:
        position = self.logic.takePlacedPoint(caller)
        if position is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to add the point."), waitCursor=True):
            self.logic.addReaderFinding(self._parameterNode, position)
            self._refreshResults()
            self.logic.mrml.autosave(self._parameterNode.candidates)

    def _refreshVisibility(self) -> None:
        if self._parameterNode and self._parameterNode.candidates:
            self.logic.mrml.show_layer(self._parameterNode.candidates, "rejected", self.ui.showRejectedCheckBox.checked)

    def _refreshResults(self) -> None:
        node = self._parameterNode
        banner = self.logic.refreshResults(node)
        if banner is not None:
            self._shownPolicy = self.logic.policyFrom(node)
            self.ui.bannerLabel.text = banner

    # --- per lobe, window, saving ---------------------------------------------------------------
    def onAssessmentChanged(self, item) -> None:
        node = self._parameterNode
        if self._updatingAssessments or not node or not node.candidates:
            return
        with slicer.util.tryWithErrorDisplay(_("Invalid lobe assessment."), waitCursor=False):
            try:
                self.logic.setAssessmentCell(node, LOBES[item.row()].code, ASSESSMENT_COLUMNS[item.column()],
                                             item.checkState() == qt.Qt.Checked, item.text())
            finally:
                self._fillAssessmentTable()  # what was saved: a refused cell shows its saved value again
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
            self.logic.openReview(self._parameterNode, folder)
            self._current = 0
            self._showReview()

    def _reviewFolder(self, title) -> str:  # asked for when none is set ("" when the reader cancels)
        folder = self._parameterNode.reviewFolder
        return str(folder) if has_value(folder) else qt.QFileDialog.getExistingDirectory(None, title)

    def onSaveReview(self) -> None:
        node = self._parameterNode
        folder = self._reviewFolder(_("Review folder"))
        if not folder:
            return
        node.reviewFolder = Path(folder)
        with slicer.util.tryWithErrorDisplay(_("Failed to save the review."), waitCursor=True):
            self.logic.mrml.save_review(node.candidates, folder)
            slicer.util.showStatusMessage(_("Review saved in {folder}").format(folder=folder), 3000)

    def onExportDicom(self) -> None:
        """lobes.dcm, findings.dcm into REVIEW FOLDER/dicom, then into Slicer's DICOM database (PACS from there)."""
        node, base = self._parameterNode, self._reviewFolder(_("Review folder (the DICOM files go into its dicom/)"))
        if not base:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to export to DICOM."), waitCursor=True):
            folder = self.logic.exportDicom(node, base, slicer.dicomDatabase.fileForInstance)
            import DICOMLib  # Slicer's DICOM module (Qt/CTK): only when exporting

            if not DICOMLib.DICOMUtils.importDicom(folder):
                raise RuntimeError(_("Written in {folder}, but not added to the DICOM database.").format(folder=folder))
            slicer.util.showStatusMessage(_("DICOM SEG and SR written in {folder}").format(folder=folder), 5000)


class DPOScoringLogic(ScriptedLoadableModuleLogic, ModuleLogic):
    """Module logic: parameter-node values into DPOScoringLib calls (``ModuleLogic``, headless);
    this class adds Slicer's parameter node and the PyTorch check."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        ModuleLogic.__init__(self, slicer.mrmlScene, slicer.modules.segmentations.logic()
                             if hasattr(slicer.modules, "segmentations") else None)

    def getParameterNode(self):
        return DPOScoringParameterNode(super().getParameterNode())

    def ensureLungmaskWithTorch(self) -> bool:
        if not module_panel.torch_available():
            slicer.util.errorDisplay(_("lungmask needs PyTorch: install the PyTorch extension (PyTorch Utils) "
                                       "from the Extensions Manager, or choose the fissure method."))
            return False
        self.ensureLungmask()
        return True


class DPOScoringTest(ScriptedLoadableModuleTest):
    """In-Slicer self-test: the module's flow through files on a synthetic CT, then lobes on
    Slicer's sample chest CT. Any failure fails the test (nothing is turned into a skip)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (self.test_WholeFlowOnPhantom, self.test_SampleChestCT):
            self.setUp()
            test()

    def test_SampleChestCT(self):
        """Lungs and lobes on Slicer's sample chest CT (needs the network to download it)."""
        import SampleData

        logic = DPOScoringLogic()
        logic.ensureDependencies(testing=True)
        from DPOScoringLib.lobes.lobe_pipeline import compute_lobes

        volume = SampleData.downloadSample("CTChest")
        self.assertIsNotNone(volume, "Slicer's sample chest CT could not be downloaded")
        ct = logic.mrml.checked_ct(volume)
        volumes = compute_lobes(ct, "fissures").volumes_ml(ct.spacing)
        self.assertTrue(all(v > 0 for v in volumes.values()), volumes)

    def test_WholeFlowOnPhantom(self):
        """As the widget does it: the CLI's files read back by Slicer's storage nodes, a fissure
        drag, detection, decisions, scores (DPOScoringLib.cli.module_self_test)."""
        from DPOScoringLib.cli.module_self_test import whole_flow_on_phantom

        logic = DPOScoringLogic()
        logic.ensureDependencies(testing=True)  # scikit-image, cc3d, edt are not in a fresh Slicer
        whole_flow_on_phantom(logic, self)
        self.delayDisplay("Test passed")
