"""The drag's local path on a CT whose IJK axes are a permutation of LPS's, with signs (issue 10
point 4): a CT stored as sagittal or coronal slices gets the same worker-thread, write-only-what-
changes update as an axial one, the lobes' layer on the CT's own grid or on its LPS-ordered one;
before, every drag there exported and imported every voxel on the GUI thread.

Truths from outside the code under test: the expected lobes are the core's ``assign_lobes`` on
the LPS-ordered lungs; the segmentation is read back through Slicer's own
``ExportSegmentsToLabelmapNode`` in the CT's own voxel order and compared with the expected lobes
put into that order by numpy (``stored_order``), a mapping checked here against SimpleITK's
``PermuteAxes``/``Flip`` that wrote the CT. Headless over the real MRML library (slicer-core)."""

from __future__ import annotations

import threading
import types

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is installed by the test setup (make test)")

import SimpleITK as sitk  # noqa: E402
import vtk  # noqa: E402
from test_slicer_lobe_drag import exported, move_point, paint_overlap, save_and_reopen, small_case  # noqa: E402

from DPOScoringLib.common.anatomy import lungs_from_lobes  # noqa: E402
from DPOScoringLib.lobes.fissures import assign_lobes, default_points  # noqa: E402
from DPOScoringLib.mrml import mrml_lobe_drag  # noqa: E402
from DPOScoringLib.mrml.mrml_logic import create_headless_scene  # noqa: E402
from DPOScoringLib.mrml.mrml_module_logic import ModuleLogic  # noqa: E402

# (PermuteAxes order: the input (LPS) axis each stored IJK axis runs along; Flip per stored axis),
# as DICOM stores these slices (right-handed IJK; Slicer's reader reverses k of a left-handed file)
ORDERS = {
    # sagittal slices (ImageOrientationPatient 0\1\0\0\0\-1): i posterior, j inferior, k right
    "sagittal": ((1, 2, 0), (False, True, True)),
    # coronal slices (ImageOrientationPatient 1\0\0\0\0\-1): i left, j inferior, k posterior
    "coronal": ((0, 2, 1), (False, True, False)),
}


def stored_order(lps: np.ndarray, order, flips) -> np.ndarray:
    """An LPS-ordered array [k, j, i] in the voxel order of ``sitk.Flip(sitk.PermuteAxes(image,
    order), flips)`` (numpy only)."""
    array = lps.transpose([2 - order[2 - b] for b in range(3)])
    return array[tuple(slice(None, None, -1) if flips[2 - b] else slice(None) for b in range(3))]


def permuted_scene(tmp_path, name, layer_grid):
    """A CT written in a permuted voxel order, loaded as Slicer loads it, with lobes (the core's, on
    the LPS-ordered lungs) on ``layer_grid`` and the fissure points shown."""
    order, flips = ORDERS[name]
    lungs, image, geometry = small_case()
    stored = sitk.Flip(sitk.PermuteAxes(image, order), flips)
    assert np.array_equal(sitk.GetArrayFromImage(stored), stored_order(sitk.GetArrayFromImage(image), order, flips))
    sitk.WriteImage(stored, str(tmp_path / "ct.nrrd"))
    scene = create_headless_scene()
    module = ModuleLogic(scene)
    logic = module.mrml
    volume = logic.load_volume(tmp_path / "ct.nrrd")
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    ijk_to_ras = np.array([[matrix.GetElement(r, c) for c in range(3)] for r in range(3)])
    file_axes = np.diag([-1.0, -1.0, 1.0]) @ np.array(stored.GetDirection()).reshape(3, 3)  # in RAS
    assert np.allclose(ijk_to_ras / np.linalg.norm(ijk_to_ras, axis=0), file_axes)  # Slicer kept the file's order
    assert tuple(np.argmax(np.abs(ijk_to_ras), axis=0)) == order  # permuted
    points = default_points(lungs, geometry)
    truth = assign_lobes(lungs, geometry, points)
    if layer_grid == "LPS-ordered":  # as the core's arrays are imported
        segmentation = logic.lobes_to_segmentation(truth, image, volume)
    else:  # a segmentation made on the volume in Slicer
        segmentation = logic.lobes_to_segmentation(np.ascontiguousarray(stored_order(truth, order, flips)), stored,
                                                   volume)
    logic.show_fissure_points(points)
    return scene, module, logic, volume, segmentation, lungs, geometry, image, truth


def worker_threads(monkeypatch) -> list:
    """The names of the threads the local path's computation ran in (a recording wrapper)."""
    names, original = [], mrml_lobe_drag._compute

    def recording(*args):
        names.append(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(mrml_lobe_drag, "_compute", recording)
    return names


@pytest.mark.parametrize("layer_grid", ["LPS-ordered", "the volume's own"])
@pytest.mark.parametrize("name", sorted(ORDERS))
def test_a_drag_on_a_ct_with_permuted_axes_is_local_in_the_worker_and_right(tmp_path, monkeypatch, name,
                                                                            layer_grid):
    from DPOScoringLib.ct.ct_image import load_ct
    from DPOScoringLib.ct.label_maps import load_label_map

    order, flips = ORDERS[name]
    scene, module, logic, volume, segmentation, lungs, geometry, image, truth = permuted_scene(
        tmp_path, name, layer_grid)
    try:
        threads = worker_threads(monkeypatch)
        before = exported(logic, segmentation, volume)
        assert np.array_equal(before, stored_order(truth, order, flips))  # Slicer's view of the lobes
        assert logic.remember_lobe_points(segmentation, volume, logic.fissure_points())  # a layer is found
        assert np.array_equal(logic.lobe_array(segmentation, volume), truth)  # LPS-oriented, as the core's
        # the grid the worker computes on: the one SimpleITK's DICOMOrient gives the checked CT
        assert mrml_lobe_drag.volume_geometry(volume).matches(logic.checked_ct(volume).geometry)
        assert mrml_lobe_drag.volume_geometry(volume).matches(geometry)  # sizes, spacings per L, P, S axis
        move_point(scene, "RO", 4, 9.0)
        move_point(scene, "LO", 3, -6.0)
        updates = logic.lobe_updates
        assert updates.start(volume, segmentation) == "running"
        assert updates.wait() == "applied" and updates.last_path == "local"
        assert threads and all(t.startswith("DPOScoring-lobes") for t in threads)  # computed in the worker
        expected = assign_lobes(lungs, geometry, logic.fissure_points())
        after = exported(logic, segmentation, volume)
        assert (expected != truth).any() and np.array_equal(after, stored_order(expected, order, flips))
        assert updates.last_changed_voxels == int((after != before).sum()) > 0  # only the changed voxels written
        assert segmentation.GetSegmentation().GetNumberOfLayers() == 1
        lobes, ct_image = logic.cached_lobe_array(segmentation, volume)
        assert np.array_equal(lobes, expected)
        assert np.array_equal(sitk.GetArrayFromImage(ct_image), sitk.GetArrayFromImage(image))  # paired, LPS
        # Detect is handed the dragged lobes in the CT file's voxel order: the command line reads them right
        arguments, _ = module.detectArguments(types.SimpleNamespace(inputVolume=volume, lobeSegmentation=segmentation),
                                              tmp_path)
        ct = load_ct(arguments[1])
        labels = load_label_map(arguments[arguments.index("--lobes") + 1], ct, "--lobes", frozenset(range(7)))
        assert np.array_equal(labels, expected)
    finally:
        scene.Clear(0)


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_lobes_in_several_layers_on_a_permuted_ct_are_merged_in_the_worker(tmp_path, name):
    order, flips = ORDERS[name]
    scene, _module, logic, volume, segmentation, lungs, geometry, *_ = permuted_scene(tmp_path, name,
                                                                                      "the volume's own")
    try:
        assert logic.remember_lobe_points(segmentation, volume, logic.fissure_points())
        segments = segmentation.GetSegmentation()
        for segment in ("lingula", "right upper lobe"):
            segments.SeparateSegmentLabelmap(segments.GetSegmentIdBySegmentName(segment))
        assert segments.GetNumberOfLayers() == 3
        move_point(scene, "RH", 4, 7.0)
        updates = logic.lobe_updates
        assert updates.start(volume, segmentation) == "running"
        assert updates.wait() == "applied" and updates.last_path == "local" and updates.merged == 1
        assert segments.GetNumberOfLayers() == 1
        expected = assign_lobes(lungs, geometry, logic.fissure_points())
        assert np.array_equal(exported(logic, segmentation, volume), stored_order(expected, order, flips))
    finally:
        scene.Clear(0)


def test_overlapping_lobes_on_a_permuted_ct_are_recomputed_in_the_worker(tmp_path):
    order, flips = ORDERS["sagittal"]
    scene, _module, logic, volume, segmentation, _lungs, geometry, *_ = permuted_scene(tmp_path, "sagittal",
                                                                                       "the volume's own")
    try:
        segments = segmentation.GetSegmentation()
        paint_overlap(segmentation, segments.GetSegmentIdBySegmentName("lingula"), "left lower lobe", 500)
        # the lungs the lobes cover, from Slicer's export put back into LPS order by numpy
        inverse = np.argsort([2 - order[2 - b] for b in range(3)])
        undo = tuple(slice(None, None, -1) if flips[2 - b] else slice(None) for b in range(3))
        lungs_now = lungs_from_lobes(exported(logic, segmentation, volume)[undo].transpose(inverse))
        move_point(scene, "LO", 4, 10.0)
        updates = logic.lobe_updates
        assert updates.start(volume, segmentation) == "running"
        assert updates.wait() == "applied" and updates.last_path == "full"  # in the worker, not the import
        expected = assign_lobes(lungs_now, geometry, logic.fissure_points())
        assert np.array_equal(exported(logic, segmentation, volume), stored_order(expected, order, flips))
        assert segments.GetNumberOfLayers() == 1
    finally:
        scene.Clear(0)


def test_a_drag_on_a_permuted_ct_after_the_scene_was_reopened_is_local(tmp_path):
    order, flips = ORDERS["coronal"]
    scene, _module, logic, volume, segmentation, lungs, geometry, *_ = permuted_scene(tmp_path, "coronal",
                                                                                      "LPS-ordered")
    try:
        assert logic.remember_lobe_points(segmentation, volume, logic.fissure_points())
        fresh, again, volume2, segmentation2 = save_and_reopen(tmp_path, scene, volume, segmentation)
    finally:
        scene.Clear(0)
    try:
        move_point(fresh, "RO", 4, 9.0)
        updates = again.lobe_updates
        assert updates.start(volume2, segmentation2) == "running"
        assert updates.wait() == "applied" and updates.last_path == "local"  # the stored points' digest held
        expected = assign_lobes(lungs, geometry, again.fissure_points())
        assert np.array_equal(exported(again, segmentation2, volume2), stored_order(expected, order, flips))
    finally:
        fresh.Clear(0)


def test_the_stored_points_digest_does_not_depend_on_the_layers_voxel_order(tmp_path):
    """The same lobes on the CT's own (sagittal) grid and on its LPS-ordered one have one digest,
    so points stored with lobes on one grid are trusted for the other (e.g. after the full import
    moved them); a changed voxel changes it."""
    from DPOScoringLib.mrml.mrml_lobe_layer import LobeLayer

    scene, _module, logic, volume, own, _lungs, _geometry, image, truth = permuted_scene(tmp_path, "sagittal",
                                                                                         "the volume's own")
    try:
        lps = logic.lobes_to_segmentation(truth, image, volume)
        layers = [LobeLayer.find(node, volume, logic.lobe_codes(node)) for node in (own, lps)]
        assert layers[0].order != layers[1].order  # really two voxel orders
        assert layers[0].digest() == layers[1].digest()
        kk, jj, ii = (np.array([int(v)]) for v in np.argwhere(truth == 3)[0])  # a voxel of the right lower lobe
        assert layers[0].digest((kk, jj, ii, np.array([1]))) == layers[1].digest((kk, jj, ii, np.array([1])))
        assert layers[0].digest((kk, jj, ii, np.array([1]))) != layers[0].digest()
    finally:
        scene.Clear(0)
