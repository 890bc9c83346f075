"""Sensitivity of candidate detection to its two HU thresholds, on phantoms with known truth.

For each (seed_hu, grow_hu) pair, on a 1 mm and a 2 mm slice phantom: the share of POs found
(all POs, and POs whose peak in the image is >= 400 HU), POs classed nodular, false candidates
(no truth finding nearby) and whether the dendriform structure is one dendriform candidate.
The table printed is the one in Docs/detection.md.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import numpy as np
import SimpleITK as sitk

from DPOScoringLib.ct.airways import track_airways
from DPOScoringLib.ct.ct_image import check_ct_image
from DPOScoringLib.detection.candidates import DetectionParams, detect_candidates
from DPOScoringLib.synthetic.phantom import PhantomSpec, generate_phantom, truth_reach_mm


def evaluate(ct, lungs, lobes, airways, truth, params):
    geometry = ct.geometry
    result = detect_candidates(ct.array, ct.spacing, lungs, lobes, airways, params=params,
                               lps_of=geometry.ijk_to_lps)
    positions = np.array([c.lps for c in result.candidates]) if result.candidates else np.zeros((0, 3))
    matched = set()

    def match(finding):
        if not len(positions):
            return None
        distances = np.linalg.norm(positions - np.array(finding["lps"]), axis=1)
        index = int(np.argmin(distances))
        reach = truth_reach_mm(finding)
        if distances[index] <= reach:
            matched.add(index)
            return result.candidates[index]
        return None

    pos = [f for f in truth["findings"] if f["kind"] == "nodular"]
    found = {f["id"]: match(f) for f in pos}
    for f in truth["findings"]:
        if f["kind"] != "nodular":
            match(f)
    tree = next(f for f in truth["findings"] if f["kind"] == "dendriform")
    near_tree = [c.kind for c in result.candidates if np.linalg.norm(np.array(c.lps) - tree["lps"]) < 14]
    visible = [f for f in pos if f["peak_hu"] >= 400]
    return {
        "all POs found": sum(found[f["id"]] is not None for f in pos) / len(pos),
        "POs >= 400 HU found": sum(found[f["id"]] is not None for f in visible) / max(len(visible), 1),
        "classed nodular": sum(found[f["id"]] is not None and found[f["id"]].kind == "nodular"
                               for f in visible) / max(len(visible), 1),
        "false candidates": len(result.candidates) - len(matched),
        "dendriform as one": near_tree == ["dendriform"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=float, nargs="+", default=[200, 250, 300, 400, 500])
    parser.add_argument("--grows", type=float, nargs="+", default=[50, 100, 150])
    args = parser.parse_args(argv)
    print("| slices | seed HU | grow HU | all POs found | POs >= 400 HU found | classed nodular | "
          "false candidates | dendriform as one |")
    print("|---|---|---|---|---|---|---|---|")
    for slice_mm, seed in ((1.0, 21), (2.0, 22)):
        phantom = generate_phantom(PhantomSpec(spacing=(0.8, 0.8, slice_mm), seed=seed, n_po=48))
        ct = check_ct_image(phantom.ct, "phantom", "phantom", "-")
        lungs = sitk.GetArrayFromImage(phantom.lungs)
        lobes = sitk.GetArrayFromImage(phantom.lobes)
        airways = track_airways(ct.array, None, ct.spacing).mask
        for seed_hu in args.seeds:
            for grow_hu in args.grows:
                if grow_hu >= seed_hu:
                    continue
                row = evaluate(ct, lungs, lobes, airways, phantom.truth,
                               replace(DetectionParams(), seed_hu=seed_hu, grow_hu=grow_hu))
                print(f"| {slice_mm:g} mm | {seed_hu:g} | {grow_hu:g} | {row['all POs found']:.0%} | "
                      f"{row['POs >= 400 HU found']:.0%} | {row['classed nodular']:.0%} | "
                      f"{row['false candidates']} | {'yes' if row['dendriform as one'] else 'no'} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
