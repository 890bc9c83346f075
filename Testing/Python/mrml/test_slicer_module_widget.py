"""The module's widget (DPOScoring.py) driven headless through ``slicer_gui_double`` (a TEST DOUBLE of
Qt and of Slicer's application layer; the MRML scene and DPOScoringLib are real): the .ui widgets it
names exist with signals of their class, clicks reach the logic in the right order, the parameter
change refreshes with the new value, the background process is owned, reported, cancelled and
cleaned up, and Close Scene leaves nothing stale."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import types
from pathlib import Path

import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core is installed by the test setup (make test)")

import slicer_gui_double as double  # noqa: E402

from DPOScoringLib.detection.candidates_file import candidates_document  # noqa: E402
from DPOScoringLib.mrml.mrml_logic import create_headless_scene  # noqa: E402

MODULE = Path(__file__).resolve().parents[3] / "DPOScoring"


class Spy:
    """Wraps chosen methods of an object and records their calls, in order."""

    def __init__(self, target, names, calls):
        for name in names:
            original = getattr(target, name)

            def wrapper(*args, _name=name, _original=original, **kwargs):
                calls.append((_name, args, kwargs))
                return _original(*args, **kwargs)

            setattr(target, name, wrapper)


@pytest.fixture()
def gui(tmp_path, monkeypatch):
    scene = create_headless_scene()
    (tmp_path / "work").mkdir()  # Slicer's temporary folder (slicer.app.temporaryPath)
    undo, markups_calls = double.install(scene, MODULE, main_window=None, temporary_path=str(tmp_path / "work"))
    try:
        import DPOScoring as module

        panel = double.Widget("qSlicerScriptedLoadableModuleWidget", "panel")
        panel.isEntered = True
        module.DPOScoring(types.SimpleNamespace())
        widget = module.DPOScoringWidget(panel)
        widget.setup()
        widget.enter()
        yield types.SimpleNamespace(module=module, widget=widget, ui=widget.ui, scene=scene, panel=panel,
                                    markups_calls=markups_calls, work=tmp_path / "work")
        widget.cleanup()
    finally:
        undo()
        sys.modules.pop("DPOScoring", None)


def candidates_file(phantom, folder) -> Path:
    run = phantom.run
    document = candidates_document(run.ct, run.result, run.warnings, run.sources, run.lung_volumes_ml)
    path = Path(folder) / "candidates.json"
    path.write_text(json.dumps(document))
    return path


def detect_through_the_process_double(g, phantom):
    """Click Detect; the process double stands for PythonSlicer: the file the CLI would write is
    written from the real detection of the phantom, then the process reports and finishes."""
    g.ui.detectButton.emit("clicked(bool)", False)
    process = double.Process.created[-1]
    out = Path(process.arguments[process.arguments.index("--out") + 1])
    out.write_text(candidates_file(phantom, out.parent).read_text(encoding="utf-8"))
    process.write_stderr("[pid 999999]\n[ 50%] detecting\n")
    process.emit("finished(int,QProcess::ExitStatus)", 0, 0)
    double.run_timers()
    return process, out


def test_every_widget_the_module_connects_exists_in_the_ui_with_that_signal(gui):
    connected = {name for name, widget in vars(gui.ui).items() if widget._slots}
    assert {"computeLobesButton", "detectButton", "confirmButton", "rejectButton", "undoButton",
            "lobeAssessmentTable", "candidatesTableView", "showRejectedCheckBox", "lobeImportFolderButton",
            "def1ComboBox"} <= connected  # (def1: by the parameter-node connector only)
    # the module connects nothing itself to the policy combos: they refresh through the parameter node
    for name in ("def1ComboBox", "def2ComboBox", "dendriformNodulesComboBox"):
        assert len(gui.ui.__dict__[name]._slots["currentIndexChanged(int)"]) == 1


def test_shortcuts_without_a_main_window_belong_to_the_panel_and_avoid_slice_view_keys(gui):
    keys = {shortcut.name for shortcut in gui.widget._shortcuts}
    assert len(keys) == 8 and all(shortcut.parent() is gui.panel for shortcut in gui.widget._shortcuts)
    slice_view_keys = set("bfgrstv") | {"V"}  # vtkMRMLSliceIntersectionWidget & co., Slicer 5.8-5.12
    assert not {k.lower() for k in keys} & slice_view_keys and not keys & slice_view_keys
    assert all(shortcut.enabled for shortcut in gui.widget._shortcuts)  # entered


def test_detect_runs_the_cli_in_an_owned_process_and_removes_its_work_folder(gui, phantom_1mm):
    node = gui.widget._parameterNode
    node.inputVolume = gui.widget.logic.mrml.load_volume(phantom_1mm.paths["ct"])
    calls = []
    Spy(gui.widget.logic, ["ensureDependencies", "detectArguments", "loadCandidates", "suggestExtents"], calls)
    gui.ui.detectButton.emit("clicked(bool)", False)
    process = double.Process.created[-1]
    assert process.parent() is gui.panel and process.started
    assert process.arguments[:2] == ["-c", gui.module.WORKER_BOOT] and process.arguments[2] == "detect"
    folder = Path(process.arguments[process.arguments.index("--out") + 1]).parent
    assert folder.is_dir() and oct(folder.stat().st_mode & 0o777) == "0o700"
    assert not gui.ui.detectButton.enabled and gui.ui.cancelButton.enabled
    out = folder / "candidates.json"
    out.write_text(candidates_file(phantom_1mm, folder).read_text(encoding="utf-8"))
    process.write_stderr("[pid 4242]\n[ 40%] measuring candidates\n")
    assert gui.widget._worker["pid"] == 4242 and gui.ui.progressBar.value == 40
    process.emit("finished(int,QProcess::ExitStatus)", 0, 0)
    assert [c[0] for c in calls] == ["ensureDependencies", "detectArguments", "loadCandidates", "suggestExtents"]
    assert process.deleted and gui.widget._worker is None and not folder.exists()
    assert gui.ui.detectButton.enabled and not gui.ui.cancelButton.enabled
    assert node.candidates.GetNumberOfControlPoints() == len(phantom_1mm.candidates)
    assert node.inputVolume.GetStorageNode().GetFileName() == str(phantom_1mm.paths["ct"])


def test_cancel_ends_python_real_then_the_launcher_and_cleans_up(gui, phantom_1mm, monkeypatch):
    killed = []
    monkeypatch.setattr(gui.module.os, "kill", lambda pid, sig: killed.append((pid, sig)))
    gui.widget._parameterNode.inputVolume = gui.widget.logic.mrml.load_volume(phantom_1mm.paths["ct"])
    gui.ui.detectButton.emit("clicked(bool)", False)
    process = double.Process.created[-1]
    folder = Path(process.arguments[process.arguments.index("--out") + 1]).parent
    process.write_stderr("[pid 4343]\n")
    gui.ui.cancelButton.emit("clicked(bool)", False)
    assert killed == [(4343, signal.SIGTERM)] and process.killed  # mrml/module_panel.terminate
    process.emit("finished(int,QProcess::ExitStatus)", 9, 1)
    assert not double.ERRORS and not folder.exists() and gui.ui.detectButton.enabled


def test_a_process_that_cannot_start_frees_the_buttons(gui, phantom_1mm):
    gui.widget._parameterNode.inputVolume = gui.widget.logic.mrml.load_volume(phantom_1mm.paths["ct"])
    gui.ui.computeLobesButton.emit("clicked(bool)", False)
    process = double.Process.created[-1]
    folder = Path(process.arguments[process.arguments.index("--out") + 1]).parent
    process.emit("errorOccurred(QProcess::ProcessError)", double.Process.FailedToStart)
    assert gui.ui.computeLobesButton.enabled and not gui.ui.cancelButton.enabled
    assert double.ERRORS and "PythonSlicer" in double.ERRORS[-1] and not folder.exists()


def test_decisions_reach_the_logic_in_order_and_policy_changes_refresh_with_the_new_value(gui, phantom_1mm):
    gui.widget._parameterNode.inputVolume = gui.widget.logic.mrml.load_volume(phantom_1mm.paths["ct"])
    detect_through_the_process_double(gui, phantom_1mm)
    logic, calls = gui.widget.logic, []
    Spy(logic, ["decide", "refreshResults"], calls)
    Spy(logic.mrml, ["autosave"], calls)
    gui.ui.confirmButton.emit("clicked(bool)", False)
    double.run_timers()
    assert [c[0] for c in calls] == ["decide", "refreshResults", "autosave"]
    assert calls[0][1][1:3] == (0, "") and calls[0][2]["status"] == "confirmed"
    assert gui.widget._current == 1  # on to the next candidate
    calls.clear()
    policies = []
    original = logic.mrml.update_results
    logic.mrml.update_results = lambda m, t=None, p=None, r=None: policies.append(p) or original(m, t, p, r)
    other = next(text for text, _ in gui.ui.def1ComboBox._items if text != gui.ui.def1ComboBox.currentText)
    gui.ui.def1ComboBox.choose(other)
    assert policies and policies[-1].def1 == other  # the refresh saw the value just chosen
    assert gui.widget._parameterNode.def1 == other


def test_undo_after_placing_a_point_and_the_per_lobe_table(gui, phantom_1mm):
    gui.widget._parameterNode.inputVolume = gui.widget.logic.mrml.load_volume(phantom_1mm.paths["ct"])
    detect_through_the_process_double(gui, phantom_1mm)
    node = gui.widget._parameterNode
    count = node.candidates.GetNumberOfControlPoints()
    gui.ui.addPointButton.emit("clicked(bool)", False)
    assert [c[0] for c in gui.markups_calls[-2:]] == ["SetActiveList", "StartPlaceMode"]
    found = next(c for c in phantom_1mm.candidates if c.kind == "nodular")
    points = gui.widget._readerPoints
    # no lobes yet: refused with a dialog, nothing added (VTK prints the re-raised error)
    points.AddControlPoint(-found.lps[0], -found.lps[1], found.lps[2])  # the reader clicks in a view
    assert node.candidates.GetNumberOfControlPoints() == count and "in no lobe" in double.ERRORS[-1]
    mrml = gui.widget.logic.mrml
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_1mm.paths["lobes"])))
    node.lobeSegmentation = mrml.lobes_to_segmentation(truth, mrml.volume_to_image(node.inputVolume),
                                                       node.inputVolume)
    points.AddControlPoint(-found.lps[0], -found.lps[1], found.lps[2])
    assert node.candidates.GetNumberOfControlPoints() == count + 1
    assert mrml.record(node.candidates, count)["lobe"] == found.lobe
    gui.ui.undoButton.emit("clicked(bool)", False)
    assert node.candidates.GetNumberOfControlPoints() == count
    # the per-lobe table: one cell edits one answer; a bad cell is refused with a dialog, nothing saved
    table = gui.ui.lobeAssessmentTable
    table.item(5, 4).setText("2")  # LLL honeycombing
    table.item(5, 0).setCheckState(2)  # LLL dendriform
    assert gui.widget.logic.mrml.lobe_assessments(node.candidates)["LLL"] == {
        "ild": {"honeycombing": 2}, "dendriform": True}
    with pytest.raises(Exception, match="whole number"):
        table.item(5, 1).setText("two")
    assert "whole number" in double.ERRORS[-1] and table.item(5, 1).text() == ""
    assert gui.widget.logic.mrml.lobe_assessments(node.candidates)["LLL"]["ild"] == {"honeycombing": 2}


def test_open_review_fills_the_table_and_close_scene_leaves_nothing_stale(gui, phantom_1mm, tmp_path):
    gui.widget._parameterNode.inputVolume = gui.widget.logic.mrml.load_volume(phantom_1mm.paths["ct"])
    detect_through_the_process_double(gui, phantom_1mm)
    node, logic = gui.widget._parameterNode, gui.widget.logic
    logic.mrml.set_lobe_assessment(node.candidates, "RUL", {"extent_over_half": True, "ild": {"ggo": 1}}, "r")
    for index in range(node.candidates.GetNumberOfControlPoints()):
        logic.decide(node, index, "r", status="rejected")
    logic.mrml.save_review(node.candidates, tmp_path / "review")
    gui.ui.addPointButton.emit("clicked(bool)", False)
    assert gui.widget._readerPoints is not None
    gui.scene.Clear(0)  # Close Scene: StartCloseEvent, EndCloseEvent
    assert gui.widget._readerPoints is None and gui.widget._current == 0
    node = gui.widget._parameterNode
    assert node is not None and node.candidates is None  # a new parameter node after the close
    node.inputVolume = logic.mrml.load_volume(phantom_1mm.paths["ct"])
    detect_through_the_process_double(gui, phantom_1mm)  # a second review of the same CT
    records = logic.mrml.records(node.candidates)
    assert all(r["status"] == "pending" for r in records)
    assert all(f.status == "pending" for f in logic.mrml._finding_cache(node.candidates))
    assert gui.ui.lobeAssessmentTable.item(0, 7).checkState() == 0
    double.DIALOG_ANSWERS["directory"] = str(tmp_path / "review")
    gui.ui.openReviewButton.emit("clicked(bool)", False)
    assert gui.ui.lobeAssessmentTable.item(0, 7).checkState() == 2  # RUL > 50 %
    assert gui.ui.lobeAssessmentTable.item(0, 1).text() == "1"  # RUL GGO
    layers = [gui.scene.GetNthNodeByClass(i, "vtkMRMLMarkupsFiducialNode")
              for i in range(gui.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode"))]
    assert sum(1 for n in layers if n.GetAttribute("DPOScoring.StatusLayer")) == 4
    rejected = logic.mrml.layer(node.candidates, "rejected")
    gui.ui.showRejectedCheckBox.checked = True
    gui.ui.showRejectedCheckBox.emit("toggled(bool)", True)
    assert rejected.GetDisplayNode().GetVisibility()
    assert os.listdir(gui.work) == []  # no work folder left behind


def test_a_fissure_drag_updates_the_lobes_from_a_timer_and_the_panel_names_the_fissures(gui, phantom_1mm):
    """Compute lobes (the process double writes what ``dpo-score lobes`` writes, from the real
    fissure method on the phantom), then a released fissure point: the widget starts the update and
    returns, a QTimer poll writes the lobes into the same node, the panel's text follows."""
    from DPOScoringLib.common.safe_files import atomic_write_json
    from DPOScoringLib.lobes.fissures import FISSURE_NAMES, save_points, update_lobes
    from DPOScoringLib.lobes.lobe_pipeline import write_lobes

    node, logic, result = gui.widget._parameterNode, gui.widget.logic, phantom_1mm.lobe_result
    node.inputVolume = logic.mrml.load_volume(phantom_1mm.paths["ct"])
    gui.ui.computeLobesButton.emit("clicked(bool)", False)
    process = double.Process.created[-1]
    out = lambda option: process.arguments[process.arguments.index(option) + 1]  # noqa: E731
    ct = phantom_1mm.run.ct
    write_lobes(out("--out"), result.lobes, ct)
    save_points(out("--points-out"), result.points)
    atomic_write_json(out("--provenance-out"), result.provenance_document())
    process.emit("finished(int,QProcess::ExitStatus)", 0, 0)
    segmentation = node.lobeSegmentation
    text = gui.ui.fissureConfidenceLabel.text
    assert segmentation is not None and text.startswith("Fissures supported by the image")
    for code, share in result.fissure_confidence().items():
        assert f"{FISSURE_NAMES[code]}: {round(100 * share)}%" in text
    before, _ = logic.lobeArray(node)
    shown = logic.mrml.fissure_points()
    horizontal = gui.scene.GetFirstNodeByName("DPO fissure RH")
    position = [0.0, 0.0, 0.0]
    horizontal.GetNthControlPointPosition(14, position)
    horizontal.SetNthControlPointPosition(14, position[0], position[1], position[2] + 12.0)
    horizontal.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)  # the reader releases it
    assert logic.mrml.lobe_updates.running and [msec for msec, _ in double.TIMERS] == [gui.module.LOBE_POLL_MS]
    assert "moved by the reader" not in gui.ui.fissureConfidenceLabel.text  # not applied yet
    double.run_timers()
    assert not logic.mrml.lobe_updates.running and node.lobeSegmentation is segmentation and not double.ERRORS
    lungs = (before > 0).astype("uint8") + (before > 3)
    expected, _ = update_lobes(before.copy(), lungs, ct.geometry, shown, logic.mrml.fissure_points())
    assert (logic.lobeArray(node)[0] == expected).all() and (expected != before).any()
    assert "right horizontal fissure" in gui.ui.fissureConfidenceLabel.text
    assert "moved by the reader" in next(line for line in gui.ui.fissureConfidenceLabel.text.splitlines()
                                         if line.startswith("right horizontal fissure"))


def test_the_in_slicer_self_test_runs_its_flow_headless(gui):
    """DPOScoringTest.test_WholeFlowOnPhantom, as Slicer runs it, minus the application: it must
    pass here (the sample-CT test needs Slicer's SampleData and the network)."""
    case = gui.module.DPOScoringTest("test_WholeFlowOnPhantom")
    case.setUp = lambda: gui.scene.Clear(0)
    result = case.run()
    assert result.wasSuccessful() and not result.skipped, result.errors + result.failures
    candidates = gui.scene.GetFirstNodeByName("DPO candidates")  # the flow ran
    assert candidates is not None and candidates.GetNumberOfControlPoints() > 5
    assert gui.scene.GetFirstNodeByName("DPO lobes").GetSegmentation().GetNumberOfSegments() == 6
    assert os.listdir(gui.work) == []  # its work folder removed


class FakeDICOMDatabase:
    """FAKE of ``slicer.dicomDatabase`` (ctkDICOMDatabase, made by Slicer's DICOM module; not in
    slicer-core): ``fileForInstance`` from the UIDs this test wrote to their files."""

    def __init__(self, files_by_uid):
        self.files_by_uid = dict(files_by_uid)

    def fileForInstance(self, uid):
        return str(self.files_by_uid.get(uid, ""))


def fake_dicomlib(imported, result=True):
    """FAKE of Slicer's ``DICOMLib`` package (Qt/CTK, not in slicer-core): ``DICOMUtils.importDicom``
    records the folder it was given and answers as Slicer's does (True, or False when indexing failed)."""
    utils = types.SimpleNamespace(importDicom=lambda folder, dicomDatabase=None, copyFiles=False:
                                  imported.append(folder) or result)
    return types.SimpleNamespace(DICOMUtils=utils)


def test_export_to_dicom_is_offered_for_a_dicom_ct_and_calls_the_logic(gui, phantom_1mm, tmp_path, monkeypatch):
    from test_dicom_export import write_ct_series

    from DPOScoringLib.mrml.mrml_dicom import INSTANCE_UIDS

    button, node, mrml = gui.ui.exportDicomButton, gui.widget._parameterNode, gui.widget.logic.mrml
    assert button._slots.get("clicked(bool)") and not button.enabled  # in the .ui, connected; no CT yet
    run = phantom_1mm.run
    document = json.loads(json.dumps(candidates_document(run.ct, run.result, run.warnings, run.sources,
                                                         run.lung_volumes_ml)))
    nrrd = mrml.load_volume(phantom_1mm.paths["ct"])
    node.inputVolume = nrrd
    node.lobeSegmentation = mrml.lobes_to_segmentation(phantom_1mm.lobe_result.lobes, mrml.volume_to_image(nrrd), nrrd)
    node.candidates = mrml.candidates_to_markups(document)
    assert not button.enabled  # lobes and a review, but the CT is not from DICOM
    imported = []
    monkeypatch.setitem(sys.modules, "DICOMLib", fake_dicomlib(imported))
    series = write_ct_series(sitk.ReadImage(str(phantom_1mm.paths["ct"])), tmp_path / "series")
    database = FakeDICOMDatabase(zip(series["sop"], series["files"]))
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    node.reviewFolder = tmp_path / "review"
    with pytest.raises(Exception, match="not loaded from Slicer's DICOM database"):  # clicked anyway: refused
        button.emit("clicked(bool)", False)
    assert "not loaded from Slicer's DICOM database" in double.ERRORS[-1]
    assert len(double.ERRORS[-1].split("\n\n")[-1].splitlines()) == 1 and not imported  # one line, nothing else
    assert not (tmp_path / "review" / "dicom").exists()

    volume = mrml.load_volume(series["files"][0], "CT from DICOM")
    volume.SetAttribute(INSTANCE_UIDS, " ".join(series["sop"]))  # as Slicer's DICOMScalarVolumePlugin does
    node.inputVolume = volume
    assert button.enabled
    calls = []
    Spy(gui.widget.logic, ["exportDicom"], calls)
    errors = len(double.ERRORS)
    button.emit("clicked(bool)", False)
    assert [c[0] for c in calls] == ["exportDicom"]
    given_node, review, lookup = calls[0][1]
    assert given_node.inputVolume is volume and review == str(tmp_path / "review")
    assert lookup == database.fileForInstance  # the DICOM database's lookup, not a copy of the files
    assert imported == [str(tmp_path / "review" / "dicom")] and len(double.ERRORS) == errors
    assert sorted(p.name for p in (tmp_path / "review" / "dicom").iterdir()) == ["findings.dcm", "lobes.dcm"]
    # a failed import into the database is said, not hidden; the files already written stay
    monkeypatch.setitem(sys.modules, "DICOMLib", fake_dicomlib(imported, result=False))
    node.reviewFolder = tmp_path / "second"
    with pytest.raises(RuntimeError):
        button.emit("clicked(bool)", False)
    assert "not added to the DICOM database" in double.ERRORS[-1]


def test_after_the_scene_is_saved_and_opened_again_a_drag_is_observed_and_stays_local(gui, phantom_1mm, tmp_path,
                                                                                     monkeypatch):
    """Lobes computed and a point dragged, the scene saved (storage nodes, then the .mrml), closed and
    opened again: the widget observes the reopened fissure nodes, and a drag is computed in the
    worker from the points stored on the segmentation node (the local path, not every voxel)."""
    from DPOScoringLib.lobes.fissures import save_points
    from DPOScoringLib.lobes.lobe_pipeline import write_lobes

    node, logic, result = gui.widget._parameterNode, gui.widget.logic, phantom_1mm.lobe_result
    node.inputVolume = logic.mrml.load_volume(phantom_1mm.paths["ct"])
    gui.ui.computeLobesButton.emit("clicked(bool)", False)
    process = double.Process.created[-1]
    out = lambda option: process.arguments[process.arguments.index(option) + 1]  # noqa: E731
    write_lobes(out("--out"), result.lobes, phantom_1mm.run.ct)
    save_points(out("--points-out"), result.points)
    process.emit("finished(int,QProcess::ExitStatus)", 0, 0)
    folder = tmp_path / "scene"
    folder.mkdir()
    saved = [node.inputVolume, node.lobeSegmentation]
    saved += [gui.scene.GetFirstNodeByName(f"DPO fissure {name}") for name in result.points]
    for index, saving in enumerate(saved):
        if saving.GetStorageNode() is None:
            saving.AddDefaultStorageNode()
        suffix = ".nrrd" if index == 0 else ".seg.nrrd" if index == 1 else ".mrk.json"
        saving.GetStorageNode().SetFileName(str(folder / f"{index}{suffix}"))
        assert saving.GetStorageNode().WriteData(saving)
    gui.scene.SetURL(str(folder / "scene.mrml"))
    assert gui.scene.Commit()
    gui.scene.Clear(0)  # Close Scene
    assert logic.mrml._shown_points is None
    gui.scene.SetURL(str(folder / "scene.mrml"))
    assert gui.scene.Import()  # open it again: EndImportEvent
    node = gui.widget._parameterNode
    assert node.lobeSegmentation and node.inputVolume  # the parameter node came back with the scene
    before, _ = logic.lobeArray(node)
    horizontal = gui.scene.GetFirstNodeByName("DPO fissure RH")
    position = [0.0, 0.0, 0.0]
    horizontal.GetNthControlPointPosition(14, position)
    horizontal.SetNthControlPointPosition(14, position[0], position[1], position[2] + 12.0)
    horizontal.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)  # observed again
    assert logic.mrml.lobe_updates.running and gui.ui.cancelButton.enabled  # the update can be cancelled
    double.run_timers()
    assert not double.ERRORS and logic.mrml.lobe_updates.last_path == "local"
    assert gui.ui.progressBar.format.startswith("lobes updated") and not gui.ui.cancelButton.enabled
    after, _ = logic.lobeArray(node)
    changed = after != before
    assert changed.any() and set(after[changed].tolist()) <= {1, 2, 3}  # only right lobes, near the move
    # another drag, cancelled before its result is written: the lobes stay as they are, and the
    # panel says "cancelled" however many polls come before the worker winds down (a timing
    # double: the worker takes 0.3 s, as it does on a loaded machine)
    from DPOScoringLib.mrml import mrml_lobe_drag

    original = mrml_lobe_drag._compute
    monkeypatch.setattr(mrml_lobe_drag, "_compute", lambda *args: (time.sleep(0.3), original(*args))[1])
    horizontal.SetNthControlPointPosition(14, position[0], position[1], position[2] - 12.0)
    horizontal.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)
    gui.ui.cancelButton.emit("clicked(bool)", False)
    double.run_timers()
    assert not logic.mrml.lobe_updates.running and gui.ui.progressBar.format == "cancelled"
    assert (logic.mrml.lobe_array(node.lobeSegmentation, node.inputVolume) == after).all()  # read afresh
    gui.widget.cleanup()  # the module reloaded: its logic no longer follows the scene's fissure nodes
    horizontal.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)
    assert not logic.mrml.lobe_updates.running
