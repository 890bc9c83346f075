"""Lobe recompute after the reader drags one fissure point, on a 512 x 512 x 400 volume, in the
path the Slicer module runs (the real MRML library, slicer-core, headless), against the
reference measured in the same run: today's ``mrml_logic.recompute_lobes`` (export the lobe
segmentation to an array, recompute every voxel, import a new segmentation).

Timed separately: the export, the full core recompute (``fissures.assign_lobes``), the local core
recompute (``fissures.update_lobes``: only the voxels between the old and the new surface), and
the import into a segmentation node. Goal: <= 1 s from the drag to the new lobes.

The volume is synthetic (two ellipsoid lungs, 0.7 x 0.7 x 0.8 mm); the timings are of this noisy
2-core machine. Usage: python benchmarks/lobe_drag_benchmark.py [--repeat N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)

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
        scene = create_headless_scene()
        logic = DPOScoringMRMLLogic(scene)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "ct.nrrd"
            sitk.WriteImage(image, str(path))
            volume = logic.load_volume(path)
        segmentation = logic.lobes_to_segmentation(lobes, image, volume)
        logic.show_fissure_points(moved)
        results["mrml_reference_recompute_s"], _ = timed(lambda: logic.recompute_lobes(volume, segmentation), 1)
        results["mrml_export_s"], _ = timed(lambda: logic.lobe_array(segmentation, volume), args.repeat)
        results["mrml_import_s"], _ = timed(lambda: logic.lobes_to_segmentation(local, image, volume), args.repeat)
        results["mrml_local_path_s"] = round(results["core_local_update_s"] + results["mrml_import_s"], 3)
    results = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in results.items()}
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
