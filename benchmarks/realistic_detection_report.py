"""What the whole pipeline does on the realistic phantoms (issue 9), as numbers for the docs.

On the fibrosis phantom at 1 mm and 2 mm slices (the same specs and seeds as the tests in
Testing/Python/detection/test_detection_realistic.py): the share of POs found as nodular candidates,
overall and by kind of site (pleural, in fibrosis, beside a cyst, in a cluster), large calcified
nodules, the dendriform tree, and the false candidates with what they were. On the scanner
variants: lung Dice per side against the truth and voxels of the mask far from any lung. On the
abdomen without lungs: whether detection refused it. Lungs always come from the CT and lobes
from the weight-free fissure method. Synthetic data only.

    python benchmarks/realistic_detection_report.py [--only fibrosis|lungs|refusal]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from DPOScoringLib.common.anatomy import lung_volumes_ml, lungs_from_lobes
from DPOScoringLib.ct.ct_image import load_ct
from DPOScoringLib.ct.label_maps import LUNG_VALUES, load_label_map
from DPOScoringLib.ct.lung_mask import segment_lungs
from DPOScoringLib.detection.pipeline import detect_on_ct, run_detection
from DPOScoringLib.lobes.lobe_pipeline import compute_lobes
from DPOScoringLib.synthetic.phantom import PhantomSpec, generate_phantom, matches_truth, truth_reach_mm, write_phantom
from DPOScoringLib.synthetic.phantom_scanner import SCANNER_VARIANTS as VARIANTS

FIBROSIS = {"1 mm": ((0.8, 0.8, 1.0), 11), "2 mm": ((0.8, 0.8, 2.0), 12)}
def assignment(findings, candidates) -> dict:
    if not findings or not candidates:
        return {}
    positions = np.array([c.lps for c in candidates])
    cost = np.linalg.norm(np.array([f["lps"] for f in findings])[:, None] - positions[None], axis=2)
    cost = np.where(cost <= np.array([truth_reach_mm(f) for f in findings])[:, None], cost, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return {findings[r]["id"]: candidates[c] for r, c in zip(rows, cols) if cost[r, c] < 1e6}


def dice(a, b) -> float:
    total = float(a.sum() + b.sum())
    return round(2.0 * float((a & b).sum()) / total, 3) if total else 1.0


def far_voxels(mask, truth, spacing) -> int:
    distance = ndimage.distance_transform_edt(truth == 0, sampling=tuple(spacing[::-1]))
    return int(((mask > 0) & (distance > 5.0)).sum())


def share(findings, assigned) -> str:
    found = [f for f in findings if f["id"] in assigned and assigned[f["id"]].kind == "nodular"]
    return f"{len(found)}/{len(findings)}" + (f" ({len(found) / len(findings):.0%})" if findings else "")


def fibrosis_report(work: Path) -> dict:
    out = {}
    for name, (spacing, seed) in FIBROSIS.items():
        started = time.perf_counter()
        paths = write_phantom(generate_phantom(PhantomSpec.fibrosis_preset(spacing, seed=seed)), work / name)
        truth = json.loads(paths["truth"].read_text())
        ct = load_ct(paths["ct"])
        lobes = compute_lobes(ct, "fissures").lobes
        lungs = lungs_from_lobes(lobes)
        run = detect_on_ct(ct, lungs, lobes, None)
        findings = truth["findings"]
        assigned = assignment(findings, run.result.candidates)
        pos = [f for f in findings if f["kind"] == "nodular"]
        true_lungs = load_label_map(paths["lungs"], ct, "--lungs", LUNG_VALUES)
        false = [c for c in run.result.candidates if not any(matches_truth(f, c.lps) for f in findings)]
        missed = [f for f in pos if not (f["id"] in assigned and assigned[f["id"]].kind == "nodular")]
        out[name] = {
            "seconds": round(time.perf_counter() - started),
            "pos_all": share(pos, assigned),
            "pos_pleural": share([f for f in pos if f["pleural"]], assigned),
            "pos_abutting_gap0": share([f for f in pos if f["gap_to_pleura_mm"] == 0.0], assigned),
            "pos_in_fibrosis": share([f for f in pos if f["in_fibrosis"]], assigned),
            "pos_beside_cyst": share([f for f in pos if f["beside_cyst"]], assigned),
            "pos_in_clusters": share([f for f in pos if f["cluster"]], assigned),
            "pos_peak_ge_400": share([f for f in pos if f["peak_hu"] >= 400], assigned),
            "large_calcified": {f["id"]: getattr(assigned.get(f["id"]), "kind", None)
                                for f in findings if f["kind"] == "large_calcified"},
            "dendriform_near": [c.kind for c in run.result.candidates
                                if np.linalg.norm(np.array(c.lps) - next(
                                    f["lps"] for f in findings if f["kind"] == "dendriform")) <= 7.5],
            "candidates": len(run.result.candidates),
            "false_candidates": [{"kind": c.kind, "lps": [round(v, 1) for v in c.lps], "peak_hu": round(c.peak_hu),
                                  "lobe": c.lobe, "zone": c.zone} for c in false],
            "missed": [{"id": f["id"], "placement": f["placement"], "d": round(f["diameter_mm"], 2),
                        "peak": f["peak_hu"], "gap": f["gap_to_pleura_mm"],
                        "got": getattr(assigned.get(f["id"]), "kind", None)} for f in missed],
            "excluded_reasons": sorted({e["reason"].split(":")[0] for e in run.result.excluded}),
            "lung_dice": {"right": dice(run.lungs == 1, true_lungs == 1),
                          "left": dice(run.lungs == 2, true_lungs == 2)},
            "lung_voxels_far_from_lungs": far_voxels(run.lungs, true_lungs, ct.spacing),
            "lung_ml": run.lung_volumes_ml, "true_lung_ml": truth["lung_volumes_ml"],
        }
        print(name, json.dumps(out[name], indent=1), file=sys.stderr)
    return out


def lung_report(work: Path) -> dict:
    out = {}
    for name, changes in VARIANTS.items():
        spec = PhantomSpec.fibrosis_preset((0.8, 0.8, 2.0), n_po=12, n_po_clusters=1, **changes)
        paths = write_phantom(generate_phantom(spec), work / name)
        ct = load_ct(paths["ct"])
        truth = load_label_map(paths["lungs"], ct, "--lungs", LUNG_VALUES)
        try:
            mask = segment_lungs(ct.array, ct.spacing, ct.image.GetOrigin()[0])
            labels = mask.labels
            out[name] = {"dice_right": dice(labels == 1, truth == 1), "dice_left": dice(labels == 2, truth == 2),
                         "mask_ml": lung_volumes_ml(labels, ct.spacing), "true_ml": lung_volumes_ml(truth, ct.spacing),
                         "voxels_far_from_lungs": far_voxels(labels, truth, ct.spacing),
                         "warnings": mask.warnings}
        except ValueError as error:
            out[name] = {"error": str(error)}
        print(name, out[name], file=sys.stderr)
    return out


def refusal_report(work: Path) -> dict:
    paths = write_phantom(generate_phantom(PhantomSpec.no_lung_preset(seed=26)), work / "no-lungs")
    try:
        run = run_detection(paths["ct"])
    except ValueError as error:
        return {"refused": True, "message": str(error)}
    return {"refused": False, "lung_ml": run.lung_volumes_ml, "candidates": len(run.result.candidates)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("fibrosis", "lungs", "refusal"))
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as work:
        if args.only in (None, "refusal"):
            results["no_lungs"] = refusal_report(Path(work))
            print("no-lungs", results["no_lungs"], file=sys.stderr)
        if args.only in (None, "lungs"):
            results["lungs"] = lung_report(Path(work))
        if args.only in (None, "fibrosis"):
            results["fibrosis"] = fibrosis_report(Path(work))
    text = json.dumps(results, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
