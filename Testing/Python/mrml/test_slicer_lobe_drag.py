"""The lobes follow a dragged fissure point (issue 10 point 4), headless over the real MRML library
(slicer-core): the swept voxels computed in a worker thread, written into the segmentation's shared
labelmap where they change, drags coalesced, and the per-fissure confidence text of the panel.

Truths from outside the code under test: the expected lobes are the core's full ``assign_lobes``
for the points in the scene; the segmentation is read back through Slicer's own
``ExportSegmentsToLabelmapNode`` (not the module's layer reader). The only double is a gate that
holds the worker thread, so that "a drag while one is computing" happens on demand."""

from __future__ import annotations

import threading
import types

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is installed by the test setup (make test)")

import SimpleITK as sitk  # noqa: E402
import vtk  # noqa: E402
from scene_files import open_scene, save_scene  # noqa: E402
from vtk.util import numpy_support  # noqa: E402

from DPOScoringLib.common.anatomy import lungs_from_lobes  # noqa: E402
from DPOScoringLib.ct.ct_image import Geometry  # noqa: E402
from DPOScoringLib.lobes.fissures import assign_lobes, default_points  # noqa: E402
from DPOScoringLib.lobes.lobe_files import to_spec_labels  # noqa: E402
from DPOScoringLib.mrml import mrml_lobe_drag  # noqa: E402
from DPOScoringLib.mrml.mrml_lobe_layer_merge import LayerMerge  # noqa: E402
from DPOScoringLib.mrml.mrml_logic import DPOScoringMRMLLogic, create_headless_scene  # noqa: E402

SPACING = (2.0, 2.0, 2.5)


def small_case():
    """Two ellipsoid lungs on a 2-2.5 mm grid (1.5 M voxels): lungs, CT image, geometry."""
    shape = (96, 112, 128)
    nk, nj, ni = shape
    origin = (-ni * SPACING[0] / 2, -nj * SPACING[1] / 2, -nk * SPACING[2] / 2)
    z, y, x = (origin[a] + np.arange(n) * SPACING[a] for a, n in ((2, nk), (1, nj), (0, ni)))
    lungs = np.zeros(shape, dtype=np.uint8)
    for label, cx in ((1, -65.0), (2, 65.0)):
        inside = (((x[None, None, :] - cx) / 55.0) ** 2 + (y[None, :, None] / 95.0) ** 2
                  + (z[:, None, None] / 110.0) ** 2) <= 1.0
        lungs[inside] = label
    image = sitk.GetImageFromArray(np.where(lungs > 0, -850, 40).astype(np.int16))
    image.SetSpacing(SPACING)
    image.SetOrigin(origin)
    return lungs, image, Geometry(shape[::-1], SPACING, origin, (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))


@pytest.fixture()
def scene_case(tmp_path):
    lungs, image, geometry = small_case()
    scene = create_headless_scene()
    logic = DPOScoringMRMLLogic(scene)
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    volume = logic.load_volume(tmp_path / "ct.nrrd")
    points = default_points(lungs, geometry)
    segmentation = logic.lobes_to_segmentation(assign_lobes(lungs, geometry, points), image, volume)
    logic.show_fissure_points(points)
    yield scene, logic, volume, segmentation, lungs, geometry
    scene.Clear(0)


def exported(logic, segmentation, volume) -> np.ndarray:
    """The lobes as Slicer exports them (ExportSegmentsToLabelmapNode), as spec labels."""
    codes = logic.lobe_codes(segmentation)
    ids = vtk.vtkStringArray()
    for segment_id in codes:
        ids.InsertNextValue(segment_id)
    labelmap = logic.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(segmentation, ids, labelmap, volume)
    data = labelmap.GetImageData()
    array = numpy_support.vtk_to_numpy(data.GetPointData().GetScalars()).reshape(data.GetDimensions()[::-1])
    logic.scene.RemoveNode(labelmap)
    return to_spec_labels(array, dict(enumerate(codes.values(), start=1)))[0]


def move_point(scene, name, index, dz):
    node = scene.GetFirstNodeByName(f"DPO fissure {name}")
    position = [0.0, 0.0, 0.0]
    node.GetNthControlPointPosition(index, position)
    node.SetNthControlPointPosition(index, position[0], position[1], position[2] + dz)


class Gate:
    """Holds the worker thread at the start of each computation until released (a timing double)."""

    def __init__(self, monkeypatch):
        self.entered, self.release, self.calls = threading.Event(), threading.Event(), []
        original = mrml_lobe_drag._compute

        def gated(layer, geometry, old, new):
            self.calls.append({name: np.array(p) for name, p in new.items()})
            self.entered.set()
            assert self.release.wait(60), "the test never released the worker"
            return original(layer, geometry, old, new)

        monkeypatch.setattr(mrml_lobe_drag, "_compute", gated)


@pytest.mark.parametrize("name, dz", [("RO", 9.0), ("RH", -7.0), ("LO", 12.0), ("LG", 6.0)])
def test_the_partial_write_back_equals_a_full_recompute_voxel_for_voxel(scene_case, name, dz):
    scene, logic, volume, segmentation, lungs, geometry = scene_case
    before = exported(logic, segmentation, volume)
    move_point(scene, name, 4, dz)
    updates = logic.lobe_updates
    assert updates.start(volume, segmentation) == "running"
    assert updates.wait() == "applied"
    expected = assign_lobes(lungs, geometry, logic.fissure_points())
    after = exported(logic, segmentation, volume)
    assert np.array_equal(after, expected)
    assert updates.last_changed_voxels == int((after != before).sum()) > 0  # only the changed voxels written
    assert updates.last_moved == [name]
    assert segmentation.GetSegmentation().GetNumberOfLayers() == 1  # still one shared layer
    assert np.array_equal(logic.lobe_array(segmentation, volume), expected)  # the module's reader agrees


def test_only_the_changed_segments_are_modified_and_the_cache_follows(scene_case):
    scene, logic, volume, segmentation, lungs, geometry = scene_case
    cached, _ = logic.cached_lobe_array(segmentation, volume)
    segments = segmentation.GetSegmentation()
    times = {segments.GetNthSegment(i).GetName(): segments.GetNthSegment(i).GetMTime() for i in range(6)}
    events = []
    segmentation.AddObserver(slicer.vtkSegmentation.SegmentModified, lambda caller, event: events.append(event))
    move_point(scene, "RO", 4, 10.0)
    logic.lobe_updates.start(volume, segmentation)
    logic.lobe_updates.wait()
    changed = {segments.GetNthSegment(i).GetName() for i in range(6)
               if segments.GetNthSegment(i).GetMTime() != times[segments.GetNthSegment(i).GetName()]}
    assert changed and changed <= {"right upper lobe", "right middle lobe", "right lower lobe"}
    assert len(events) == len(changed)  # what makes Slicer's 2-D views redraw
    lobes, _ = logic.cached_lobe_array(segmentation, volume)
    assert lobes is not cached and np.array_equal(lobes, assign_lobes(lungs, geometry, logic.fissure_points()))
    assert not np.array_equal(cached, lobes)  # an array handed out before is not changed under its holder


def test_a_drag_while_one_is_computing_supersedes_it(scene_case, monkeypatch):
    scene, logic, volume, segmentation, lungs, geometry = scene_case
    gate = Gate(monkeypatch)
    writes = []
    layer_class = mrml_lobe_drag.LobeLayer
    original_write = layer_class.write
    monkeypatch.setattr(layer_class, "write", lambda self, *a: writes.append(1) or original_write(self, *a))
    updates = logic.lobe_updates
    move_point(scene, "RO", 4, 10.0)
    assert updates.start(volume, segmentation) == "running"  # returns at once: the GUI is not held
    assert gate.entered.wait(30)
    assert updates.poll() == "running"
    first = logic.fissure_points()
    move_point(scene, "RO", 4, -18.0)  # the reader drags again before the first result is in
    move_point(scene, "LO", 2, 8.0)
    latest = logic.fissure_points()
    assert updates.start(volume, segmentation) == "running"
    gate.release.set()
    assert updates.wait() == "applied"
    assert len(gate.calls) == 2 and np.allclose(gate.calls[0]["RO"], first["RO"])
    assert np.allclose(gate.calls[1]["RO"], latest["RO"])  # the latest points won
    assert writes == [1] and updates.last_stale == 1  # the first result was never applied
    assert np.array_equal(exported(logic, segmentation, volume), assign_lobes(lungs, geometry, latest))
    assert updates.last_moved == ["LO", "RO"]


def test_a_segment_editor_edit_during_the_computation_is_kept(scene_case, monkeypatch):
    scene, logic, volume, segmentation, lungs, geometry = scene_case
    gate = Gate(monkeypatch)
    move_point(scene, "LO", 4, 10.0)
    logic.lobe_updates.start(volume, segmentation)
    assert gate.entered.wait(30)
    # the reader erases part of the right upper lobe meanwhile (voxels of the shared layer)
    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName("right upper lobe")
    value = segmentation.GetSegmentation().GetSegment(segment_id).GetLabelValue()
    layer = segmentation.GetSegmentation().GetSegment(segment_id).GetRepresentation(
        slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
    scalars = numpy_support.vtk_to_numpy(layer.GetPointData().GetScalars())
    erased = int((scalars == value).sum())
    scalars[scalars == value] = 0
    layer.Modified()
    gate.release.set()
    assert logic.lobe_updates.wait() == "applied"
    assert len(gate.calls) == 2  # thrown away and computed again on the edited segmentation
    after = exported(logic, segmentation, volume)
    expected = assign_lobes(lungs, geometry, logic.fissure_points())
    expected[expected == 1] = 0
    assert erased > 0 and np.array_equal(after, expected)


def test_close_scene_during_the_computation_applies_nothing(scene_case, monkeypatch):
    scene, logic, volume, segmentation, *_ = scene_case
    gate = Gate(monkeypatch)
    move_point(scene, "RO", 4, 10.0)
    logic.lobe_updates.start(volume, segmentation)
    assert gate.entered.wait(30)
    scene.Clear(0)
    gate.release.set()
    assert logic.lobe_updates.wait() == "idle" and not logic.lobe_updates.running


def test_an_error_in_the_worker_reaches_the_caller(scene_case, monkeypatch):
    scene, logic, volume, segmentation, *_ = scene_case

    def failing(*args):
        raise ValueError("worker failed")

    monkeypatch.setattr(mrml_lobe_drag, "_compute", failing)
    move_point(scene, "RO", 4, 10.0)
    logic.lobe_updates.start(volume, segmentation)
    with pytest.raises(ValueError, match="worker failed"):
        logic.lobe_updates.wait()
    assert not logic.lobe_updates.running


def test_lobes_in_separate_layers_are_merged_in_the_worker_and_take_the_fast_path(scene_case, monkeypatch):
    scene, logic, volume, segmentation, lungs, geometry = scene_case
    segments = segmentation.GetSegmentation()
    for name in ("lingula", "right upper lobe"):  # as SeparateSegmentLabelmap / some editor effects leave them
        segments.SeparateSegmentLabelmap(segments.GetSegmentIdBySegmentName(name))
    assert segments.GetNumberOfLayers() == 3
    before = exported(logic, segmentation, volume)
    entered, release = threading.Event(), threading.Event()
    original = LayerMerge.merge

    def gated(self):  # holds the worker (a timing double)
        entered.set()
        assert release.wait(60)
        return original(self)

    monkeypatch.setattr(LayerMerge, "merge", gated)
    move_point(scene, "RO", 4, 10.0)
    updates = logic.lobe_updates
    assert updates.start(volume, segmentation) == "running"
    assert entered.wait(30) and segments.GetNumberOfLayers() == 3  # merged in the worker, not on the GUI thread
    assert "merging" in updates.progress[1]
    release.set()
    assert updates.wait() == "applied" and updates.last_path == "local"
    assert segments.GetNumberOfLayers() == 1 and updates.merged == 1
    after = exported(logic, segmentation, volume)
    assert np.array_equal(after, assign_lobes(lungs, geometry, logic.fissure_points()))
    assert updates.last_changed_voxels == int((after != before).sum()) > 0  # the merge itself changed none


def each_segment(scene, segmentation, volume) -> dict:
    """Every segment's voxels as Slicer exports it alone (ExportSegmentsToLabelmapNode)."""
    segments = segmentation.GetSegmentation()
    masks = {}
    for index in range(segments.GetNumberOfSegments()):
        one = vtk.vtkStringArray()
        one.InsertNextValue(segments.GetNthSegmentID(index))
        node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(segmentation, one, node, volume)
        image = node.GetImageData()
        masks[segments.GetNthSegmentID(index)] = numpy_support.vtk_to_numpy(
            image.GetPointData().GetScalars()).reshape(image.GetDimensions()[::-1]) > 0
        scene.RemoveNode(node)
    return masks


def paint_overlap(segmentation, segment_id, over_name, count):
    """``count`` voxels of the segment named ``over_name`` also painted into ``segment_id``'s own layer."""
    segments = segmentation.GetSegmentation()
    name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    segments.SeparateSegmentLabelmap(segment_id)
    target = segments.GetSegment(segment_id).GetRepresentation(name)
    over = segments.GetSegment(segments.GetSegmentIdBySegmentName(over_name))
    target.DeepCopy(over.GetRepresentation(name))
    data = numpy_support.vtk_to_numpy(target.GetPointData().GetScalars())
    inside = np.flatnonzero(data == over.GetLabelValue())
    data[:] = 0
    data[inside[:count]] = segments.GetSegment(segment_id).GetLabelValue()
    target.Modified()


def test_the_merge_keeps_every_segments_voxels_and_leaves_other_segments_alone(scene_case):
    scene, logic, volume, segmentation, *_ = scene_case
    segments = segmentation.GetSegmentation()
    segments.SeparateSegmentLabelmap(segments.GetSegmentIdBySegmentName("left lower lobe"))
    paint_overlap(segmentation, segments.AddEmptySegment("nodule", "nodule"), "right lower lobe", 2000)
    before = each_segment(scene, segmentation, volume)
    assert segments.GetNumberOfLayers() == 3
    merge = LayerMerge.prepare(segmentation, volume, logic.lobe_codes(segmentation))
    merge.install(merge.merge())
    assert segments.GetNumberOfLayers() == 2  # the nodule (overlapping a lobe) keeps its own layer
    after = each_segment(scene, segmentation, volume)
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    assert mrml_lobe_drag.LobeLayer.find(segmentation, volume, logic.lobe_codes(segmentation)) is not None


def test_overlapping_lobes_are_not_merged_but_recomputed_in_the_worker(scene_case):
    scene, logic, volume, segmentation, _lungs, geometry = scene_case
    segments = segmentation.GetSegmentation()
    paint_overlap(segmentation, segments.GetSegmentIdBySegmentName("lingula"), "left lower lobe", 500)
    lungs_now = lungs_from_lobes(exported(logic, segmentation, volume))  # (the lingula is now 500 voxels in the LLL)
    assert LayerMerge.prepare(segmentation, volume, logic.lobe_codes(segmentation)).merge() is None
    move_point(scene, "LO", 4, 10.0)
    updates = logic.lobe_updates
    assert updates.start(volume, segmentation) == "running"
    assert updates.wait() == "applied"
    assert np.array_equal(exported(logic, segmentation, volume), assign_lobes(lungs_now, geometry,
                                                                              logic.fissure_points()))
    assert updates.last_path == "full" and segments.GetNumberOfLayers() == 1


def test_lobes_on_another_grid_take_the_import_path_computed_in_the_worker(scene_case, tmp_path):
    scene, logic, volume, segmentation, _lungs, geometry = scene_case
    image = logic.volume_to_image(volume)
    shifted_origin = (geometry.origin[0] + 1.0, geometry.origin[1], geometry.origin[2])  # half a voxel
    image.SetOrigin(shifted_origin)
    sitk.WriteImage(image, str(tmp_path / "shifted.nrrd"))
    shifted = logic.load_volume(tmp_path / "shifted.nrrd", "shifted CT")
    grid = Geometry(geometry.size, geometry.spacing, shifted_origin, geometry.direction)
    lungs_there = lungs_from_lobes(exported(logic, segmentation, shifted))  # resampled by Slicer
    logic._shown_points = None
    move_point(scene, "RO", 4, 8.0)
    updates = logic.lobe_updates
    assert updates.start(shifted, segmentation) == "running"  # export done, the lobes computed in the worker
    assert updates.wait() == "applied" and updates.last_path == "full import"
    assert np.array_equal(exported(logic, segmentation, shifted), assign_lobes(lungs_there, grid,
                                                                               logic.fissure_points()))


@pytest.mark.parametrize("layer_grid", ["LPS-ordered", "the volume's own"])
def test_a_ct_stored_against_lps_gets_right_lobes_and_the_fast_path(tmp_path, layer_grid):
    """A CT whose i and j axes run against LPS (a prone scan; RAS-ordered NIfTI files run so too):
    the module's lobe array is the core's LPS-oriented one (as the CT's is), and a drag relabels
    the right voxels, in place, whether the lobes' layer lies on the LPS-ordered grid (the core's
    arrays imported) or on the volume's own (a segmentation made on the volume in Slicer).
    Truth: the core's assign_lobes in LPS order; Slicer's export, in the volume's order, flipped."""
    lungs, image, geometry = small_case()
    flipped = sitk.Flip(image, [True, True, False])  # the same voxels in space, stored i and j reversed
    sitk.WriteImage(flipped, str(tmp_path / "ct.nrrd"))
    scene = create_headless_scene()
    try:
        logic = DPOScoringMRMLLogic(scene)
        volume = logic.load_volume(tmp_path / "ct.nrrd")
        points = default_points(lungs, geometry)
        truth = assign_lobes(lungs, geometry, points)
        if layer_grid == "LPS-ordered":
            segmentation = logic.lobes_to_segmentation(truth, image, volume)
        else:
            segmentation = logic.lobes_to_segmentation(truth[:, ::-1, ::-1].copy(), flipped, volume)
        logic.show_fissure_points(points)
        assert logic.remember_lobe_points(segmentation, volume, points)  # a layer is found on this CT
        assert np.array_equal(logic.lobe_array(segmentation, volume), truth)  # LPS-oriented, as the CT's
        assert np.array_equal(exported(logic, segmentation, volume)[:, ::-1, ::-1], truth)
        move_point(scene, "RO", 4, 9.0)
        updates = logic.lobe_updates
        assert updates.start(volume, segmentation) == "running"
        assert updates.wait() == "applied" and updates.last_path == "local"
        expected = assign_lobes(lungs, geometry, logic.fissure_points())
        assert (expected != truth).any()
        assert np.array_equal(exported(logic, segmentation, volume)[:, ::-1, ::-1], expected)
        assert np.array_equal(logic.cached_lobe_array(segmentation, volume)[0], expected)
    finally:
        scene.Clear(0)


@pytest.mark.parametrize("flips", [(False, False, False), (True, True, False), (False, False, True)])
def test_the_lobe_file_detect_is_given_matches_the_ct_file_in_any_voxel_order(tmp_path, flips):
    """The module hands Detect the CT (in the volume's own voxel order) and the lobes as a label
    map: the command line's own reader and grid check (``load_ct``, ``load_label_map``) accept them
    together, and read the lobes the core computed. Truth: assign_lobes in LPS order."""
    from DPOScoringLib.ct.ct_image import load_ct
    from DPOScoringLib.ct.label_maps import load_label_map
    from DPOScoringLib.mrml.mrml_module_logic import ModuleLogic

    lungs, image, geometry = small_case()
    sitk.WriteImage(sitk.Flip(image, list(flips)), str(tmp_path / "stored.nrrd"))
    scene = create_headless_scene()
    try:
        logic = ModuleLogic(scene)
        volume = logic.mrml.load_volume(tmp_path / "stored.nrrd")
        truth = assign_lobes(lungs, geometry, default_points(lungs, geometry))
        segmentation = logic.mrml.lobes_to_segmentation(truth, image, volume)
        node = types.SimpleNamespace(inputVolume=volume, lobeSegmentation=segmentation)
        arguments, _ = logic.detectArguments(node, tmp_path)
        ct = load_ct(arguments[1])
        lobes = load_label_map(arguments[arguments.index("--lobes") + 1], ct, "--lobes", frozenset(range(7)))
        assert np.array_equal(lobes, truth)
    finally:
        scene.Clear(0)


def save_and_reopen(tmp_path, scene, volume, segmentation):
    """The scene saved as Slicer saves it (each node's data through its storage node, then the
    scene file), and opened again in a new scene (vtkMRMLScene::Import of the .mrml)."""
    nodes = [(volume, "ct.nrrd"), (segmentation, "lobes.seg.nrrd")]
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLMarkupsFiducialNode")
        nodes.append((node, f"fissure-{index}.mrk.json"))
    folder = tmp_path / "saved"
    folder.mkdir()
    fresh = open_scene(save_scene(scene, nodes, folder))
    logic = DPOScoringMRMLLogic(fresh)  # a new logic: nothing kept in memory (a module reload too)
    return fresh, logic, fresh.GetFirstNodeByName(volume.GetName()), fresh.GetFirstNodeByName(segmentation.GetName())


def test_a_drag_after_the_scene_was_saved_and_reopened_takes_the_fast_path(scene_case, tmp_path):
    scene, logic, volume, segmentation, lungs, geometry = scene_case
    assert logic.remember_lobe_points(segmentation, volume, logic.fissure_points())  # as loadLobes does
    move_point(scene, "LO", 3, 8.0)  # a drag before saving: its points are stored with its lobes
    logic.lobe_updates.start(volume, segmentation)
    assert logic.lobe_updates.wait() == "applied"
    fresh, again, volume2, segmentation2 = save_and_reopen(tmp_path, scene, volume, segmentation)
    try:
        assert np.array_equal(exported(again, segmentation2, volume2), exported(logic, segmentation, volume))
        before = exported(again, segmentation2, volume2)
        move_point(fresh, "RO", 4, 9.0)
        updates = again.lobe_updates
        assert updates.start(volume2, segmentation2) == "running"
        assert updates.wait() == "applied" and updates.last_path == "local"  # not every voxel again
        after = exported(again, segmentation2, volume2)
        assert np.array_equal(after, assign_lobes(lungs, geometry, again.fissure_points()))
        assert updates.last_changed_voxels == int((after != before).sum()) > 0
        assert updates.last_moved == ["RO"]
    finally:
        fresh.Clear(0)


def test_stored_points_survive_a_reload_of_lobes_in_several_layers(scene_case, tmp_path):
    scene, logic, volume, segmentation, lungs, geometry = scene_case
    assert logic.remember_lobe_points(segmentation, volume, logic.fissure_points())
    segments = segmentation.GetSegmentation()
    segments.SeparateSegmentLabelmap(segments.GetSegmentIdBySegmentName("lingula"))  # same lobes, two layers
    fresh, again, volume2, segmentation2 = save_and_reopen(tmp_path, scene, volume, segmentation)
    try:
        segments2 = segmentation2.GetSegmentation()  # (the storage node may have merged the layers on reading)
        segments2.SeparateSegmentLabelmap(segments2.GetSegmentIdBySegmentName("right middle lobe"))
        assert segments2.GetNumberOfLayers() >= 2
        move_point(fresh, "LG", 2, -7.0)
        assert again.lobe_updates.start(volume2, segmentation2) == "running"
        assert again.lobe_updates.wait() == "applied" and again.lobe_updates.last_path == "local"
        assert np.array_equal(exported(again, segmentation2, volume2),
                              assign_lobes(lungs, geometry, again.fissure_points()))
    finally:
        fresh.Clear(0)


def test_stored_points_of_lobes_edited_since_are_not_trusted(scene_case, tmp_path):
    scene, logic, volume, segmentation, lungs, geometry = scene_case
    points = logic.fissure_points()
    assert logic.remember_lobe_points(segmentation, volume, points)
    # the lobes are replaced afterwards while the module does not watch (another tool, a session
    # without the module: its observers gone, as after Close Scene or an unloaded module): the
    # right oblique fissure 15 mm higher, the stored points not updated
    logic.forget_scene_state()
    other = {name: p.copy() for name, p in points.items()}
    other["RO"][:, 2] += 15.0
    image = logic.volume_to_image(volume)
    logic.lobes_to_segmentation(assign_lobes(lungs, geometry, other), image, volume, segmentation)
    fresh, again, volume2, segmentation2 = save_and_reopen(tmp_path, scene, volume, segmentation)
    try:
        move_point(fresh, "RH", 4, 6.0)
        updates = again.lobe_updates
        assert updates.start(volume2, segmentation2) == "running"  # the honest path runs in the worker too
        assert updates.wait() == "applied"
        # every lobe voxel from the scene's points, not the stale points' partial update
        assert np.array_equal(exported(again, segmentation2, volume2),
                              assign_lobes(lungs, geometry, again.fissure_points()))
        assert updates.last_path == "full"
        # and the points now stored describe the new lobes: the next drag is local again
        move_point(fresh, "RO", 3, 5.0)
        again._shown_points = None  # as after another reload
        updates.start(volume2, segmentation2)
        assert updates.wait() == "applied" and updates.last_path == "local"
        assert np.array_equal(exported(again, segmentation2, volume2),
                              assign_lobes(lungs, geometry, again.fissure_points()))
    finally:
        fresh.Clear(0)


def test_lobes_edited_by_hand_under_the_modules_watch_keep_the_edits_after_a_reload(scene_case, tmp_path):
    """The reader corrects the lobes in the Segment Editor after the last drag, saves, reopens and
    drags: the edits outside the moved surface's sweep survive, as they would have in the session."""
    scene, logic, volume, segmentation, lungs, geometry = scene_case
    assert logic.remember_lobe_points(segmentation, volume, logic.fissure_points())
    segments = segmentation.GetSegmentation()
    upper = segments.GetSegment(segments.GetSegmentIdBySegmentName("left upper lobe, upper division"))
    layer = upper.GetRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
    voxels = numpy_support.vtk_to_numpy(layer.GetPointData().GetScalars()).reshape(layer.GetDimensions()[::-1])
    k = int(np.nonzero((voxels == upper.GetLabelValue()).any(axis=(1, 2)))[0].max()) - 2  # near the apex
    painted = voxels[k] == upper.GetLabelValue()
    voxels[k][painted] = 0  # erased by hand: a slice of the left upper lobe
    layer.Modified()
    edited = exported(logic, segmentation, volume)
    assert painted.sum() > 50 and (edited != assign_lobes(lungs, geometry, logic.fissure_points())).any()
    fresh, again, volume2, segmentation2 = save_and_reopen(tmp_path, scene, volume, segmentation)
    try:
        move_point(fresh, "RO", 4, 9.0)  # the right lung: far from the edit
        updates = again.lobe_updates
        assert updates.start(volume2, segmentation2) == "running"
        assert updates.wait() == "applied" and updates.last_path == "local"
        expected = assign_lobes(lungs, geometry, again.fissure_points())
        expected[edited == 0] = 0  # the erased voxels stay erased
        assert np.array_equal(exported(again, segmentation2, volume2), expected)
    finally:
        fresh.Clear(0)


def test_a_detached_logic_no_longer_watches_the_scene(scene_case, tmp_path):
    """After a module reload the old logic lets go: a scene opened afterwards gets no edit watch
    (nor a scene observer) from it, while a new logic watches that scene's stored lobes."""
    scene, logic, volume, segmentation, *_ = scene_case
    assert logic.remember_lobe_points(segmentation, volume, logic.fissure_points())
    folder = tmp_path / "saved"
    folder.mkdir()
    saved = save_scene(scene, [(volume, "ct.nrrd"), (segmentation, "lobes.seg.nrrd")], folder)
    logic.detach()
    assert logic._edit_watches == {}
    scene.SetURL(str(saved))
    assert scene.Import()  # EndImportEvent: the detached logic does not react
    assert logic._edit_watches == {}
    fresh = DPOScoringMRMLLogic(scene)
    assert fresh.watch_stored_lobes() >= 1


def test_the_logics_points_are_not_used_for_another_segmentation(scene_case):
    scene, logic, volume, segmentation, lungs, geometry = scene_case
    points = logic.fissure_points()
    assert logic.remember_lobe_points(segmentation, volume, points)  # the logic's points: this node's
    other = {name: p.copy() for name, p in points.items()}
    other["LO"][:, 2] -= 12.0
    image = logic.volume_to_image(volume)
    second = logic.lobes_to_segmentation(assign_lobes(lungs, geometry, other), image, volume)  # another node
    move_point(scene, "RO", 4, 8.0)
    updates = logic.lobe_updates
    assert updates.start(volume, second) == "running"
    assert updates.wait() == "applied"
    assert np.array_equal(exported(logic, second, volume), assign_lobes(lungs, geometry, logic.fissure_points()))
    assert updates.last_path == "full"


def test_a_full_recompute_reports_progress_and_can_be_cancelled(scene_case, monkeypatch):
    scene, logic, volume, segmentation, *_ = scene_case
    logic._shown_points = None  # no points known to describe the lobes (none stored either)
    entered, release = threading.Event(), threading.Event()
    original = mrml_lobe_drag.assign_lobes

    def gated(lungs, geometry, points, progress=None):  # holds the worker (a timing double)
        progress.step(0.5, "assigning lobes")
        entered.set()
        assert release.wait(60)
        return original(lungs, geometry, points, progress)

    monkeypatch.setattr(mrml_lobe_drag, "assign_lobes", gated)
    before = exported(logic, segmentation, volume)
    move_point(scene, "RO", 4, 10.0)
    updates = logic.lobe_updates
    assert updates.start(volume, segmentation) == "running"
    assert entered.wait(30)
    fraction, message = updates.progress
    assert 0 < fraction < 1 and "assigning lobes" in message
    updates.cancel()
    release.set()
    assert updates.wait() == "cancelled" and not updates.running
    assert np.array_equal(exported(logic, segmentation, volume), before)  # nothing applied


def test_a_stored_points_attribute_that_is_not_ours_is_ignored(scene_case):
    from DPOScoringLib.mrml.mrml_lobe_points import POINTS_ATTRIBUTE, stored_points

    *_, segmentation, _lungs, _geometry = scene_case
    for text in ("not json", '{"schema": "other"}', '{"schema": "dpo-lobe-points/1", "lobes_sha256": "x", '
                 '"fissures": {"XX": [[0, 0, 0]]}}', '{"schema": "dpo-lobe-points/1", "lobes_sha256": "x", '
                 '"fissures": {"RO": [1, 2]}}'):
        segmentation.SetAttribute(POINTS_ATTRIBUTE, text)
        assert stored_points(segmentation) is None


def test_the_layer_reader_equals_slicers_export_with_a_foreign_segment_in_the_layer(scene_case):
    scene, logic, volume, segmentation, *_ = scene_case
    segments = segmentation.GetSegmentation()
    segment_id = segments.GetSegmentIdBySegmentName("left lower lobe")
    layer = segments.GetSegment(segment_id).GetRepresentation(
        slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
    nodule = slicer.vtkSegment()
    nodule.SetName("nodule")
    nodule.SetLabelValue(9)
    nodule.AddRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(), layer)
    segments.AddSegment(nodule, "nodule")  # the reader paints another segment into the same layer
    scalars = numpy_support.vtk_to_numpy(layer.GetPointData().GetScalars())
    scalars[np.flatnonzero(scalars == segments.GetSegment(segment_id).GetLabelValue())[:500]] = 9
    layer.Modified()
    assert segments.GetNumberOfLayers() == 1
    assert np.array_equal(logic.lobe_array(segmentation, volume), exported(logic, segmentation, volume))
