"""DPOScoring benchmarks: times and peak memory against references measured in the same run.

Builds a 512 x 512 x 400 chest phantom (0.7 x 0.7 x 0.8 mm) once, then reports:
* naive reference: threshold + scipy.ndimage.label + find_objects on the whole volume;
* detection with the lung mask given (goal: at most half the naive reference's time);
* the `dpo-score detect` path after loading, lungs from the CT (goal: at most 3x the naive
  reference), and the `detect --lungs` path (lung mask given, airways and contrast still judged);
* weight-free lung masking (goal: at most 3x the naive reference);
* recomputing the six lobes from moved fissure points (goal: about a second);
* peak memory of detection and of lung masking above the loaded volume (goal: under 4x the
  volume's bytes), measured with tracemalloc (numpy allocations are traced);
* batch throughput on 4 phantom cases with 1 and 2 workers (``batch_benchmark.py``).
Every timing is the median of ``--repeat`` runs. The machine is shared and noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: E402  (after the project imports on purpose: same order as the CLI)
from scipy import ndimage

from DPOScoringLib.ct.ct_image import check_ct_image
from DPOScoringLib.ct.lung_mask import segment_lungs
from DPOScoringLib.detection.candidates import detect_candidates
from DPOScoringLib.detection.pipeline import detect_on_ct
from DPOScoringLib.lobes.fissures import assign_lobes, default_points
from DPOScoringLib.synthetic.phantom import PHANTOM_FILES, PhantomSpec, generate_phantom, write_phantom


def timed(function, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def peak_memory(function) -> int:
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def naive_reference(hu: np.ndarray, threshold: float):
    labels, n = ndimage.label(hu >= threshold)
    return ndimage.find_objects(labels), n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 400), metavar=("NX", "NY", "NZ"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--cache", type=Path, help="keep the phantom in this folder and reuse it")
    parser.add_argument("--skip-batch", action="store_true", help="leave out the batch throughput part")
    args = parser.parse_args(argv)
    nx, ny, nz = args.size
    spacing = (0.7, 0.7, 0.8)
    spec = PhantomSpec(fov_mm=(nx * spacing[0], ny * spacing[1], nz * spacing[2]), spacing=spacing,
                       n_po=60, seed=11)
    started = time.perf_counter()
    if args.cache and (args.cache / PHANTOM_FILES["ct"]).is_file():
        ct_image = sitk.ReadImage(str(args.cache / PHANTOM_FILES["ct"]))
        lungs_image = sitk.ReadImage(str(args.cache / PHANTOM_FILES["lungs"]))
    else:
        print(f"building a {nx}x{ny}x{nz} phantom ...", file=sys.stderr)
        phantom = generate_phantom(spec)
        ct_image, lungs_image = phantom.ct, phantom.lungs
        if args.cache:
            write_phantom(phantom, args.cache)
    build = time.perf_counter() - started
    ct = check_ct_image(ct_image, "phantom", "phantom", "-")
    hu = ct.array
    lungs_truth = sitk.GetArrayViewFromImage(lungs_image)
    volume_bytes = hu.nbytes

    naive_s, _ = timed(lambda: naive_reference(hu, 150.0), args.repeat)
    detect_s, result = timed(lambda: detect_candidates(hu, ct.spacing, lungs_truth), args.repeat)
    lungs_s, mask = timed(lambda: segment_lungs(hu, ct.spacing, ct.image.GetOrigin()[0]), args.repeat)
    # the paths the user runs (after loading): `dpo-score detect` (lungs, airways, contrast and
    # candidates from the CT alone) and `dpo-score detect --lungs` (the lung mask given)
    detect_cli_s, cli_run = timed(lambda: detect_on_ct(ct, None, None, None), args.repeat)
    detect_lungs_s, _ = timed(lambda: detect_on_ct(ct, np.asarray(lungs_truth), None, None), args.repeat)
    points = default_points(lungs_truth, ct.geometry)
    moved = {name: p + [0.0, 0.0, 4.0] for name, p in points.items()}  # the reader drags the points
    fissure_s, _ = timed(lambda: assign_lobes(lungs_truth, ct.geometry, moved), args.repeat)
    detect_peak = peak_memory(lambda: detect_candidates(hu, ct.spacing, lungs_truth))
    lungs_peak = peak_memory(lambda: segment_lungs(hu, ct.spacing, ct.image.GetOrigin()[0]))
    report = {
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count(),
                    "platform": platform.platform()},
        "volume": {"size": [nx, ny, nz], "spacing_mm": list(spacing), "bytes": volume_bytes,
                   "phantom_build_or_load_s": round(build, 2)},
        "naive_reference_s": round(naive_s, 3),
        "detection_s": round(detect_s, 3),
        "detection_over_naive": round(detect_s / naive_s, 3),
        "detection_candidates": len(result.candidates),
        "detect_command_s": round(detect_cli_s, 3),
        "detect_command_over_naive": round(detect_cli_s / naive_s, 3),
        "detect_command_candidates": len(cli_run.result.candidates),
        "detect_with_lungs_s": round(detect_lungs_s, 3),
        "detect_with_lungs_over_naive": round(detect_lungs_s / naive_s, 3),
        "lung_mask_s": round(lungs_s, 3),
        "lung_mask_over_naive": round(lungs_s / naive_s, 3),
        "fissure_recompute_s": round(fissure_s, 3),
        "detection_peak_memory_over_volume": round(detect_peak / volume_bytes, 3),
        "lung_mask_peak_memory_over_volume": round(lungs_peak / volume_bytes, 3),
        "goals": {"detection_over_naive": "<= 0.5", "lung_mask_over_naive": "<= 3",
                  "detect_command_over_naive": "<= 3",
                  "fissure_recompute_s": "about 1",
                  "peak_memory_over_volume": "< 4"},
    }
    if not args.skip_batch:
        from batch_benchmark import main as batch_main

        print("batch throughput (1 and 2 workers):", file=sys.stderr)
        batch_main(["--cases", "4"])
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
