"""The MRML logic against Slicer's real MRML library (the slicer-core wheel), headless: load a CT
from file, lobes by the fissure method into a segmentation, detect into markups, decide, compare
the tallies with the core engine, save the scene and the review folder, reload, find it identical."""

from __future__ import annotations

import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is installed by the test setup (make test)")

from scene_files import open_scene, save_scene  # noqa: E402

from DPOScoringLib.detection.candidates_file import candidates_document  # noqa: E402
from DPOScoringLib.detection.pipeline import run_detection  # noqa: E402
from DPOScoringLib.lobes.lobe_pipeline import compute_lobes  # noqa: E402
from DPOScoringLib.mrml.mrml_logic import BANNER, DPOScoringMRMLLogic, create_headless_scene  # noqa: E402
from DPOScoringLib.rules.reading import parse_reading  # noqa: E402
from DPOScoringLib.rules.score_summary import banner_text  # noqa: E402
from DPOScoringLib.rules.scoring import score_reading  # noqa: E402


@pytest.fixture(scope="module")
def review(phantom_1mm, tmp_path_factory):
    scene = create_headless_scene()
    logic = DPOScoringMRMLLogic(scene)
    volume = logic.load_volume(phantom_1mm.paths["ct"])
    ct = logic.checked_ct(volume)
    lobes = compute_lobes(ct, "fissures").lobes
    segmentation = logic.lobes_to_segmentation(lobes, ct.image, volume)
    run = run_detection(phantom_1mm.paths["ct"], phantom_1mm.paths["lobes"])
    document = candidates_document(run.ct, run.result, run.warnings, run.sources, run.lung_volumes_ml)
    markups = logic.candidates_to_markups(document)
    folder = tmp_path_factory.mktemp("review")
    logic.review_folder = folder
    return scene, logic, volume, ct, lobes, segmentation, document, markups, folder


def test_volume_loaded_through_storage_node_matches_the_file(review, phantom_1mm):
    _, logic, volume, ct, *_ = review
    import SimpleITK as sitk

    original = sitk.ReadImage(str(phantom_1mm.paths["ct"]))
    assert np.array_equal(sitk.GetArrayViewFromImage(ct.image), sitk.GetArrayViewFromImage(original))
    assert np.allclose(ct.image.GetOrigin(), original.GetOrigin()) and ct.spacing == pytest.approx(
        original.GetSpacing())


def test_lobe_segmentation_has_six_named_segments_with_terminology(review):
    _, logic, volume, _, lobes, segmentation, *_ = review
    segments = segmentation.GetSegmentation()
    names = [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())]
    assert names == ["right upper lobe", "right middle lobe", "right lower lobe",
                     "left upper lobe, upper division", "lingula", "left lower lobe"]
    tag = __import__("vtk").mutable("")
    segments.GetNthSegment(0).GetTag(segments.GetNthSegment(0).GetTerminologyEntryTagName(), tag)
    assert "SCT^45653009^Upper lobe of lung" in str(tag)
    assert np.array_equal(logic.lobe_array(segmentation, volume), lobes)


def test_candidates_become_locked_markups_with_their_record(review):
    _, logic, _, _, _, _, document, markups, _ = review
    assert markups.GetNumberOfControlPoints() == len(document["candidates"])
    first = document["candidates"][0]
    position = [0.0, 0.0, 0.0]
    markups.GetNthControlPointPosition(0, position)
    assert np.allclose(position, [-first["lps"][0], -first["lps"][1], first["lps"][2]])
    assert markups.GetNthControlPointLocked(0) and markups.GetNthControlPointLabel(0) == first["id"]
    assert logic.record(markups, 0)["status"] == "pending"


def test_decisions_update_tallies_like_the_core_engine_and_are_autosaved(review):
    _, logic, _, _, _, _, _, markups, folder = review
    records = logic.records(markups)
    nodular = [i for i, r in enumerate(records) if r["kind"] == "nodular"]
    for index in nodular[:-2]:
        logic.decide(markups, index, "reader-1", status="confirmed")
    logic.decide(markups, nodular[-2], "reader-1", status="rejected")
    logic.decide(markups, nodular[-1], "reader-1", kind="granuloma", status="confirmed")
    logic.decide(markups, nodular[0], "reader-1", status="rejected")
    assert logic.undo(markups, "reader-1")["status"] == "confirmed"
    logic.add_reader_finding(markups, [-30.0, 10.0, 60.0], "RLL", "reader-1")
    logic.set_lobe_assessment(markups, "LLL", {"dendriform": True,
                                               "ild": {"fine_reticulation": 2, "honeycombing": 1}}, "reader-1")
    scores, table = logic.update_results(markups)
    expected = score_reading(parse_reading(logic.reading(markups)))
    assert scores == expected
    assert table.GetAttribute(BANNER) == banner_text(expected)
    assert table.GetNumberOfRows() == 6 and table.GetCellText(5, 3) == "yes"  # LLL dendriform
    assert int(table.GetCellText(2, 1)) == expected["nnpol"]["RLL"]
    assert expected["separately_recorded"]["granuloma"]["total"] == 1
    saved = json.loads((folder / "reading.json").read_text(encoding="utf-8"))
    assert len(saved["decisions"]) == len(nodular) + 4 and saved["lobes"]["LLL"]["dendriform"] is True
    with pytest.raises(Exception, match="status"):
        logic.decide(markups, 0, "reader-1", status="maybe")


def test_scene_and_review_folder_reload_identically(review, tmp_path):
    scene, logic, volume, _, _, segmentation, _, markups, _ = review
    logic.decide(markups, 0, "reader-2", status="rejected")  # at least one decision to restore
    before = logic.reading(markups)
    # save the scene's files through their storage nodes, then the scene file itself
    saved = save_scene(scene, ((volume, "ct.nrrd"), (segmentation, "lobes.seg.nrrd"),
                               (markups, "candidates.mrk.json")), tmp_path, "review.mrml")
    fresh = open_scene(saved)
    reloaded = fresh.GetFirstNodeByName("DPO candidates")
    again = DPOScoringMRMLLogic(fresh)
    assert again.reading(reloaded)["findings"] == before["findings"]
    assert again.reading(reloaded)["lobes"] == before["lobes"]
    assert again.reading(reloaded)["decisions"] == before["decisions"]
    lobes = fresh.GetFirstNodeByName("DPO lobes")
    assert lobes.GetSegmentation().GetNumberOfSegments() == 6

    # its own review folder: the test must not depend on another test's autosave
    logic.save_review(markups, tmp_path / "review")
    from_folder = DPOScoringMRMLLogic(create_headless_scene()).load_review(tmp_path / "review")
    restored = DPOScoringMRMLLogic(from_folder.GetScene()).reading(from_folder)
    assert restored["findings"] == before["findings"] and restored["decisions"] == before["decisions"]


def test_bone_and_lung_window_presets_on_the_volume(review):
    from DPOScoringLib.mrml.mrml_logic import BONE_WINDOW, LUNG_WINDOW

    _, logic, volume, *_ = review
    logic.set_window(volume, BONE_WINDOW)
    display = volume.GetDisplayNode()
    assert (display.GetWindow(), display.GetLevel()) == (2500.0, 500.0) and not display.GetAutoWindowLevel()
    logic.set_window(volume, LUNG_WINDOW)
    assert (display.GetWindow(), display.GetLevel()) == (1500.0, -600.0)


def test_lobe_of_a_reader_placed_point(review):
    _, logic, _, ct, lobes, *_ = review
    k, j, i = np.argwhere(lobes == 5)[len(np.argwhere(lobes == 5)) // 2]
    assert logic.lobe_at(lobes, ct.image, ct.ijk_to_lps([i, j, k])) == "LING"


def test_dragging_fissure_points_and_recomputing_moves_the_lobes(review):
    from DPOScoringLib.lobes.fissures import assign_lobes, default_points

    scene, logic, volume, ct, computed, segmentation, *_ = review
    lungs = np.where(computed > 3, 2, np.where(computed > 0, 1, 0)).astype(np.uint8)
    points = default_points(lungs, ct.geometry)
    lobes = assign_lobes(lungs, ct.geometry, points)  # the lobes of the points shown
    segmentation = logic.lobes_to_segmentation(lobes, ct.image, volume)
    nodes = logic.show_fissure_points(points)
    assert {node.GetName() for node in nodes} == {f"DPO fissure {n}" for n in ("RO", "RH", "LO", "LG")}
    unchanged = logic.lobe_array(logic.recompute_lobes(volume, segmentation), volume)
    assert np.array_equal(unchanged, lobes)  # nothing moved, nothing changes
    horizontal = scene.GetFirstNodeByName("DPO fissure RH")
    for index in range(horizontal.GetNumberOfControlPoints()):
        position = [0.0, 0.0, 0.0]
        horizontal.GetNthControlPointPosition(index, position)
        horizontal.SetNthControlPointPosition(index, position[0], position[1], position[2] + 10.0)
    moved = logic.lobe_array(logic.recompute_lobes(volume, segmentation), volume)
    assert (moved == 2).sum() > (lobes == 2).sum() and np.array_equal(moved == 6, lobes == 6)


def test_reader_placed_point_is_measured_like_a_detected_candidate(review, phantom_1mm):
    _, logic, volume, _, lobes, _, _, markups, _ = review
    found = [c for c in phantom_1mm.candidates if c.kind == "nodular"][0]
    nudged = [found.lps[0] + 1.0, found.lps[1], found.lps[2]]  # the reader clicks 1 mm off centre
    measured = logic.measure_reader_point(volume, nudged)
    assert measured["kind"] == "nodular"
    assert measured["short_axis_mm"] == pytest.approx(found.short_axis_mm, abs=0.3)
    assert np.linalg.norm(np.array(measured["lps"]) - found.lps) < 0.8
    index = logic.add_reader_finding(markups, measured["lps"], found.lobe, "reader-1", measurements=measured)
    record = logic.record(markups, index)
    assert record["source"] == "reader" and record["status"] == "confirmed" and record["peak_hu"] > 300
    corner = logic.checked_ct(volume).ijk_to_lps([2, 2, 2])  # outside the body: nothing to measure
    assert logic.measure_reader_point(volume, corner) == {}


def test_extent_suggestion_is_stored_beside_the_reader_answer(review):
    _, logic, volume, ct, lobes, _, _, markups, _ = review
    fractions = logic.suggest_extents(markups, lobes, ct.image)
    assert fractions and all(0.0 <= f <= 1.0 for f in fractions.values())
    assessments = json.loads(markups.GetAttribute("DPOScoring.Lobes"))
    code = next(iter(fractions))
    assert assessments[code]["extent_fraction_suggested"] == fractions[code]
    logic.set_lobe_assessment(markups, code, {"extent_over_half": False}, "reader-1")
    scores, _ = logic.update_results(markups)
    if code in scores["characterisation"]:
        assert scores["characterisation"][code]["extent_source"] == "reader"


def test_extent_fraction_on_a_known_geometry():
    from DPOScoringLib.detection.extent_suggestion import suggested_extent_fractions

    lobes = np.zeros((30, 30, 90), dtype=np.uint8)
    lobes[:, :, :] = 1  # a 30 x 30 x 90 mm "RUL"
    near_one_end = {"RUL": [[15, 15, 5]]}
    fraction = suggested_extent_fractions(lobes, (1.0, 1.0, 1.0), near_one_end)["RUL"]
    assert 0.02 < fraction < 0.1  # the part of a 10 mm ball inside a 30 x 30 x 90 mm lobe: about 0.045
    spread = {"RUL": [[k, j, x] for k in (7, 22) for j in (7, 22) for x in range(5, 90, 12)]}
    assert suggested_extent_fractions(lobes, (1.0, 1.0, 1.0), spread)["RUL"] > 0.5


def test_status_layers_colour_the_views_and_follow_each_decision(phantom_1mm):
    from DPOScoringLib.mrml.mrml_logic import STATUS_LAYERS

    scene = create_headless_scene()
    logic = DPOScoringMRMLLogic(scene)
    run = phantom_1mm.run
    markups = logic.candidates_to_markups(candidates_document(run.ct, run.result, run.warnings, run.sources,
                                                              run.lung_volumes_ml))
    layers = logic.status_layers(markups)
    records = logic.records(markups)
    separate = sum(1 for r in records if r["kind"] == "large_calcified")
    assert layers["pending"].GetNumberOfControlPoints() == len(records) - separate
    assert layers["separate"].GetNumberOfControlPoints() == separate
    assert layers["confirmed"].GetDisplayNode().GetSelectedColor() == STATUS_LAYERS["confirmed"][1]
    assert not markups.GetDisplayNode().GetVisibility()
    nodular = next(i for i, r in enumerate(records) if r["kind"] == "nodular")
    logic.decide(markups, nodular, "reader-1", status="confirmed")
    assert layers["confirmed"].GetNumberOfControlPoints() == 1
    assert layers["confirmed"].GetNthControlPointLabel(0) == records[nodular]["id"]
    assert layers["pending"].GetNumberOfControlPoints() == len(records) - separate - 1
    logic.undo(markups, "reader-1")
    assert layers["confirmed"].GetNumberOfControlPoints() == 0
    logic.decide(markups, nodular, "reader-1", kind="granuloma", status="confirmed")
    assert layers["separate"].GetNumberOfControlPoints() == separate + 1
