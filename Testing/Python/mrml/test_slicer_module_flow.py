"""End to end, headless, the module's real flow through files as Slicer does it: the module logic
(``ModuleLogic``, what DPOScoringLogic runs) writes the CT for the background process, the real
``dpo-score`` command runs in a separate process started the way the widget starts PythonSlicer,
its outputs are read back by Slicer's storage nodes (slicer-core), then lobe_array, detect on that
lobe file, decide, place, drag (the lobes follow off the GUI thread, drags coalesce), edit a
segment, close the scene, reopen the review, checking the lobes, counts, statuses and the panel's
fissure confidence at each step.

The truths come from outside the code under test: the lobes from the CLI's .seg.nrrd read by
SimpleITK (its voxels are the label values), lobe membership from that array, counts from the
decisions made here, the lobes after a drag from the core's ``update_lobes`` on that array, the
fissure confidence from the line the CLI printed."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
import types

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is installed by the test setup (make test)")

import SimpleITK as sitk  # noqa: E402

from DPOScoringLib.common.anatomy import BY_LABEL, LOBE_CODES  # noqa: E402
from DPOScoringLib.lobes.fissures import FISSURE_NAMES, load_points, update_lobes  # noqa: E402
from DPOScoringLib.mrml.module_panel import WORKER_BOOT  # noqa: E402
from DPOScoringLib.mrml.mrml_logic import create_headless_scene  # noqa: E402
from DPOScoringLib.mrml.mrml_module_logic import ModuleLogic  # noqa: E402


def run_worker(arguments):
    """As the widget's QProcess: ``PythonSlicer -c WORKER_BOOT ARGUMENTS`` (here this Python)."""
    process = subprocess.Popen([sys.executable, "-c", WORKER_BOOT, *arguments], stderr=subprocess.PIPE, text=True,
                               encoding="utf-8")
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-2000:]
    assert stderr.splitlines()[0] == f"[pid {process.pid}]"  # what Cancel kills is the computing process
    return stderr


def drag_and_wait(logic, node, calls):
    """What the widget does after a released point: start, then poll from a timer until done."""
    states = [logic.startLobeUpdate(node)]
    calls.append(states[0])
    while states[-1] == "running":
        time.sleep(0.05)  # LOBE_POLL_MS
        states.append(logic.pollLobeUpdate(node))
    return states


def move_fissure(scene, name, dz, index=None):
    node = scene.GetFirstNodeByName(f"DPO fissure {name}")
    for i in range(node.GetNumberOfControlPoints()) if index is None else [index]:
        position = [0.0, 0.0, 0.0]
        node.GetNthControlPointPosition(i, position)
        node.SetNthControlPointPosition(i, position[0], position[1], position[2] + dz)
    return node


def parameter_node(volume):
    """The parameter node's fields (DPOScoringParameterNode) with their defaults."""
    return types.SimpleNamespace(inputVolume=volume, readerId="reader-1", reviewFolder=None, lobeMethod="fissures",
                                 lobeImportPath=None, lungmaskWeights=None, lobeSegmentation=None, candidates=None,
                                 candidatesTable=None, resultsTable=None, def1="default", def2="default",
                                 dendriformNodules="exclude")


def test_the_modules_flow_through_files(phantom_1mm, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    scene = create_headless_scene()
    logic = ModuleLogic(scene)
    volume = logic.mrml.load_volume(phantom_1mm.paths["ct"])
    node = parameter_node(volume)

    # 1. Compute lobes: the CLI's .seg.nrrd (terminology tags only) through the storage node
    folder = logic.newWorkFolder()
    arguments, seg_path, points_path, provenance_path = logic.lobeArguments(node, folder)
    assert volume.GetStorageNode().GetFileName() == str(phantom_1mm.paths["ct"])  # CT not re-pointed
    stderr = run_worker(arguments)
    drags = []
    logic.loadLobes(node, seg_path, points_path, provenance_path, onDrag=lambda: drag_and_wait(logic, node, drags))
    written = sitk.GetArrayFromImage(sitk.ReadImage(seg_path)).astype(np.uint8)
    fitted = load_points(points_path)
    # the panel names each fissure with the share the CLI printed ("fissures supported by the image: RO 9%, ...")
    printed = dict(re.findall(r"(RO|RH|LO|LG) (\d+%)", next(line for line in stderr.splitlines()
                                                            if line.startswith("fissures supported by the image"))))
    text = logic.fissureConfidenceText(node)
    assert len(printed) == 4 and all(f"{FISSURE_NAMES[code]}: {share}" in text for code, share in printed.items())
    lobes, image = logic.lobeArray(node)
    assert sorted(np.unique(lobes)) == [0, 1, 2, 3, 4, 5, 6]
    assert np.array_equal(lobes, written)
    segmentation_id = node.lobeSegmentation.GetID()

    # 2. Detect on that lobe file
    arguments, candidates_path = logic.detectArguments(node, folder)
    lobe_file = arguments[arguments.index("--lobes") + 1]
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(lobe_file)), written)
    run_worker(arguments)
    logic.loadCandidates(node, candidates_path)
    logic.removeWorkFolder(folder)
    assert not folder.exists()
    markups = node.candidates
    records = logic.mrml.records(markups)
    assert len(records) == len(phantom_1mm.candidates)
    for record in records:  # each candidate's lobe is the lobe file's label there (or the nearest within 5 mm)
        assert record["lobe"] in LOBE_CODES
    inside = [r for r in records if written[tuple(np.round(image.TransformPhysicalPointToContinuousIndex(
        r["lps"]))[::-1].astype(int))] > 0]
    assert inside and all(BY_LABEL[int(written[tuple(np.round(image.TransformPhysicalPointToContinuousIndex(
        r["lps"]))[::-1].astype(int))])].code == r["lobe"] for r in inside)

    # 3. Decide
    nodular = [i for i, r in enumerate(records) if r["kind"] == "nodular"]
    confirmed, rejected = nodular[0], nodular[1]
    logic.decide(node, confirmed, "reader-1", status="confirmed")
    logic.decide(node, rejected, "reader-1", status="rejected")
    lobe = records[confirmed]["lobe"]
    expected = {code: 0 for code in LOBE_CODES}
    expected[lobe] = 1
    assert logic.mrml.update_results(markups)[0]["nnpol"] == expected
    assert node.candidatesTable.GetCellText(confirmed, 6) == "confirmed"

    # 4. Place a missed ossification: measured, given the lobe the file has there
    truth_po = next(f for f in phantom_1mm.truth["findings"] if f["kind"] == "nodular" and f["lobe"] != lobe)
    logic.addReaderFinding(node, [-truth_po["lps"][0], -truth_po["lps"][1], truth_po["lps"][2]])
    placed = logic.mrml.record(markups, markups.GetNumberOfControlPoints() - 1)
    ijk = np.round(image.TransformPhysicalPointToContinuousIndex(placed["lps"]))[::-1].astype(int)
    assert placed["source"] == "reader" and placed["lobe"] == BY_LABEL[int(written[tuple(ijk)])].code
    expected[placed["lobe"]] += 1
    assert logic.mrml.update_results(markups)[0]["nnpol"] == expected

    # 5. Drag the horizontal fissure 10 mm up: the drag observer starts the update (worker
    # thread), the widget's timer polls until the lobes are written into the same node
    lungs = np.where(written > 3, 2, np.where(written > 0, 1, 0)).astype(np.uint8)
    geometry = logic.mrml.checked_ct(volume).geometry
    horizontal = move_fissure(scene, "RH", 10.0)
    horizontal.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)
    assert drags == ["running"]  # one observer, and the GUI thread was not held for the computation
    assert node.lobeSegmentation.GetID() == segmentation_id  # the same node, never removed
    moved, _ = logic.lobeArray(node)
    recomputed, _ = update_lobes(written.copy(), lungs, geometry, fitted, logic.mrml.fissure_points())
    assert np.array_equal(moved, recomputed)  # voxel for voxel what the core's recompute gives
    assert (moved == 2).sum() > (written == 2).sum()  # the middle lobe grew upwards
    assert np.array_equal(moved == 6, written == 6) and np.array_equal(moved > 0, written > 0)
    assert "right horizontal fissure: " in logic.fissureConfidenceText(node)
    assert "moved by the reader" in next(line for line in logic.fissureConfidenceText(node).splitlines()
                                         if line.startswith("right horizontal fissure"))
    # two quick drags: the second supersedes the first, whose result is never applied
    before_drags = logic.mrml.fissure_points()
    stale = logic.mrml.lobe_updates.last_stale
    move_fissure(scene, "RO", 8.0, index=14)
    assert logic.startLobeUpdate(node) == "running"
    move_fissure(scene, "RO", -14.0, index=14)
    states = drag_and_wait(logic, node, drags)
    assert states[-1] == "applied" and logic.mrml.lobe_updates.last_stale == stale + 1
    latest, _ = logic.lobeArray(node)
    recomputed, _ = update_lobes(moved.copy(), lungs, geometry, before_drags, logic.mrml.fissure_points())
    assert np.array_equal(latest, recomputed)
    moved = latest

    # 6. Edit a segment as the Segment Editor does (voxels of its labelmap): the lobes follow
    segment_id = next(node.lobeSegmentation.GetSegmentation().GetNthSegmentID(i) for i in range(6)
                      if node.lobeSegmentation.GetSegmentation().GetNthSegment(i).GetName() == "lingula")
    layer = node.lobeSegmentation.GetSegmentation().GetSegment(segment_id).GetRepresentation(
        slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
    from vtk.util import numpy_support

    scalars = numpy_support.vtk_to_numpy(layer.GetPointData().GetScalars())
    value = node.lobeSegmentation.GetSegmentation().GetSegment(segment_id).GetLabelValue()
    scalars[scalars == value] = 0
    layer.Modified()
    edited, _ = logic.lobeArray(node)
    assert (edited == 5).sum() == 0 and (edited == 4).sum() == (moved == 4).sum()

    # 7. Save the review, close the scene, reopen the review on the reloaded CT
    review = tmp_path / "review"
    logic.mrml.save_review(markups, review)
    before = logic.mrml.reading(markups)
    scene.Clear(0)
    volume = logic.mrml.load_volume(phantom_1mm.paths["ct"])
    node = parameter_node(volume)
    logic.openReview(node, review)
    again = logic.mrml.records(node.candidates)
    assert [r["status"] for r in again] == [f["status"] for f in before["findings"]]
    assert again[confirmed]["status"] == "confirmed" and again[rejected]["status"] == "rejected"
    assert again[-1]["source"] == "reader"
    assert logic.mrml.update_results(node.candidates)[0]["nnpol"] == expected
    assert logic.mrml.layer(node.candidates, "confirmed").GetNumberOfControlPoints() == 2
