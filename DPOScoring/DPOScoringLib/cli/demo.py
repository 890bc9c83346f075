"""``dpo-score demo``: the main job on a built-in example, checked against what was planted.

A synthetic chest CT (``phantom.py``) with known findings goes through the whole pipeline (lungs,
lobes, candidates, bundle, report); a simulated reader who knows the planted truth confirms the
candidates that are true findings and rejects the rest. The demo then prints the closing summary
of ``run``, and the result against the truth: which planted findings were found, which were
missed and why, counts per lobe against the truth's, and where the false candidates lie.

The output folder is the demo's own: it holds ``DPO-DEMO-OUTPUT.txt``, and a rerun replaces the
demo's entries in a folder that holds that file (and nothing else there). A non-empty folder
without it is never touched (with ``--force`` the demo writes into it only when none of its own
entry names are taken).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from ..common.anatomy import LOBE_CODES
from ..common.errors import DPOInputError
from ..common.safe_files import check_output_folder
from ..rules.policy import DEFAULT_POLICY, ScoringPolicy

DEMO_MARKER = "DPO-DEMO-OUTPUT.txt"
MARKER_FIRST_LINE = "This folder was written by `dpo-score demo`"
DEMO_ENTRIES = ("phantom", "bundle", ".bundle.partial", ".bundle.replaced", DEMO_MARKER)
READER = "simulated reader (phantom truth)"
DEMO_OUTPUT_BYTES = 60 * 1024 * 1024  # measured: the whole demo folder 15.6 MB
NEAR_MISS_FACTOR = 2.0  # a candidate within this x the match distance is reported as a near miss


def is_demo_folder(folder: Path) -> bool:
    marker = folder / DEMO_MARKER
    try:
        return marker.is_file() and marker.read_text(encoding="utf-8").startswith(MARKER_FIRST_LINE)
    except (OSError, UnicodeDecodeError):
        return False


def prepare_folder(folder: Path, force: bool = False) -> None:
    """Make ``folder`` ready for a demo: new, empty, or an earlier demo's (whose entries are
    removed). Raises DPOInputError before anything is changed when the folder is someone else's."""
    if folder.exists() and not folder.is_dir():
        raise DPOInputError(str(folder), "is a file, not a folder; choose another --out")
    check_output_folder(folder, overwrite=True, expected_bytes=DEMO_OUTPUT_BYTES)  # writable, room enough
    if folder.is_dir() and any(folder.iterdir()) and not is_demo_folder(folder):
        taken = [name for name in DEMO_ENTRIES if (folder / name).exists()]
        if not force:
            raise DPOInputError(str(folder), f"is not empty and holds no earlier demo (no {DEMO_MARKER}); "
                                "not touched: choose another --out, or --force to add the demo's files")
        if taken:
            raise DPOInputError(str(folder), f"holds {', '.join(taken)} of another origin; not replaced "
                                "(choose another --out)")
    if is_demo_folder(folder):
        for name in DEMO_ENTRIES:
            path = folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DEMO_MARKER).write_text(
        f"{MARKER_FIRST_LINE} (DPOScoring). A rerun of the demo replaces phantom/, bundle/ and this file;\n"
        "other files here are left alone. phantom/ holds the synthetic CT and its planted truth,\n"
        "bundle/ the case bundle with report.html.\n", encoding="utf-8")


def _distance(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)))


def _lobe_label_at(lobes_image, lps) -> int:
    try:
        index = lobes_image.TransformPhysicalPointToIndex([float(v) for v in lps])
        return int(lobes_image[index])
    except (RuntimeError, IndexError):
        return 0


def why_missed(finding: dict, candidates: list[dict], excluded: list[dict], seed_hu: float, lobes_image) -> str:
    """The likeliest reason a planted finding has no candidate, from what the run recorded."""
    from ..synthetic.phantom import truth_reach_mm

    reach = truth_reach_mm(finding)
    if finding.get("peak_hu") is not None and finding["peak_hu"] < seed_hu:
        return (f"its peak in the image, {finding['peak_hu']:.0f} HU, is below the detection threshold "
                f"{seed_hu:.0f} HU (a {finding['diameter_mm']:.1f} mm nodule blurred by partial volume)")
    for item in excluded:
        if item.get("lps") is not None and _distance(item["lps"], finding["lps"]) <= reach + 2.0:
            return f"found but excluded by detection: {item['reason']}"
    if lobes_image is not None and _lobe_label_at(lobes_image, finding["lps"]) == 0:
        return "it lies outside the computed lungs (lung mask boundary)"
    if candidates:
        nearest = min(candidates, key=lambda c: _distance(c["lps"], finding["lps"]))
        distance = _distance(nearest["lps"], finding["lps"])
        if distance <= NEAR_MISS_FACTOR * reach:
            return (f"candidate {nearest['id']} lies {distance:.1f} mm away, beyond the {reach:.1f} mm "
                    "match distance (merged with a neighbour or off-centre)")
    return "not detected although its peak reaches the threshold: a detection miss to investigate"


def truth_reading(truth: dict) -> dict:
    """The planted findings as a fully confirmed ``dpo-reading/1`` (sizes = planted diameters)."""
    findings = [{"id": f["id"], "lobe": f["lobe"], "kind": f["kind"], "status": "confirmed",
                 "short_axis_mm": f["diameter_mm"] if f["kind"] != "dendriform" else None,
                 "lps": f["lps"]} for f in truth["findings"]]
    return {"schema": "dpo-reading/1", "findings": [{k: v for k, v in f.items() if v is not None}
                                                    for f in findings], "lobes": {}}


def compare_with_truth(truth: dict, document: dict, reading: dict, scores: dict,
                       policy: ScoringPolicy = DEFAULT_POLICY, lobes_image=None) -> dict:
    """Found and missed planted findings (with why), per-lobe counts against the truth's, and what
    the false candidates are near. ``document``: the dpo-candidates/1 of the run."""
    from ..rules.reading import parse_reading
    from ..rules.scoring import score_reading
    from ..synthetic.phantom import matches_truth

    candidates = document["candidates"]
    seed_hu = float(document["parameters"].get("seed_hu", 300.0))
    by_kind: dict[str, dict] = {}
    matched_ids: set[str] = set()
    for finding in truth["findings"]:
        hits = [c for c in candidates if matches_truth(finding, c["lps"])]
        matched_ids.update(c["id"] for c in hits)
        entry = by_kind.setdefault(finding["kind"], {"planted": 0, "found": 0, "missed": [], "wrong_lobe": []})
        entry["planted"] += 1
        if hits:
            entry["found"] += 1
            if all(c["lobe"] != finding["lobe"] for c in hits):
                entry["wrong_lobe"].append({"id": finding["id"], "truth": finding["lobe"], "given": hits[0]["lobe"]})
        else:
            entry["missed"].append({"id": finding["id"], "lobe": finding["lobe"],
                                    "diameter_mm": finding["diameter_mm"],
                                    "why": why_missed(finding, candidates, document.get("excluded", []),
                                                      seed_hu, lobes_image)})
    truth_scores = score_reading(parse_reading(truth_reading(truth)), policy)
    planted_nodular = dict.fromkeys(LOBE_CODES, 0)
    for finding in truth["findings"]:
        if finding["kind"] == "nodular":
            planted_nodular[finding["lobe"]] += 1
    false = []
    for candidate in candidates:
        if candidate["id"] in matched_ids:
            continue
        near = [d for d in truth.get("distractors", []) if _distance(d["lps"], candidate["lps"]) <= 8.0]
        false.append({"id": candidate["id"], "lobe": candidate["lobe"],
                      "near": near[0]["id"] if near else None})
    return {
        "by_kind": by_kind,
        "lobes": [{"lobe": code, "counted": scores["nnpol"][code], "truth": truth_scores["nnpol"][code],
                   "planted_nodular": planted_nodular[code],
                   "dendriform": code in truth_scores["dendriform_lobes"]} for code in LOBE_CODES],
        "totals": {"found": (scores["right_total"], scores["left_total"]),
                   "truth": (truth_scores["right_total"], truth_scores["left_total"])},
        "definitions": {"found": (scores["dpo_def1"], scores["dpo_def2"]),
                        "truth": (truth_scores["dpo_def1"], truth_scores["dpo_def2"])},
        "false_candidates": false,
    }


KIND_TITLES = {"nodular": "nodular POs", "large_calcified": "calcified nodules >= 4 mm (recorded separately)",
               "dendriform": "dendriform POs", "granuloma": "granulomas"}


def truth_text(comparison: dict, truth_path: str) -> str:
    def yes_no(value):
        return "positive" if value else "negative"

    lines = [f"Against the planted truth ({truth_path}):"]
    for kind, entry in comparison["by_kind"].items():
        lines.append(f"  {KIND_TITLES.get(kind, kind)}: found {entry['found']} of {entry['planted']}"
                     + (f", missed {len(entry['missed'])}:" if entry["missed"] else ""))
        for miss in entry["missed"]:
            lines.append(f"    - {miss['id']} ({miss['lobe']}, {miss['diameter_mm']:.1f} mm): {miss['why']}")
        for wrong in entry["wrong_lobe"]:
            lines.append(f"    - {wrong['id']}: found, but placed in {wrong['given']} (planted in {wrong['truth']})")
    found, planted = comparison["totals"]["found"], comparison["totals"]["truth"]
    lines.append(f"  counted R {found[0]} / L {found[1]} against a truth of R {planted[0]} / L {planted[1]}; per lobe:")
    lines.append("    lobe  counted  truth  planted nodular")
    for row in comparison["lobes"]:
        note = "  (dendriform lobe: its nodular POs are not counted)" if row["dendriform"] else ""
        lines.append(f"    {row['lobe']:<5} {row['counted']:>7}  {row['truth']:>5}  {row['planted_nodular']:>15}{note}")
    got, want = comparison["definitions"]["found"], comparison["definitions"]["truth"]
    lines.append(f"  definition 1 {yes_no(got[0])} (truth {yes_no(want[0])}), "
                 f"definition 2 {yes_no(got[1])} (truth {yes_no(want[1])})")
    false = comparison["false_candidates"]
    if false:
        described = [f"{f['id']} ({f['lobe']}{', at the ' + f['near'] if f['near'] else ', no planted object'})"
                     for f in false]
        lines.append(f"  {len(false)} candidate{'s' if len(false) != 1 else ''} matched nothing planted and "
                     f"were rejected by the simulated reader: {', '.join(described)}")
    else:
        lines.append("  every candidate matched a planted finding")
    if any("below the detection threshold" in m["why"] for e in comparison["by_kind"].values() for m in e["missed"]):
        lines.append("  Nodules whose blurred peak stays below the calcific threshold are missed by design; "
                     "a reader places them with A (add a missed ossification).")
    return "\n".join(lines) + "\n"


def run_demo(out: str | Path, seed: int = 7, policy: ScoringPolicy = DEFAULT_POLICY, force: bool = False,
             quiet: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None) -> Path:
    """Builds the phantom, runs the case with the simulated reader, prints the summary and the
    comparison with the truth (unless ``quiet``); returns the bundle folder."""
    import SimpleITK as sitk

    from ..audit.case_run import run_case
    from ..common.progress import Progress, line_printer
    from ..rules.score_summary import closing_summary
    from ..synthetic.phantom import PhantomSpec, generate_phantom, matches_truth, write_phantom

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    folder = Path(out)
    prepare_folder(folder, force)
    progress = Progress(line_printer(quiet, stderr))
    if not quiet:
        print("building a synthetic chest CT (phantom) with known ossifications ...", file=stderr)
    spec = PhantomSpec(fov_mm=(220.0, 180.0, 200.0), spacing=(0.8, 0.8, 1.0), seed=seed, n_po=30)
    paths = write_phantom(generate_phantom(spec, progress.sub(0.0, 0.4, stage="phantom")), folder / "phantom")
    truth = json.loads(paths["truth"].read_text(encoding="utf-8"))

    def simulated_reader(document: dict) -> dict:
        return {c["id"]: "confirmed" if any(matches_truth(f, c["lps"]) for f in truth["findings"]) else "rejected"
                for c in document["candidates"]}

    bundle = run_case(paths["ct"], folder / "bundle", reader=READER, case_id=f"phantom-seed-{seed}",
                      policy=policy, overwrite=True, decide=simulated_reader, progress=progress.sub(0.4, 1.0))
    if not quiet:
        scores = json.loads((bundle / "scores.json").read_text(encoding="utf-8"))
        reading = json.loads((bundle / "reading.json").read_text(encoding="utf-8"))
        document = json.loads((bundle / "candidates.json").read_text(encoding="utf-8"))
        comparison = compare_with_truth(truth, document, reading, scores, policy,
                                        sitk.ReadImage(str(bundle / "lobes.nrrd")))
        stdout.write(closing_summary(scores, reading, str(bundle)))
        stdout.write("\n" + truth_text(comparison, str(paths["truth"])))
        print(f"\nreport: {bundle / 'report.html'}\nbundle: {bundle} (lobes, candidates, reading, scores, "
              f"provenance); phantom and its truth: {folder / 'phantom'}; rerun `make demo` to replace them",
              file=stderr)
    return bundle

