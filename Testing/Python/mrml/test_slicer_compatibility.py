"""Every ``slicer.*``, ``qt.*``, ``ctk.*`` and ``DICOMLib.*`` name the module uses is in a table of names checked
against the oldest supported Slicer, 5.8 (and, where marked, against 5.10 and 5.12 too). A name
used outside the table fails the test: add it only after checking it in Slicer's source.

``TABLE``: name -> (file in Slicer's source, the token found there, versions). The table was
verified by reading Slicer's git repository at tags v5.8.0, v5.10.0 and v5.12.0 (``git show
TAG:FILE``); ``test_table_against_slicer_source`` repeats that check when a Slicer git checkout is
given in ``DPO_SLICER_SOURCE`` (skipped otherwise). Names available only from a later version
are ``GUARDED``: the module must check for them and use the 5.8 fallback named in the table.
Qt names: Slicer 5.8-5.12 build with Qt 5.15 (5.12 on Linux source builds; Slicer_REQUIRED_QT_VERSION
in CMakeLists.txt), and PythonQt wraps every QtCore/QtGui/QtWidgets class; the Qt version each
needs is given instead of a Slicer file.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[3] / "DPOScoring"
FILES = [MODULE / "DPOScoring.py", *sorted((MODULE / "DPOScoringLib").rglob("mrml_*.py")),
         MODULE / "DPOScoringLib" / "mrml" / "slicer_dependencies.py"]
ALIASES = {"slicer_module": "slicer",  # parameters standing for the slicer module (tests pass doubles)
           "packaging": "slicer.packaging"}  # slicer_dependencies: the module once imported
TAGS = ("v5.8.0", "v5.10.0", "v5.12.0")
ALL = TAGS
PY = "Base/Python/slicer/"
UTIL = PY + "util.py"
MARKUPS_LOGIC = "Modules/Loadable/Markups/Logic/vtkSlicerMarkupsLogic.h"
SCENE = "Libs/MRML/Core/vtkMRMLScene.h"
MARKUPS_NODE = "Modules/Loadable/Markups/MRML/vtkMRMLMarkupsNode.h"
DICOM_BROWSER = "Modules/Scripted/DICOMLib/DICOMBrowser.py"

TABLE = {
    # slicer.util (Base/Python/slicer/util.py)
    "slicer.util": (UTIL, "def loadUI", ALL),
    "slicer.util.VTKObservationMixin": (UTIL, "class VTKObservationMixin", ALL),
    "slicer.util.childWidgetVariables": (UTIL, "def childWidgetVariables(widget)", ALL),
    "slicer.util.errorDisplay": (UTIL, "def errorDisplay(text", ALL),
    "slicer.util.getNodesByClass": (UTIL, "def getNodesByClass(className", ALL),
    "slicer.util.loadUI": (UTIL, "def loadUI(path)", ALL),
    "slicer.util.mainWindow": (UTIL, "def mainWindow()", ALL),
    "slicer.util.showStatusMessage": (UTIL, "def showStatusMessage(message, duration=0)", ALL),
    "slicer.util.tryWithErrorDisplay": (UTIL, "def tryWithErrorDisplay(message=None, show=True, waitCursor=False)",
                                        ALL),
    "slicer.util.confirmOkCancelDisplay": (UTIL, "def confirmOkCancelDisplay(text, windowTitle=None", ALL),
    "slicer.util.pip_install": (UTIL, "def pip_install(requirements", ALL),
    # slicer.packaging: only from 5.12 (needs Python >= 3.11); 5.8/5.10 use slicer.util.pip_install
    "slicer.packaging": (PY + "packaging.py", "def pip_ensure(", ("v5.12.0",)),
    "slicer.packaging.pip_ensure": (PY + "packaging.py", "skip_in_testing: bool = True", ("v5.12.0",)),
    # module scaffolding
    "slicer.i18n.tr": (PY + "i18n.py", "def tr(text)", ALL),
    "slicer.i18n.translate": (PY + "i18n.py", "def translate(context, text)", ALL),
    "slicer.parameterNodeWrapper.Choice": (PY + "parameterNodeWrapper/validators.py", "class Choice(Validator)", ALL),
    "slicer.parameterNodeWrapper.parameterNodeWrapper": (PY + "parameterNodeWrapper/wrapper.py",
                                                         "def parameterNodeWrapper(classtype=None)", ALL),
    "slicer.ScriptedLoadableModule.ScriptedLoadableModule": (PY + "ScriptedLoadableModule.py",
                                                             "class ScriptedLoadableModule:", ALL),
    "slicer.ScriptedLoadableModule.ScriptedLoadableModuleWidget": (PY + "ScriptedLoadableModule.py",
                                                                   "class ScriptedLoadableModuleWidget:", ALL),
    "slicer.ScriptedLoadableModule.ScriptedLoadableModuleLogic": (PY + "ScriptedLoadableModule.py",
                                                                  "class ScriptedLoadableModuleLogic:", ALL),
    "slicer.ScriptedLoadableModule.ScriptedLoadableModuleTest": (PY + "ScriptedLoadableModule.py",
                                                                 "class ScriptedLoadableModuleTest", ALL),
    # application
    "slicer.app": ("Base/QTCore/qSlicerCoreApplication.h", "class Q_SLICER_BASE_QTCORE_EXPORT qSlicerCoreApplication",
                   ALL),
    "slicer.app.temporaryPath": ("Base/QTCore/qSlicerCoreApplication.h", "Q_PROPERTY(QString temporaryPath", ALL),
    "slicer.modules": ("Base/QTGUI/qSlicerScriptedLoadableModuleWidget.h", "qSlicerScriptedLoadableModuleWidget",
                       ALL),
    "slicer.modules.markups": ("Modules/Loadable/Markups/qSlicerMarkupsModule.h", "class", ALL),
    "slicer.modules.markups.logic": ("Modules/Loadable/Markups/qSlicerMarkupsModule.h", "class", ALL),
    "slicer.modules.markups.logic().JumpSlicesToNthPointInMarkup": (MARKUPS_LOGIC,
                                                                    "void JumpSlicesToNthPointInMarkup(", ALL),
    "slicer.modules.markups.logic().SetActiveList": (MARKUPS_LOGIC, "void SetActiveList(vtkMRMLMarkupsNode*", ALL),
    "slicer.modules.markups.logic().StartPlaceMode": (MARKUPS_LOGIC, "bool StartPlaceMode(bool persistent", ALL),
    "slicer.modules.segmentations": ("Modules/Loadable/Segmentations/qSlicerSegmentationsModule.h", "class", ALL),
    "slicer.modules.segmentations.logic": ("Modules/Loadable/Segmentations/qSlicerSegmentationsModule.h", "class",
                                           ALL),
    # DICOM (Export to DICOM): the DICOM module sets slicer.dicomDatabase (a ctkDICOMDatabase, CTK);
    # fileForInstance is CTK's, checked as Slicer's own DICOM browser calls it; DICOMLib is Slicer's
    # scripted DICOM library (imports Qt/CTK, so the module imports it only when exporting)
    "slicer.dicomDatabase": ("Modules/Scripted/DICOM/DICOM.py", "slicer.dicomDatabase = slicer.app.dicomDatabase()",
                             ALL),
    "slicer.dicomDatabase.fileForInstance": (DICOM_BROWSER, "slicer.dicomDatabase.fileForInstance(instance)", ALL),
    "DICOMLib.DICOMUtils": ("Modules/Scripted/DICOMLib/__init__.py", "from .DICOMUtils import *", ALL),
    "DICOMLib.DICOMUtils.importDicom": ("Modules/Scripted/DICOMLib/DICOMUtils.py",
                                        "def importDicom(dicomDataDir, dicomDatabase=None, copyFiles=False)", ALL),
    # not a name but a contract: the attribute Slicer's scalar volume plugin puts on a volume loaded
    # from DICOM (its slices' SOP instance UIDs, space-separated), read by mrml_dicom.py
    "attribute DICOM.instanceUIDs": ("Modules/Scripted/DICOMPlugins/DICOMScalarVolumePlugin.py",
                                     'volumeNode.SetAttribute("DICOM.instanceUIDs", instanceUIDs)', ALL),
    # the scene
    "slicer.mrmlScene": (SCENE, "class VTK_MRML_EXPORT vtkMRMLScene", ALL),
    "slicer.mrmlScene.AddNewNodeByClass": (SCENE, "vtkMRMLNode* AddNewNodeByClass(std::string className", ALL),
    "slicer.mrmlScene.Clear": (SCENE, "void Clear(int removeSingletons=0)", ALL),
    "slicer.mrmlScene.StartCloseEvent": (SCENE, "StartCloseEvent = StateEvent | StartEvent | CloseState", ALL),
    "slicer.mrmlScene.EndCloseEvent": (SCENE, "EndCloseEvent = StateEvent | EndEvent | CloseState", ALL),
    "slicer.mrmlScene.GetFirstNodeByClass": (SCENE, "vtkMRMLNode* GetFirstNodeByClass(const char* className)", ALL),
    "slicer.mrmlScene.GetNodeByID": (SCENE, "vtkMRMLNode *GetNodeByID(const char* name)", ALL),
    "slicer.vtkMRMLScene": (SCENE, "class VTK_MRML_EXPORT vtkMRMLScene", ALL),
    "slicer.vtkMRMLScene.EndCloseEvent": (SCENE, "EndCloseEvent = StateEvent | EndEvent | CloseState", ALL),
    # MRML classes (Libs/MRML/Core, Modules/Loadable/*/MRML, Logic)
    "slicer.vtkMRMLLabelMapVolumeNode": ("Libs/MRML/Core/vtkMRMLLabelMapVolumeNode.h", "vtkMRMLLabelMapVolumeNode",
                                         ALL),
    "slicer.vtkMRMLMarkupsFiducialNode": ("Modules/Loadable/Markups/MRML/vtkMRMLMarkupsFiducialNode.h",
                                          "vtkMRMLMarkupsFiducialNode", ALL),
    "slicer.vtkMRMLMarkupsJsonStorageNode": ("Modules/Loadable/Markups/MRML/vtkMRMLMarkupsJsonStorageNode.h",
                                             "vtkMRMLMarkupsJsonStorageNode", ALL),
    "slicer.vtkMRMLMarkupsNode": (MARKUPS_NODE, "vtkMRMLMarkupsNode : public vtkMRMLDisplayableNode", ALL),
    "slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent": (MARKUPS_NODE, "PointEndInteractionEvent,", ALL),
    "slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent": (MARKUPS_NODE, "PointPositionDefinedEvent,", ALL),
    "slicer.vtkMRMLScalarVolumeNode": ("Libs/MRML/Core/vtkMRMLScalarVolumeNode.h", "vtkMRMLScalarVolumeNode", ALL),
    "slicer.vtkMRMLSegmentationNode": ("Libs/MRML/Core/vtkMRMLSegmentationNode.h", "vtkMRMLSegmentationNode", ALL),
    "slicer.vtkMRMLSegmentationStorageNode": ("Libs/MRML/Core/vtkMRMLSegmentationStorageNode.h",
                                              "vtkMRMLSegmentationStorageNode", ALL),
    "slicer.vtkMRMLSelectionNode": ("Libs/MRML/Core/vtkMRMLSelectionNode.h", "vtkMRMLSelectionNode", ALL),
    "slicer.vtkMRMLSliceNode": ("Libs/MRML/Core/vtkMRMLSliceNode.h", "vtkMRMLSliceNode", ALL),
    "slicer.vtkMRMLTableNode": ("Libs/MRML/Core/vtkMRMLTableNode.h", "vtkMRMLTableNode", ALL),
    "slicer.vtkMRMLVolumeArchetypeStorageNode": ("Libs/MRML/Core/vtkMRMLVolumeArchetypeStorageNode.h",
                                                 "vtkMRMLVolumeArchetypeStorageNode", ALL),
    "slicer.vtkSegmentationConverter": ("Libs/vtkSegmentationCore/vtkSegmentationConverter.h",
                                        "GetBinaryLabelmapRepresentationName()", ALL),
    "slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName": (
        "Libs/vtkSegmentationCore/vtkSegmentationConverter.h", "GetBinaryLabelmapRepresentationName()", ALL),
    "slicer.vtkSlicerMarkupsLogic": (MARKUPS_LOGIC, "vtkSlicerMarkupsLogic", ALL),
    "slicer.vtkSlicerSegmentationsModuleLogic": ("Modules/Loadable/Segmentations/Logic/"
                                                 "vtkSlicerSegmentationsModuleLogic.h",
                                                 "bool ImportLabelmapToSegmentationNode(", ALL),
    # Qt through PythonQt (no Slicer file: the Qt version that has it)
    "qt.QFileDialog": ("Qt 4.0", None, ()),
    "qt.QKeySequence": ("Qt 4.0", None, ()),
    "qt.QProcess": ("Qt 4.0", None, ()),
    "qt.QProcess.FailedToStart": ("Qt 4.0 (QProcess::ProcessError)", None, ()),
    "qt.QProcessEnvironment": ("Qt 4.6", None, ()),
    "qt.QShortcut": ("Qt 4.0", None, ()),
    "qt.QTableWidgetItem": ("Qt 4.2", None, ()),
    "qt.QTimer": ("Qt 4.0 (QTimer::singleShot)", None, ()),
    "qt.Qt": ("Qt 4.0", None, ()),
    "qt.Qt.Checked": ("Qt 4.0 (Qt::CheckState)", None, ()),
    "qt.Qt.Unchecked": ("Qt 4.0 (Qt::CheckState)", None, ()),
    "qt.Qt.ItemIsEnabled": ("Qt 4.0 (Qt::ItemFlag)", None, ()),
    "qt.Qt.ItemIsUserCheckable": ("Qt 4.0 (Qt::ItemFlag)", None, ()),
}
GUARDED = {"slicer.packaging": "slicer.util.pip_install", "slicer.packaging.pip_ensure": "slicer.util.pip_install"}
# Signals connected by signature string: checked in the Qt 5.15 / CTK / qMRMLWidgets headers
# (QProcess::errorOccurred needs Qt 5.6); the GUI test double refuses any other signal per class.
SIGNATURE = re.compile(r'connect\("([^"]+)"')
SIGNALS = {"clicked(bool)", "activated(int)", "toggled(bool)", "clicked(QModelIndex)", "itemChanged(QTableWidgetItem*)",
           "activated()", "readyReadStandardError()", "finished(int,QProcess::ExitStatus)",
           "errorOccurred(QProcess::ProcessError)"}


def _chain(node):
    parts = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            parts.append(node.func.attr + "()")
            node = node.func.value
        else:
            break
    if isinstance(node, ast.Name):
        parts.append(ALIASES.get(node.id, node.id))
        return ".".join(parts[::-1]).split(".")
    return None


def _name_of(parts: list[str]) -> str | None:
    """The table's granularity: module functions, class constants, scene methods, logic methods."""
    if parts[1].startswith("__"):
        return None  # Python's own attributes (slicer_module.__name__)
    if parts[0] == "DICOMLib":
        return re.sub(r"\(\)$", "", ".".join(parts[:3]))  # DICOMLib.DICOMUtils.importDicom
    if parts[:2] == ["slicer", "modules"]:
        depth = 5 if len(parts) >= 5 and parts[3] == "logic()" else 4 if len(parts) >= 4 else 3
        return re.sub(r"\(\)$", "", ".".join(parts[:depth]))
    if parts[0] == "slicer" and len(parts) > 2 and (parts[1] in ("util", "packaging", "i18n", "parameterNodeWrapper",
                                                                  "ScriptedLoadableModule", "mrmlScene", "app",
                                                                  "dicomDatabase")
                                                    or parts[1].startswith("vtk") and parts[2][:1].isupper()):
        return re.sub(r"\(\)$", "", ".".join(parts[:3]))
    if parts[0] == "qt" and len(parts) > 2 and parts[1] in ("Qt", "QProcess") and parts[2][:1].isupper():
        return ".".join(parts[:3])
    return re.sub(r"\(\)$", "", ".".join(parts[:2]))


def used_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Call)):
            parts = _chain(node)
            if parts and parts[0] in ("slicer", "qt", "ctk", "DICOMLib") and len(parts) > 1:
                names.add(_name_of(parts))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("slicer", "qt", "ctk"):
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"vtk(MRML|Slicer)\w+", node.value):
                names.add("slicer." + node.value)  # AddNewNodeByClass("vtkMRML...")
            elif re.fullmatch(r"(slicer|qt|ctk)\.\w+", node.value):
                names.add(node.value)  # importlib.import_module("slicer.packaging")
    return names - {None}


def test_every_slicer_qt_ctk_name_the_module_uses_is_in_the_table():
    used = set().union(*(used_names(path) for path in FILES))
    assert len(used) > 40  # the collector sees the module's names
    assert {"slicer.dicomDatabase.fileForInstance", "DICOMLib.DICOMUtils.importDicom"} <= used  # and DICOM's
    unknown = sorted(used - set(TABLE))
    assert not unknown, f"names not checked against Slicer 5.8 (add them to TABLE after checking): {unknown}"


def test_names_missing_from_slicer_5_8_are_guarded_with_a_fallback():
    for name, (_where, _token, versions) in TABLE.items():
        if versions and "v5.8.0" not in versions:
            assert name in GUARDED, f"{name} is not in Slicer 5.8 and has no fallback"
            assert GUARDED[name] in TABLE and "v5.8.0" in TABLE[GUARDED[name]][2]
    code = (MODULE / "DPOScoringLib" / "mrml" / "slicer_dependencies.py").read_text(encoding="utf-8")
    assert 'hasattr(packaging, "pip_ensure")' in code and "except ImportError" in code
    assert "slicer_module.util.pip_install(" in code


def test_connected_signals_are_known():
    used = set()
    for path in FILES:
        used |= set(SIGNATURE.findall(path.read_text(encoding="utf-8")))
    assert used and used <= SIGNALS, used - SIGNALS


MOVED = {  # files Slicer moved after 5.8: the same class, another folder
    "Modules/Loadable/Markups/MRML/vtkMRMLMarkupsNode.h": {"v5.10.0": "Libs/MRML/Core/vtkMRMLMarkupsNode.h",
                                                           "v5.12.0": "Libs/MRML/Core/vtkMRMLMarkupsNode.h"},
    "Modules/Loadable/Markups/MRML/vtkMRMLMarkupsFiducialNode.h": {
        "v5.10.0": "Libs/MRML/Core/vtkMRMLMarkupsFiducialNode.h",
        "v5.12.0": "Libs/MRML/Core/vtkMRMLMarkupsFiducialNode.h"},
}


def _compact(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_table_against_slicer_source():
    """Repeats the table's verification in a Slicer git checkout (DPO_SLICER_SOURCE: a git dir)."""
    source = os.environ.get("DPO_SLICER_SOURCE")
    if not source:
        pytest.skip("set DPO_SLICER_SOURCE to a Slicer git repository to check the table against its tags")
    tags = set(subprocess.run(["git", "-C", source, "tag"], capture_output=True, text=True,
                              encoding="utf-8").stdout.split())
    missing_tags = [tag for tag in TAGS if tag not in tags]
    assert not missing_tags, f"{source} lacks {missing_tags}"
    cache: dict[tuple[str, str], str] = {}

    def text(tag, where):
        where = MOVED.get(where, {}).get(tag, where)
        if (tag, where) not in cache:
            cache[(tag, where)] = _compact(subprocess.run(["git", "-C", source, "show", f"{tag}:{where}"],
                                                          capture_output=True, text=True, encoding="utf-8").stdout)
        return cache[(tag, where)]

    problems = []
    for name, (where, token, versions) in TABLE.items():
        problems += [f"{name}: {token!r} not in {tag}:{where}" for tag in versions
                     if _compact(token) not in text(tag, where)]
        if versions and name in GUARDED:  # really absent before: the fallback is needed
            problems += [f"{name} is already in {tag}" for tag in set(TAGS) - set(versions)
                         if _compact(token) in text(tag, where)]
    assert not problems, "\n".join(problems)


def test_everything_slicer_loads_parses_as_python_3_9():
    """Slicer 5.8 ships Python 3.9.10 (SuperBuild/External_python.cmake at v5.8.0); 5.10 and 5.12
    ship 3.12.10. No ``match``, no parenthesised context managers, ... in any file Slicer loads."""
    for path in [MODULE / "DPOScoring.py", *sorted((MODULE / "DPOScoringLib").rglob("*.py"))]:
        ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 9))


def test_runtime_annotations_need_no_python_3_10():
    """``X | Y`` in annotations is evaluated at run time unless ``from __future__ import annotations``:
    every module using it must have that import (the parameter node's annotations are evaluated by
    parameterNodeWrapper, so DPOScoring.py uses none)."""
    for path in [MODULE / "DPOScoring.py", *sorted((MODULE / "DPOScoringLib").rglob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
                     any(a.name == "annotations" for a in n.names) for n in tree.body)
        unions = [n for n in ast.walk(tree) if isinstance(n, (ast.AnnAssign, ast.arg, ast.FunctionDef))
                  and any(isinstance(b, ast.BinOp) and isinstance(b.op, ast.BitOr)
                          for b in ast.walk(getattr(n, "annotation", None) or getattr(n, "returns", None)
                                            or ast.Constant(None)))]
        assert future or not unions, f"{path.name} uses X | Y annotations without from __future__ import annotations"
