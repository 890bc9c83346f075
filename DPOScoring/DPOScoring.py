"""DPOScoring: the 3D Slicer module.

The widget only wires GUI events to the logic; every scoring rule lives in ``DPOScoringLib``.
"""

import logging
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
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

from DPOScoringLib.policy import (
    DEF1_VARIANTS,
    DEF2_VARIANTS,
    DENDRIFORM_NODULE_VARIANTS,
    ScoringPolicy,
)

#
# DPOScoring
#


class DPOScoring(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DPO Scoring")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Chest Imaging")]
        self.parent.dependencies = []
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


#
# DPOScoringParameterNode
#


@parameterNodeWrapper
class DPOScoringParameterNode:
    """What the reader chose in the panel; saved with the scene.

    inputVolume - the chest CT being read.
    readerId - who reads, recorded with every decision.
    readingPath - a dpo-reading/1 JSON file to score.
    def1, def2, dendriformNodules - the scoring policy (spec section 5).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    readerId: str = ""
    readingPath: Path
    def1: Annotated[str, Choice(list(DEF1_VARIANTS))] = "default"
    def2: Annotated[str, Choice(list(DEF2_VARIANTS))] = "default"
    dendriformNodules: Annotated[str, Choice(list(DENDRIFORM_NODULE_VARIANTS))] = "exclude"


#
# DPOScoringWidget
#


class DPOScoringWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DPOScoring.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = DPOScoringLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.scoreButton.connect("clicked(bool)", self.onScoreButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanScore)

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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanScore)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanScore)
            self._checkCanScore()

    def _checkCanScore(self, caller=None, event=None) -> None:
        path = self._parameterNode.readingPath if self._parameterNode else None
        self.ui.scoreButton.enabled = bool(path and str(path) not in ("", "."))

    def onScoreButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to score the reading."), waitCursor=True):
            scores = self.logic.scoreReadingFile(self._parameterNode.readingPath, self.logic.policyFrom(
                self._parameterNode))
            self._showScores(scores)

    def _showScores(self, scores: dict) -> None:
        from DPOScoringLib.score_summary import LOBE_COLUMNS, banner_text, lobe_rows

        self.ui.bannerLabel.text = banner_text(scores)
        rows = lobe_rows(scores)
        table = self.ui.lobeTableWidget
        table.clear()
        table.setColumnCount(len(LOBE_COLUMNS))
        table.setHorizontalHeaderLabels(list(LOBE_COLUMNS))
        table.setRowCount(len(rows))
        for rowIndex, row in enumerate(rows):
            for columnIndex, cell in enumerate(row):
                table.setItem(rowIndex, columnIndex, qt.QTableWidgetItem(cell))
        table.resizeColumnsToContents()


#
# DPOScoringLogic
#


class DPOScoringLogic(ScriptedLoadableModuleLogic):
    """Module logic: turns parameter-node values into DPOScoringLib calls. Usable without the GUI."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return DPOScoringParameterNode(super().getParameterNode())

    @staticmethod
    def policyFrom(parameterNode) -> ScoringPolicy:
        return ScoringPolicy(def1=parameterNode.def1, def2=parameterNode.def2,
                             dendriform_nodules=parameterNode.dendriformNodules)

    @staticmethod
    def scoreReadingFile(path, policy: ScoringPolicy) -> dict:
        from DPOScoringLib.reading import load_reading
        from DPOScoringLib.scoring import score_reading

        scores = score_reading(load_reading(path), policy)
        logging.info("DPOScoring: %s scored with %s", path, policy.id)
        return scores


#
# DPOScoringTest
#


class DPOScoringTest(ScriptedLoadableModuleTest):
    """In-Slicer self-test (run from the Reload & Test button or Slicer's test runner)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ScoreExampleReading()
        self.test_PolicyVariantsChangeDefinitions()

    def test_ScoreExampleReading(self):
        from DPOScoringLib.cli import example_reading_path

        self.delayDisplay("Scoring the example reading")
        scores = DPOScoringLogic().scoreReadingFile(example_reading_path(), ScoringPolicy())
        self.assertEqual(scores["schema"], "dpo-scores/1")
        self.assertEqual(scores["right_total"] + scores["left_total"], scores["total"])
        self.assertFalse(scores["complete"])
        self.delayDisplay("Test passed")

    def test_PolicyVariantsChangeDefinitions(self):
        from DPOScoringLib.cli import example_reading_path

        logic = DPOScoringLogic()
        default = logic.scoreReadingFile(example_reading_path(), ScoringPolicy())
        lobeOnly = logic.scoreReadingFile(example_reading_path(), ScoringPolicy(def2="lobe"))
        self.assertEqual(lobeOnly["variants"], default["variants"])
        self.assertEqual(lobeOnly["dpo_def2"], default["variants"]["def2"]["lobe"])
        self.delayDisplay("Test passed")
