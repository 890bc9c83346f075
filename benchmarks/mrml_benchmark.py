"""Review speed in the real MRML library (slicer-core, headless): 2,000 candidates loaded into a
markups node, its coloured status layers and the candidates table, then one decision with its tally
refresh, each against a
plain MRML reference measured in the same run (the same number of bare control points / one bare
description change). Goals: loading under 0.3 s, a decision under 50 ms."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import vtk

from DPOScoringLib.mrml.mrml_logic import DPOScoringMRMLLogic, create_headless_scene

LOBES = ("RUL", "RML", "RLL", "LUL", "LING", "LLL")


def fake_document(n: int) -> dict:
    rng = np.random.default_rng(0)
    return {"input": {"source": "benchmark", "sha256": "-"}, "candidates": [
        {"id": f"c{i + 1:04d}", "lps": [float(v) for v in rng.uniform(-150, 150, 3)],
         "ijk": [0.0, 0.0, 0.0], "lung": "right" if i % 6 < 3 else "left", "lobe": LOBES[i % 6], "kind": "nodular",
         "short_axis_mm": float(rng.uniform(1.5, 3.9)), "long_axis_mm": 3.0, "volume_mm3": 8.0,
         "peak_hu": float(rng.uniform(300, 1500)), "mean_hu": 200.0, "zone": "cortical", "status": "pending",
         "source": "detected"} for i in range(n)]}


def median_time(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    document = fake_document(args.candidates)

    def reference_load():
        scene = create_headless_scene()
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
        for candidate in document["candidates"]:
            node.AddControlPoint(vtk.vtkVector3d(*candidate["lps"]), candidate["id"])

    def our_load():
        scene = create_headless_scene()
        logic = DPOScoringMRMLLogic(scene)
        markups = logic.candidates_to_markups(document)
        logic.status_layers(markups)
        logic.candidates_table(markups)

    scene = create_headless_scene()
    logic = DPOScoringMRMLLogic(scene)
    markups = logic.candidates_to_markups(document)
    logic.status_layers(markups)
    table = logic.candidates_table(markups)
    _, results = logic.update_results(markups)
    counter = iter(range(10 ** 6))
    bare = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    for candidate in document["candidates"]:
        bare.AddControlPoint(vtk.vtkVector3d(*candidate["lps"]), candidate["id"])

    def reference_decision():
        bare.SetNthControlPointDescription(next(counter) % args.candidates, "confirmed")

    def our_decision():
        """What the reader waits for: the decision in the scene, its table row and the tallies."""
        index = next(counter) % args.candidates
        logic.decide(markups, index, "bench", status="confirmed", autosave=False)
        logic.update_candidate_row(table, markups, index)
        logic.update_results(markups, results)

    def our_decision_saved():
        our_decision()
        logic.autosave(markups, folder)  # right after the display update

    import tempfile

    folder = tempfile.mkdtemp(prefix="dpo-review-")
    report = {
        "candidates": args.candidates,
        "reference_load_s": round(median_time(reference_load, args.repeat), 4),
        "load_s": round(median_time(our_load, args.repeat), 4),
        "reference_decision_s": round(median_time(reference_decision, args.repeat * 4), 5),
        "decision_s": round(median_time(our_decision, args.repeat * 4), 4),
        "decision_with_autosave_s": round(median_time(our_decision_saved, args.repeat * 4), 4),
        "goals": {"load_s": "< 0.3", "decision_s": "< 0.05"},
    }
    report["load_over_reference"] = round(report["load_s"] / report["reference_load_s"], 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
