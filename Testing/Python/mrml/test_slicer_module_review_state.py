"""The review layer's own state, headless over the real MRML library (slicer-core): each test
reproduces one bug of the Slicer module (issue #11 items 2, 6-8, 10; issue #12 point 4) and failed
before its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is installed by the test setup (make test)")

import SimpleITK as sitk  # noqa: E402

from DPOScoringLib.common.anatomy import LOBES  # noqa: E402
from DPOScoringLib.common.errors import DPOInputError  # noqa: E402
from DPOScoringLib.detection.candidates_file import candidates_document  # noqa: E402
from DPOScoringLib.lobes.lobe_files import terminology_tag  # noqa: E402
from DPOScoringLib.mrml.mrml_logic import DPOScoringMRMLLogic, create_headless_scene  # noqa: E402
from DPOScoringLib.rules.reading import parse_reading  # noqa: E402


def document_of(phantom):
    run = phantom.run
    return candidates_document(run.ct, run.result, run.warnings, run.sources, run.lung_volumes_ml)


@pytest.fixture()
def fresh(phantom_1mm, tmp_path):
    scene = create_headless_scene()
    logic = DPOScoringMRMLLogic(scene)
    volume = logic.load_volume(phantom_1mm.paths["ct"])
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_1mm.paths["lobes"]))).astype(np.uint8)
    return scene, logic, volume, truth


# --- issue #12 point 4 ------------------------------------------------------------------------
def test_undo_after_placing_a_missed_ossification_removes_the_point(fresh, phantom_1mm, tmp_path):
    scene, logic, *_ = fresh
    markups = logic.candidates_to_markups(document_of(phantom_1mm))
    layers = logic.status_layers(markups)
    count, confirmed = markups.GetNumberOfControlPoints(), layers["confirmed"].GetNumberOfControlPoints()
    logic.add_reader_finding(markups, [-30.0, 10.0, 60.0], "RLL", "reader-1")
    before = logic.update_results(markups)[0]["nnpol"]["RLL"]
    assert markups.GetNumberOfControlPoints() == count + 1
    assert layers["confirmed"].GetNumberOfControlPoints() == confirmed + 1
    logic.undo(markups, "reader-1")
    assert markups.GetNumberOfControlPoints() == count
    assert layers["confirmed"].GetNumberOfControlPoints() == confirmed
    assert logic.update_results(markups)[0]["nnpol"]["RLL"] == before - 1
    assert all(r.get("source") != "reader" for r in logic.records(markups))


def test_an_invalid_decision_is_refused_before_anything_is_written(fresh, phantom_1mm, tmp_path):
    scene, logic, *_ = fresh
    markups = logic.candidates_to_markups(document_of(phantom_1mm))
    logic.review_folder = tmp_path
    logic.decide(markups, 0, "reader-1", status="confirmed")
    record, log = logic.record(markups, 0), markups.GetAttribute("DPOScoring.DecisionLog")
    for change in ({"background": "fibrosis"}, {"kind": "calcified"}, {"status": "maybe"},
                   {"status": "rejected", "background": "nonsense"}):
        with pytest.raises(DPOInputError):
            logic.decide(markups, 0, "reader-1", **change)
        assert logic.record(markups, 0) == record
        assert markups.GetAttribute("DPOScoring.DecisionLog") == log
    parse_reading({k: v for k, v in json.loads((tmp_path / "reading.json").read_text(encoding="utf-8")).items()
                   if k != "decisions"})  # the autosaved reading still loads
    logic.load_review(tmp_path)


def test_work_folders_are_private_and_removed_when_the_process_ends(tmp_path):
    """A process that made a work folder and exported a CT into it, then ended without cleaning
    up (Slicer closed mid-run): nothing of it is left."""
    code = (
        "import sys, os\n"
        "from DPOScoringLib.mrml.mrml_logic import DPOScoringMRMLLogic, create_headless_scene\n"
        "from DPOScoringLib.mrml.mrml_workspace import new_work_folder, export_volume\n"
        "logic = DPOScoringMRMLLogic(create_headless_scene())\n"
        "volume = logic.load_volume(sys.argv[1])\n"
        "folder = new_work_folder(base=sys.argv[2])\n"
        "export_volume(volume, folder / 'ct.nrrd')\n"
        "print(folder, oct(os.stat(folder).st_mode & 0o777), (folder / 'ct.nrrd').stat().st_size)\n"
    )
    ct = _small_ct(tmp_path)
    result = subprocess.run([sys.executable, "-c", code, str(ct), str(tmp_path)], capture_output=True,
                            text=True, encoding="utf-8", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    folder, mode, size = result.stdout.split()
    assert mode == "0o700" and int(size) > 1000
    assert not os.path.exists(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]


def _small_ct(folder):
    image = sitk.Image(20, 20, 10, sitk.sitkInt16)
    image.SetSpacing((1.0, 1.0, 2.0))
    path = folder / "ct.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def test_exporting_the_ct_leaves_its_storage_node_on_the_users_file(fresh, tmp_path):
    from DPOScoringLib.mrml.mrml_workspace import export_volume, new_work_folder, remove_work_folder

    _, _, volume, _ = fresh
    original = volume.GetStorageNode().GetFileName()
    folder = new_work_folder(base=tmp_path)
    export_volume(volume, folder / "ct.nrrd")
    assert volume.GetStorageNode().GetFileName() == original
    assert sitk.ReadImage(str(folder / "ct.nrrd")).GetSize() == sitk.ReadImage(original).GetSize()
    remove_work_folder(folder)
    assert not folder.exists()


# --- issue #11 --------------------------------------------------------------------------------
def _segmentation_like_the_cli_writes(logic, truth, volume, tmp_path, names=None, terminology=True):
    """A .seg.nrrd as the ``lobes`` command writes it (terminology tags only), read back by
    Slicer's segmentation storage node."""
    from DPOScoringLib.lobes.lobe_files import write_segmentation

    path = write_segmentation(tmp_path / "lobes.seg.nrrd", truth, sitk.ReadImage(
        volume.GetStorageNode().GetFileName()))
    segmentation = logic.load_segmentation(path)
    segments = segmentation.GetSegmentation()
    for index in range(segments.GetNumberOfSegments()):
        segment = segments.GetNthSegment(index)
        tag = __import__("vtk").mutable("")
        assert not segment.GetTag("DPOScoring.LobeCode", tag)
        if not terminology:
            segment.RemoveTag(segment.GetTerminologyEntryTagName())
        if names:
            segment.SetName(names[index])
    return segmentation


def test_lobes_are_recognised_by_terminology_alone(fresh, tmp_path):
    _, logic, volume, truth = fresh
    segmentation = _segmentation_like_the_cli_writes(logic, truth, volume, tmp_path,
                                                     names=[f"Segment_{i}" for i in range(6)])
    assert np.array_equal(logic.lobe_array(segmentation, volume), truth)


def test_lobes_are_recognised_by_name_as_a_fallback(fresh, tmp_path):
    _, logic, volume, truth = fresh
    names = ["lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "LUL",
             "Lingula", "left lower lobe"]
    segmentation = _segmentation_like_the_cli_writes(logic, truth, volume, tmp_path, names=names,
                                                     terminology=False)
    assert np.array_equal(logic.lobe_array(segmentation, volume), truth)


def test_terminology_codes_of_other_tools():
    from DPOScoringLib.mrml.mrml_lobes import code_from_terminology

    for lobe in LOBES:
        assert code_from_terminology(terminology_tag(lobe.code)) in (lobe.code, "LUL+")
    # TotalSegmentator's left upper lobe (lingula included), as its Slicer extension tags it
    tag = ("Segmentation category and type - DICOM master list~SCT^123037004^Anatomical Structure~"
           "SCT^45653009^Upper lobe of lung~SCT^7771000^Left~Anatomic codes - DICOM master list~^^~^^|")
    assert code_from_terminology(tag) == "LUL+"
    assert code_from_terminology("ctx~SCT^123037004^Anatomical Structure~SCT^39607008^Lung~^^~a~^^~^^") is None


def test_a_segmentation_without_lobes_is_refused_and_never_replaced(fresh, tmp_path):
    scene, logic, volume, truth = fresh
    segmentation = _segmentation_like_the_cli_writes(logic, truth, volume, tmp_path,
                                                     names=[f"Segment_{i}" for i in range(6)], terminology=False)
    with pytest.raises(DPOInputError, match="no segment recognisable as a lung lobe"):
        logic.lobe_array(segmentation, volume)
    with pytest.raises(DPOInputError):
        logic.recompute_lobes(volume, segmentation, in_place=True)
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 6
    assert scene.GetNodeByID(segmentation.GetID()) is segmentation


def test_close_scene_forgets_the_previous_review(fresh, phantom_1mm):
    scene, logic, *_ = fresh
    first = logic.candidates_to_markups(document_of(phantom_1mm))
    logic.status_layers(first)
    for index in range(first.GetNumberOfControlPoints()):
        logic.decide(first, index, "reader-1", status="rejected")
    assert logic.update_results(first)[0]["nnpol"] == {lobe.code: 0 for lobe in LOBES}
    scene.Clear(0)
    second = logic.candidates_to_markups(document_of(phantom_1mm))  # same CT, same node ID
    assert second.GetID() == first.GetID()
    assert all(f.status == "pending" for f in logic._finding_cache(second))
    layers = logic.status_layers(second)
    logic.status_layers(second)  # Open Review / Detect again: still one set of layers
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode") == 1 + 4
    assert logic.layer(second, "rejected") is not layers["rejected"]
    assert logic.layer(second, "rejected").GetName() == "DPO rejected"


def test_lobe_cache_follows_segment_editor_edits(fresh, tmp_path):
    _, logic, volume, truth = fresh
    segmentation = _segmentation_like_the_cli_writes(logic, truth, volume, tmp_path)
    lobes, _ = logic.cached_lobe_array(segmentation, volume)
    assert (lobes == 2).sum() == (truth == 2).sum()
    # what the Segment Editor does: write voxels into the segment's binary labelmap
    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName("right middle lobe")
    edited = slicer.vtkOrientedImageData()
    segmentation.GetBinaryLabelmapRepresentation(segment_id, edited)
    layer = segmentation.GetSegmentation().GetSegment(segment_id).GetRepresentation(
        slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
    mtime = segmentation.GetMTime()
    from vtk.util import numpy_support

    scalars = numpy_support.vtk_to_numpy(layer.GetPointData().GetScalars())
    scalars[scalars == 2] = 0  # the RML erased (its label value in the shared layer is 2)
    layer.Modified()
    assert segmentation.GetMTime() == mtime  # why the old cache key missed the edit
    lobes, _ = logic.cached_lobe_array(segmentation, volume)
    assert (lobes == 2).sum() == 0


def test_one_drag_observer_per_fissure_node_however_often_lobes_are_computed(fresh):
    from DPOScoringLib.lobes.fissures import default_points

    _, logic, volume, truth = fresh
    lungs = np.where(truth > 3, 2, np.where(truth > 0, 1, 0)).astype(np.uint8)
    points = default_points(lungs, logic.checked_ct(volume).geometry)
    calls = []
    for _ in range(3):  # Compute lobes three times
        nodes = logic.show_fissure_points(points)
        logic.observe_fissure_drags(nodes, lambda: calls.append(1))
    assert len(nodes) == 4
    nodes[0].InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)
    assert len(calls) == 1


def test_editing_one_lobe_answer_keeps_the_others(fresh, phantom_1mm):
    _, logic, *_ = fresh
    markups = logic.candidates_to_markups(document_of(phantom_1mm))
    logic.set_lobe_assessment(markups, "LLL", {"dendriform": True, "extent_over_half": True,
                                               "ild": {"honeycombing": 2, "overall": 3}}, "reader-1")
    logic.update_lobe_assessment(markups, "LLL", "reader-1", ild={"ggo": 1})
    logic.update_lobe_assessment(markups, "LLL", "reader-1", extent_over_half=False)
    assert logic.lobe_assessments(markups)["LLL"] == {
        "dendriform": True, "extent_over_half": False, "ild": {"honeycombing": 2, "overall": 3, "ggo": 1}}
    logic.update_lobe_assessment(markups, "LLL", "reader-1", ild={"honeycombing": None})
    assert logic.lobe_assessments(markups)["LLL"]["ild"] == {"overall": 3, "ggo": 1}
    with pytest.raises(DPOInputError):
        logic.update_lobe_assessment(markups, "LLL", "reader-1", ild={"ggo": 7})
    assert logic.lobe_assessments(markups)["LLL"]["ild"]["ggo"] == 1


def test_empty_paths_are_not_passed_to_the_background_process(fresh, tmp_path):
    """An empty ctkPathLineEdit reads back as '' or '.': never '--weights .'; import needs a path."""
    import types
    from pathlib import Path

    from DPOScoringLib.mrml.mrml_module_logic import ModuleLogic

    scene, _, volume, _ = fresh
    logic = ModuleLogic(scene)
    for empty in (None, Path("."), Path("")):
        node = types.SimpleNamespace(inputVolume=volume, lobeMethod="lungmask", lungmaskWeights=empty,
                                     lobeImportPath=empty)
        arguments, *_ = logic.lobeArguments(node, tmp_path)
        assert "--weights" not in arguments
        node.lobeMethod = "import"
        with pytest.raises(ValueError, match="Import from"):
            logic.lobeArguments(node, tmp_path)
    node.lobeMethod, node.lungmaskWeights = "lungmask", tmp_path
    assert logic.lobeArguments(node, tmp_path)[0][-2:] == ["--weights", str(tmp_path)]


def test_worker_lines():
    from DPOScoringLib.mrml.module_panel import parse_worker_line

    assert parse_worker_line("[pid 4242]") == ("pid", 4242, "")
    assert parse_worker_line("[ 42%] fitting the right oblique fissure") == (
        "progress", 42, "fitting the right oblique fissure")
    assert parse_worker_line("dpo-score: error: x.nii.gz: truncated") == (
        "message", None, "dpo-score: error: x.nii.gz: truncated")
    assert parse_worker_line("[note] not progress")[0] == "message" and parse_worker_line("  ")[0] is None


def test_work_folders_left_by_a_crash_are_removed_by_the_next_run(tmp_path):
    import time

    from DPOScoringLib.mrml.mrml_workspace import new_work_folder, remove_all_work_folders

    old, recent, other = tmp_path / "dpo-work-crashed", tmp_path / "dpo-work-running", tmp_path / "someone-else"
    for folder in (old, recent, other):
        folder.mkdir()
        (folder / "ct.nrrd").write_bytes(b"x")
    two_days_ago = time.time() - 2 * 24 * 3600
    for folder in (old, other):
        os.utime(folder, (two_days_ago, two_days_ago))
    made = new_work_folder(base=tmp_path)
    assert not old.exists() and recent.exists() and other.exists() and made.exists()
    remove_all_work_folders()  # the widget's cleanup (Slicer closing)
    assert not made.exists() and recent.exists()
