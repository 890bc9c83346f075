"""Lobe update after the reader drags one fissure point, on a 512 x 512 x 400 volume, in the path
the Slicer module runs (the real MRML library, slicer-core, headless), against the reference
measured in the same run: the module's former path, ``mrml_lobes.recompute_lobes(in_place=True)``
(check the CT, export the lobe segmentation to an array, relabel the swept voxels, import every
voxel back into the segmentation node).

The module's path now (``mrml_lobe_drag.LobeUpdates``, what ``ModuleLogic.startLobeUpdate`` /
``pollLobeUpdate`` run from the widget's drag observer and QTimer): the swept voxels computed in a
worker thread, written into the segmentation's shared labelmap layer where they change. Timed:
from the drag's end (``start``) to the lobes in the segmentation (the ``poll`` that applies them),
the first drag (the lungs read from the segmentation in the worker) and later ones, and how long
the GUI thread is held (``start`` plus the applying ``poll``). Also the core alone: full
``assign_lobes`` and local ``update_lobes``. Goal: <= 1 s from the drag to the new lobes. After
the drags the segmentation is checked voxel for voxel against a full core recompute, exported
through Slicer's own ``ExportSegmentsToLabelmapNode``.

Then the cases that used to fall back to the full recompute on the GUI thread (issue 10): the
scene saved through its storage nodes and opened again in a new scene with a new logic (the points
read back from the segmentation node, checked against the lobes' digest in the worker), the lobes
in three layers (merged into one in the worker, installed on the GUI thread, then the local path),
and lobes changed without the module after their points were stored (every voxel recomputed in
the worker; the GUI thread held only to write).

And a CT stored as sagittal slices (its IJK axes a permutation of LPS's: posterior, inferior,
right, as DICOM stores them), the lobes imported as the core's LPS-ordered arrays are: a drag by
the routing the module had before (no layer found on such a CT, so the full import: the lobes
exported and imported on the GUI thread at every drag), reproduced here by making
``mrml_lobe_layer.placement`` find nothing, against the local path now (the layer viewed through a
transposed, reversed numpy view).

The volume is synthetic (two ellipsoid lungs, 0.7 x 0.7 x 0.8 mm); the timings are of this noisy
2-core machine. Usage: python benchmarks/lobe_drag_benchmark.py [--repeat N] [--json FILE]
[--cases lps,permuted]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from run_benchmarks import timed


def synthetic_case(shape=(400, 512, 512), spacing=(0.7, 0.7, 0.8)):
    from DPOScoringLib.ct.ct_image import Geometry

    nk, nj, ni = shape
    origin = (-ni * spacing[0] / 2, -nj * spacing[1] / 2, -nk * spacing[2] / 2)
    geometry = Geometry((ni, nj, nk), spacing, origin, (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    z = origin[2] + np.arange(nk) * spacing[2]
    y = origin[1] + np.arange(nj) * spacing[1]
    x = origin[0] + np.arange(ni) * spacing[0]
    lungs = np.zeros(shape, dtype=np.uint8)
    for k in range(nk):
        for label, cx in ((1, -70.0), (2, 70.0)):
            inside = ((x[None, :] - cx) / 60.0) ** 2 + (y[:, None] / 100.0) ** 2 + (z[k] / 150.0) ** 2 <= 1.0
            lungs[k][inside] = label
    hu = np.where(lungs > 0, -850, 40).astype(np.int16)
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image, lungs, geometry


def export(logic, volume, segmentation):
    """The lobes as an array through Slicer's ``ExportSegmentsToLabelmapNode`` (the former read)."""
    return logic.exported_lobes(segmentation, volume, logic.lobe_codes(segmentation))[0]


def former_path(logic, volume, segmentation):
    """The reference: what ``recompute_lobes(in_place=True)`` ran before the layer read and the
    drag update (the CT checked, the lobes exported, the swept voxels relabelled, all imported)."""
    from DPOScoringLib.common.anatomy import lungs_from_lobes
    from DPOScoringLib.lobes.fissures import update_lobes

    ct = logic.checked_ct(volume)
    current = export(logic, volume, segmentation)
    lungs = lungs_from_lobes(current)
    points = logic.fissure_points()
    lobes, _ = update_lobes(current, lungs, ct.geometry, logic._shown_points, points)
    logic._shown_points = {name: np.asarray(values, dtype=float).copy() for name, values in points.items()}
    return logic.lobes_to_segmentation(lobes, ct.image, volume, segmentation)


def gil_holder(seconds: float):
    """A call that keeps the GIL for about ``seconds`` (a C loop with no bytecode in it): stands for
    Slicer's GUI thread in Qt's event loop, which holds the GIL between two polls (see
    mrml_lobe_drag.POLL_WAIT_S)."""
    n = 200_000
    started = time.perf_counter()
    sum(range(n))
    per_item = max((time.perf_counter() - started) / n, 1e-9)
    count = int(seconds / per_item)
    return lambda: sum(range(count))


def drag(logic, volume, segmentation, name, index, dz, between_polls=None):
    """The reader moves one control point of fissure ``name`` by ``dz`` mm and releases it: the
    module's path from the drag's end to the lobes in the segmentation, polled as the widget does
    (every LOBE_POLL_MS = 50 ms; ``between_polls``: what the GUI thread does meanwhile, by default
    idle with the GIL released). Returns (total seconds, seconds the GUI thread was held by the
    module, voxels changed)."""
    node = logic.scene.GetFirstNodeByName(f"DPO fissure {name}")
    position = [0.0, 0.0, 0.0]
    node.GetNthControlPointPosition(index, position)
    node.SetNthControlPointPosition(index, position[0], position[1], position[2] + dz)
    updates = logic.lobe_updates
    started = time.perf_counter()
    state = updates.start(volume, segmentation)
    held = longest = time.perf_counter() - started
    assert state == "running", state
    while True:
        if between_polls is None:
            time.sleep(0.05)  # the GUI's event loop between two timer polls, idle
        else:
            between_polls()
        polled = time.perf_counter()
        state = updates.poll()
        held += time.perf_counter() - polled
        longest = max(longest, time.perf_counter() - polled)
        if state != "running":
            break
    assert state == "applied", state
    return time.perf_counter() - started, held, updates.last_changed_voxels, longest


def module_path(image, lungs, geometry, lobes, points, moved, repeat, logic_class, new_scene) -> dict:
    from DPOScoringLib.lobes.fissures import assign_lobes

    results = {}
    scene = new_scene()
    logic = logic_class(scene)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ct.nrrd"
        sitk.WriteImage(image, str(path))
        volume = logic.load_volume(path)
    segmentation = logic.lobes_to_segmentation(lobes, image, volume)
    logic.show_fissure_points(points)
    for name, values in moved.items():  # the drag of the core timings, now in the scene
        node = scene.GetFirstNodeByName(f"DPO fissure {name}")
        for index, lps in enumerate(values):
            node.SetNthControlPointPosition(index, -lps[0], -lps[1], lps[2])
    results["mrml_reference_recompute_s"], _ = timed(lambda: former_path(logic, volume, segmentation), 1)
    results["mrml_export_s"], _ = timed(lambda: export(logic, volume, segmentation), repeat)
    results["mrml_import_s"], _ = timed(
        lambda: scene.RemoveNode(logic.lobes_to_segmentation(lobes, image, volume)), repeat)
    results["mrml_read_layer_s"], _ = timed(lambda: logic.lobe_array(segmentation, volume), repeat)
    # the module's path now: drags of the right oblique's middle point, up and down in turn
    first, first_held, first_voxels, first_longest = drag(logic, volume, segmentation, "RO", 4, 6.0)
    results["module_first_drag_s"] = first
    results["module_first_drag_gui_thread_s"] = first_held
    totals, helds, voxels, longest = [], [], [first_voxels], [first_longest]
    for number in range(max(repeat, 3)):
        total, held, changed, hold = drag(logic, volume, segmentation, "RO", 4, -6.0 if number % 2 == 0 else 6.0)
        totals.append(total)
        helds.append(held)
        voxels.append(changed)
        longest.append(hold)
    results["module_drag_s"] = statistics.median(totals)
    results["module_drag_max_s"] = max(totals)
    results["module_drag_gui_thread_s"] = statistics.median(helds)
    results["module_drag_gui_thread_longest_hold_s"] = max(longest)
    results["module_drag_voxels_changed"] = int(statistics.median(voxels))
    results["module_drag_vs_reference"] = results["module_drag_s"] / results["mrml_reference_recompute_s"]
    # the worst case for a Python worker thread: the GUI thread keeps the GIL between the polls
    holder = gil_holder(0.05)
    held_totals = [drag(logic, volume, segmentation, "RO", 4, 6.0 if number % 2 == 0 else -6.0, holder)[0]
                   for number in range(max(repeat, 3))]
    results["module_drag_gil_held_between_polls_s"] = statistics.median(held_totals)
    # the segmentation after the partial updates, voxel for voxel, as Slicer exports it
    expected = assign_lobes(lungs, geometry, logic.fissure_points())
    assert np.array_equal(export(logic, volume, segmentation), expected), \
        "the segmentation after the drags must equal a full recompute"
    results["module_result_equals_full_recompute"] = True
    results.update(reopened_scene(scene, volume, segmentation, lungs, geometry, logic_class, new_scene))
    return results


def save_and_reopen(scene, volume, segmentation, folder, logic_class, new_scene):
    """Saved as Slicer saves (each node through its storage node, then the .mrml), opened again."""
    nodes = [(volume, "ct.nrrd"), (segmentation, "lobes.seg.nrrd")]
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode")):
        nodes.append((scene.GetNthNodeByClass(index, "vtkMRMLMarkupsFiducialNode"), f"fissure-{index}.mrk.json"))
    for node, name in nodes:
        if node.GetStorageNode() is None:
            node.AddDefaultStorageNode()
        node.GetStorageNode().SetFileName(str(Path(folder) / name))
        assert node.GetStorageNode().WriteData(node)
    scene.SetURL(str(Path(folder) / "scene.mrml"))
    assert scene.Commit()
    fresh = new_scene()
    fresh.SetURL(str(Path(folder) / "scene.mrml"))
    assert fresh.Import()
    return fresh, logic_class(fresh), fresh.GetFirstNodeByName(volume.GetName()), \
        fresh.GetFirstNodeByName(segmentation.GetName())


def reopened_scene(scene, volume, segmentation, lungs, geometry, logic_class, new_scene) -> dict:
    from DPOScoringLib.lobes.fissures import assign_lobes

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        fresh, logic, volume, segmentation = save_and_reopen(scene, volume, segmentation, folder, logic_class,
                                                             new_scene)
        updates = logic.lobe_updates
        # the first drag in the reopened scene: the stored points' digest checked in the worker
        total, held, _, _ = drag(logic, volume, segmentation, "RO", 4, 6.0)
        assert updates.last_path == "local", updates.last_path
        results["reopened_first_drag_s"], results["reopened_first_drag_gui_thread_s"] = total, held
        total, held, _, _ = drag(logic, volume, segmentation, "RO", 4, -6.0)
        results["reopened_drag_s"], results["reopened_drag_gui_thread_s"] = total, held
        # the lobes in three layers (SeparateSegmentLabelmap, as some editor effects leave them)
        segments = segmentation.GetSegmentation()

        def separate():
            for name in ("lingula", "right upper lobe"):
                segments.SeparateSegmentLabelmap(segments.GetSegmentIdBySegmentName(name))
            assert segments.GetNumberOfLayers() == 3

        # the alternative not kept: Slicer's own CollapseBinaryLabelmaps(false), C++ on the GUI thread
        separate()
        started = time.perf_counter()
        segments.CollapseBinaryLabelmaps(False)
        results["three_layers_slicer_collapse_gui_thread_s"] = time.perf_counter() - started
        assert segments.GetNumberOfLayers() == 1
        separate()
        total, held, _, longest = drag(logic, volume, segmentation, "RO", 4, 6.0)
        assert updates.last_path == "local" and segments.GetNumberOfLayers() == 1
        results["three_layers_first_drag_s"], results["three_layers_first_drag_gui_thread_s"] = total, held
        results["three_layers_first_drag_longest_hold_s"] = longest  # incl. installing the merged layer
        # lobes changed without the module watching after their points were stored (here: the
        # logic's own points forgotten and the stored digest made stale), so nothing may be
        # trusted: every voxel, in the worker
        logic._shown_points = None
        text = segmentation.GetAttribute("DPOScoring.LobePoints")
        segmentation.SetAttribute("DPOScoring.LobePoints", text.replace('"lobes_sha256": "', '"lobes_sha256": "0'))
        total, held, _, longest = drag(logic, volume, segmentation, "RO", 4, -6.0)
        assert updates.last_path == "full", updates.last_path
        results["stale_points_full_recompute_s"], results["stale_points_full_gui_thread_s"] = total, held
        results["stale_points_full_longest_hold_s"] = longest
        assert np.array_equal(export(logic, volume, segmentation), assign_lobes(lungs, geometry,
                                                                                 logic.fissure_points())), \
            "the reopened scene's segmentation after the drags must equal a full recompute"
        results["reopened_result_equals_full_recompute"] = True
        fresh.Clear(0)
    return results


SAGITTAL = ((1, 2, 0), (False, True, True))  # sitk.PermuteAxes order, then sitk.Flip: i P, j I, k R


def permuted_path(image, lungs, geometry, lobes, points, repeat, logic_class, new_scene) -> dict:
    """The drag on a CT stored as sagittal slices: before (the full import, as the module routed
    it when no layer could be found on a permuted CT) and now (local)."""
    from DPOScoringLib.lobes.fissures import assign_lobes
    from DPOScoringLib.mrml import mrml_lobe_layer, mrml_lobe_layer_merge

    results = {"permuted_ct": "sagittal slices: IJK toward posterior, inferior, right"}
    scene = new_scene()
    logic = logic_class(scene)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ct.nrrd"
        sitk.WriteImage(sitk.Flip(sitk.PermuteAxes(image, SAGITTAL[0]), SAGITTAL[1]), str(path))
        volume = logic.load_volume(path)
    segmentation = logic.lobes_to_segmentation(lobes, image, volume)  # on the LPS-ordered grid
    logic.show_fissure_points(points)
    found = mrml_lobe_layer.placement
    mrml_lobe_layer.placement = mrml_lobe_layer_merge.placement = lambda labelmap, volume: None
    try:  # before: no layer on such a CT, so every drag took the full import
        timings = [drag(logic, volume, segmentation, "RO", 4, 6.0 if number % 2 == 0 else -6.0)
                   for number in range(max(repeat - 1, 2))]
        assert logic.lobe_updates.last_path == "full import", logic.lobe_updates.last_path
    finally:
        mrml_lobe_layer.placement = mrml_lobe_layer_merge.placement = found
    results["permuted_before_full_import_drag_s"] = statistics.median(t[0] for t in timings)
    results["permuted_before_gui_thread_s"] = statistics.median(t[1] for t in timings)
    results["permuted_before_longest_hold_s"] = max(t[3] for t in timings)
    # now: the same scene, the lobes where the full import left them (the LPS-ordered grid)
    first = drag(logic, volume, segmentation, "RO", 4, 6.0)
    assert logic.lobe_updates.last_path == "local", logic.lobe_updates.last_path
    results["permuted_first_local_drag_s"], results["permuted_first_local_gui_thread_s"] = first[:2]
    timings = [drag(logic, volume, segmentation, "RO", 4, -6.0 if number % 2 == 0 else 6.0)
               for number in range(max(repeat, 3))]
    assert logic.lobe_updates.last_path == "local", logic.lobe_updates.last_path
    results["permuted_local_drag_s"] = statistics.median(t[0] for t in timings)
    results["permuted_local_drag_max_s"] = max(t[0] for t in timings)
    results["permuted_local_gui_thread_s"] = statistics.median(t[1] for t in timings)
    results["permuted_local_longest_hold_s"] = max(t[3] for t in timings)
    results["permuted_local_voxels_changed"] = int(statistics.median(t[2] for t in timings))
    results["permuted_local_vs_before"] = \
        results["permuted_local_drag_s"] / results["permuted_before_full_import_drag_s"]
    # the segmentation, exported by Slicer onto the CT's grid, put into LPS order by SimpleITK
    expected = assign_lobes(lungs, geometry, logic.fissure_points())
    assert np.array_equal(export(logic, volume, segmentation), expected), \
        "the segmentation after the drags on the permuted CT must equal a full recompute"
    results["permuted_result_equals_full_recompute"] = True
    scene.Clear(0)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--cases", default="lps,permuted",
                        help="lps: an LPS-ordered CT (every path); permuted: a CT stored as sagittal slices")
    args = parser.parse_args(argv)
    cases = set(args.cases.split(","))

    from DPOScoringLib.lobes.fissures import assign_lobes, default_points, update_lobes

    image, lungs, geometry = synthetic_case()
    points = default_points(lungs, geometry)
    lobes = assign_lobes(lungs, geometry, points)
    moved = {name: p.copy() for name, p in points.items()}
    moved["RO"][4, 2] += 6.0  # the reader drags the middle point of the right oblique fissure 6 mm up

    results = {"volume": "512x512x400 (synthetic lungs)", "lung_voxels": int((lungs > 0).sum())}
    results["core_full_assign_s"], full = timed(lambda: assign_lobes(lungs, geometry, moved), args.repeat)
    work = lobes.copy()  # updated in place (re-applying the same drag is idempotent)
    results["core_local_update_s"], (local, touched) = timed(
        lambda: update_lobes(work, lungs, geometry, points, moved), args.repeat)
    results["core_local_update_voxels"] = int(touched)
    assert np.array_equal(local, full), "the local update must equal the full recompute"

    try:
        from DPOScoringLib.mrml.mrml_logic import DPOScoringMRMLLogic, create_headless_scene
    except ImportError as error:  # slicer-core not installed: core timings only
        results["mrml"] = f"not measured ({error})"
    else:
        if "lps" in cases:
            results.update(module_path(image, lungs, geometry, lobes, points, moved, args.repeat,
                                       DPOScoringMRMLLogic, create_headless_scene))
        if "permuted" in cases:
            results.update(permuted_path(image, lungs, geometry, lobes, points, args.repeat,
                                         DPOScoringMRMLLogic, create_headless_scene))
    results = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in results.items()}
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
