"""Every ``slicer.*``, ``qt.*``, ``ctk.*`` and ``DICOMLib.*`` name the module uses is in a table of names checked
against the oldest supported Slicer, 5.8 (and, where marked, against 5.10 and 5.12 too). A name
used outside the table fails the test: add it only after checking it in Slicer's source.

``TABLE`` (read from ``slicer_api.tsv`` beside this file, a data table with its notes): name ->
(file in Slicer's source, the token found there, versions). The table was
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
FILES = [MODULE / "DPOScoring.py", *sorted((MODULE / "DPOScoringLib" / "mrml").glob("*.py"))]  # the Slicer layers
ALIASES = {"slicer_module": "slicer",  # parameters standing for the slicer module (tests pass doubles)
           "packaging": "slicer.packaging"}  # slicer_dependencies: the module once imported
TAGS = ("v5.8.0", "v5.10.0", "v5.12.0")
ALL = TAGS

TABLE_FILE = Path(__file__).with_name("slicer_api.tsv")


def read_table(path: Path) -> dict:
    """name -> (file, text or None, tags) from the tab-separated table (``#`` lines are notes)."""
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, where, token, tags = line.split("\t")
            table[name] = (where, token or None, ALL if tags == "all" else tuple(tags.split()))
    return table


TABLE = read_table(TABLE_FILE)
# Methods and contracts of Slicer objects the drag update and the panel rely on (called on objects,
# so the name collector above cannot see them): name -> (file in Slicer's source, the token found
# there at every tag, the module file that relies on it, what it relies on there). Each entry fails
# when its module file no longer contains that call, so the list follows the code.
SEGMENTATION_H = "Libs/vtkSegmentationCore/vtkSegmentation.h"
LIB = "DPOScoringLib/mrml/"
METHODS = {
    "vtkMRMLSegmentationNode.GetSegmentation": ("Libs/MRML/Core/vtkMRMLSegmentationNode.h",
                                                "vtkGetObjectMacro(Segmentation, vtkSegmentation);",
                                                LIB + "mrml_lobe_layer.py", ".GetSegmentation()"),
    "vtkSegmentation.GetSourceRepresentationName": (SEGMENTATION_H,
                                                    "vtkGetMacro(SourceRepresentationName, std::string);",
                                                    LIB + "mrml_lobe_layer.py", ".GetSourceRepresentationName()"),
    "vtkSegmentation.GetLayerIndex": (SEGMENTATION_H, "int GetLayerIndex(std::string segmentId",
                                      LIB + "mrml_lobe_layer.py", ".GetLayerIndex("),
    "vtkSegmentation.GetLayerDataObject": (SEGMENTATION_H, "vtkDataObject* GetLayerDataObject(int layer",
                                           LIB + "mrml_lobe_layer.py", ".GetLayerDataObject("),
    "vtkSegmentation.GetSegment": (SEGMENTATION_H, "vtkSegment* GetSegment(std::string segmentId);",
                                   LIB + "mrml_lobe_layer.py", ".GetSegment("),
    "vtkSegment.GetLabelValue": ("Libs/vtkSegmentationCore/vtkSegment.h", "vtkGetMacro(LabelValue, int);",
                                 LIB + "mrml_lobe_layer.py", ".GetLabelValue()"),
    "vtkOrientedImageData.GetImageToWorldMatrix": ("Libs/vtkSegmentationCore/vtkOrientedImageData.h",
                                                   "void GetImageToWorldMatrix(vtkMatrix4x4* mat);",
                                                   LIB + "mrml_lobe_layer.py", ".GetImageToWorldMatrix"),
    "vtkMRMLVolumeNode.GetIJKToRASMatrix": ("Libs/MRML/Core/vtkMRMLVolumeNode.h",
                                            "void GetIJKToRASMatrix(vtkMatrix4x4* mat);",
                                            LIB + "mrml_lobe_layer.py", ".GetIJKToRASMatrix"),
    "vtkMRMLVolumeNode.GetImageData": ("Libs/MRML/Core/vtkMRMLVolumeNode.h", "virtual vtkImageData* GetImageData();",
                                       LIB + "mrml_lobe_drag.py", ".GetImageData()"),
    "vtkMRMLNode.SetAttribute": ("Libs/MRML/Core/vtkMRMLNode.h",
                                 "void SetAttribute(const char* name, const char* value);",
                                 LIB + "mrml_fissure_confidence.py", ".SetAttribute("),
    "vtkMRMLNode.GetAttribute": ("Libs/MRML/Core/vtkMRMLNode.h", "const char* GetAttribute(const char* name);",
                                 LIB + "mrml_fissure_confidence.py", ".GetAttribute("),
    # lobes in several layers merged into one (mrml_lobe_layer_merge), as vtkSegmentation's
    # MergeSegmentLabelmaps does it, and the points the lobes were made from kept on the
    # segmentation node (mrml_lobe_points)
    "vtkSegment.GetRepresentation": ("Libs/vtkSegmentationCore/vtkSegment.h",
                                     "vtkDataObject* GetRepresentation(std::string name);",
                                     LIB + "mrml_lobe_layer_merge.py", ".GetRepresentation(name)"),
    "vtkSegment.SetLabelValue": ("Libs/vtkSegmentationCore/vtkSegment.h", "vtkSetMacro(LabelValue, int);",
                                 LIB + "mrml_lobe_layer_merge.py", ".SetLabelValue(label)"),
    "vtkSegment.AddRepresentation": ("Libs/vtkSegmentationCore/vtkSegment.h",
                                     "bool AddRepresentation(std::string type, vtkDataObject* representation);",
                                     LIB + "mrml_lobe_layer_merge.py", ".AddRepresentation(name, labelmap)"),
    "vtkOrientedImageData.SetImageToWorldMatrix": ("Libs/vtkSegmentationCore/vtkOrientedImageData.h",
                                                   "void SetImageToWorldMatrix(vtkMatrix4x4* mat);",
                                                   LIB + "mrml_lobe_layer_merge.py", ".SetImageToWorldMatrix(matrix)"),
    "contract: segments share a layer by being given the same labelmap (MergeSegmentLabelmaps)": (
        "Libs/vtkSegmentationCore/vtkSegmentation.cxx",
        "segment->AddRepresentation(vtkSegmentationConverter::GetBinaryLabelmapRepresentationName(), "
        "sharedLabelmapRepresentation);", LIB + "mrml_lobe_layer_merge.py", ".AddRepresentation(name, labelmap)"),
    "vtkMRMLNode.SetAttribute (lobe points)": ("Libs/MRML/Core/vtkMRMLNode.h",
                                               "void SetAttribute(const char* name, const char* value);",
                                               LIB + "mrml_lobe_points.py", ".SetAttribute(POINTS_ATTRIBUTE"),
    "vtkMRMLNode.GetAttribute (lobe points)": ("Libs/MRML/Core/vtkMRMLNode.h",
                                               "const char* GetAttribute(const char* name);",
                                               LIB + "mrml_lobe_points.py", ".GetAttribute(POINTS_ATTRIBUTE)"),
    "vtkMRMLNode.RemoveAttribute": ("Libs/MRML/Core/vtkMRMLNode.h", "void RemoveAttribute(const char* name);",
                                    LIB + "mrml_lobe_points.py", ".RemoveAttribute(POINTS_ATTRIBUTE)"),
    "contract: node attributes are written to the scene file": (
        "Libs/MRML/Core/vtkMRMLNode.cxx", 'of << " attributes=\\"";',
        LIB + "mrml_lobe_points.py", ".SetAttribute(POINTS_ATTRIBUTE"),
    "vtkMRMLNode.GetAttribute (fissure nodes)": ("Libs/MRML/Core/vtkMRMLNode.h",
                                                 "const char* GetAttribute(const char* name);",
                                                 LIB + "mrml_lobes.py", ".GetAttribute(FISSURE_ATTRIBUTE)"),
    # contract: the segmentation node re-sends its vtkSegmentation's SourceRepresentationModified
    # (a Segment Editor stroke, an import into the node) as its own event, which the edit watch
    # observes on the node (it outlives a replaced vtkSegmentation)
    "contract: the node re-sends SourceRepresentationModified": (
        "Libs/MRML/Core/vtkMRMLSegmentationNode.cxx", "case vtkSegmentation::SourceRepresentationModified:",
        LIB + "mrml_lobes.py", "segmentation.AddObserver(slicer.vtkSegmentation.SourceRepresentationModified"),
    "vtkMRMLScene.GetNthNodeByClass (stored lobes)": (
        "Libs/MRML/Core/vtkMRMLScene.h", "vtkMRMLNode* GetNthNodeByClass(int n, const char* className);",
        LIB + "mrml_lobes.py", ".GetNthNodeByClass(index, \"vtkMRMLSegmentationNode\")"),
    # contracts: a source labelmap's Modified() reaches the segmentation (derived representations
    # invalidated, SourceRepresentationModified), a segment's Modified() redraws the 2-D views, and
    # both are how Slicer itself says to write a segment's voxels in place
    "contract: source labelmap Modified is observed": (
        "Libs/vtkSegmentationCore/vtkSegmentation.cxx",
        "sourceRepresentation->AddObserver(vtkCommand::ModifiedEvent, this->SourceRepresentationCallbackCommand);",
        LIB + "mrml_lobe_layer.py", "self.labelmap.Modified()"),
    "contract: SegmentModified redraws the 2-D views": (
        "Modules/Loadable/Segmentations/MRMLDM/vtkMRMLSegmentationsDisplayableManager2D.cxx",
        "|| (event == vtkSegmentation::SegmentModified)",
        LIB + "mrml_lobe_layer.py", ".Modified()  # the views redraw"),
    "contract: voxels written in place, then the segment's Modified": (
        "Base/Python/slicer/util.py", "segmentationNode.GetSegmentation().GetSegment(segmentID).Modified()",
        LIB + "mrml_lobe_layer.py", "GetSegment(self.segment_ids[label]).Modified()"),
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


def test_every_listed_method_is_still_called_where_the_table_says():
    for name, (_where, _token, module_file, call) in METHODS.items():
        assert call in (MODULE / module_file).read_text(encoding="utf-8"), f"{name}: {module_file} has no {call!r}"


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

    problems = [f"{name}: {token!r} not in {tag}:{where}" for name, (where, token, _, _) in METHODS.items()
                for tag in TAGS if _compact(token) not in text(tag, where)]
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
