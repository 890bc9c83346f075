"""The detectability limit of PO detection, as a curve rather than a filter.

For each slice thickness, a fibrosis phantom (PhantomSpec.fibrosis_preset: POs where the paper
found them, in reticulation, abutting the pleura, beside honeycomb cysts, in clusters) with many
POs of 1-4 mm and 400-1600 HU goes through the whole pipeline (``run_detection``: lungs from
the CT, no lobes). Every PO counts; its peak HU after partial volume and blur (from the truth)
is reported, never used to drop it. Written to the output folder:

* ``detectability.csv``: one row per PO (slice mm, diameter, density, peak HU, placement,
  found as nodular, found as anything);
* ``detectability.md``: found share by slice thickness x diameter bin and by peak-HU bin;
* ``detectability.png``: the found share against diameter, one curve per slice thickness,
  and against peak HU.

Synthetic data only; the numbers describe the phantom's physics (0.45 mm PSF, supersampled
partial volume, 18 HU noise) and the detector of the checkout it runs in.

    python benchmarks/detectability_curve.py --out /tmp/detectability [--slices 1 2 5] [--n-po 60]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIAMETER_BINS = [(1.0, 1.5), (1.5, 2.0), (2.0, 2.5), (2.5, 3.0), (3.0, 3.5), (3.5, 4.0)]
PEAK_BINS = [(-1000, 0), (0, 150), (150, 300), (300, 450), (450, 700), (700, 4000)]


def measure(slice_mm: float, n_po: int, seed: int, work: Path) -> list[dict]:
    from scipy.optimize import linear_sum_assignment

    from DPOScoringLib.detection.pipeline import run_detection
    from DPOScoringLib.synthetic.phantom import PhantomSpec, generate_phantom, truth_reach_mm, write_phantom

    spec = PhantomSpec.fibrosis_preset((0.8, 0.8, slice_mm), seed=seed, n_po=n_po, po_diameter_mm=(1.0, 4.0),
                                       po_density_hu=(400.0, 1600.0), n_po_clusters=max(2, n_po // 12))
    started = time.perf_counter()
    phantom = generate_phantom(spec)
    paths = write_phantom(phantom, work / f"slice-{slice_mm:g}mm")
    generated = time.perf_counter() - started
    run = run_detection(paths["ct"])
    detected = time.perf_counter() - started - generated
    print(f"{slice_mm:g} mm: phantom {generated:.0f} s, detection {detected:.0f} s, "
          f"{len(run.result.candidates)} candidates", file=sys.stderr)
    findings = phantom.truth["findings"]
    candidates = run.result.candidates
    assigned = {}
    if candidates:
        positions = np.array([c.lps for c in candidates])
        cost = np.linalg.norm(np.array([f["lps"] for f in findings])[:, None] - positions[None], axis=2)
        reach = np.array([truth_reach_mm(f) for f in findings])[:, None]
        cost = np.where(cost <= reach, cost, 1e6)
        for r, c in zip(*linear_sum_assignment(cost)):
            if cost[r, c] < 1e6:
                assigned[findings[r]["id"]] = candidates[c]
    rows = []
    for f in findings:
        if f["kind"] != "nodular":
            continue
        candidate = assigned.get(f["id"])
        rows.append({"slice_mm": slice_mm, "id": f["id"], "diameter_mm": f["diameter_mm"],
                     "density_hu": f["density_hu"], "peak_hu": f["peak_hu"], "placement": f.get("placement"),
                     "gap_to_pleura_mm": f["gap_to_pleura_mm"], "found_any": candidate is not None,
                     "found_nodular": candidate is not None and candidate.kind == "nodular",
                     "kind": "" if candidate is None else candidate.kind})
    return rows


def share(rows, key="found_nodular") -> str:
    if not rows:
        return "-"
    return f"{sum(r[key] for r in rows) / len(rows):.0%} ({len(rows)})"


def table(rows, slices) -> str:
    lines = ["Found as nodular candidate (number of POs), by diameter:", "",
             "| slice | " + " | ".join(f"{lo:g}-{hi:g} mm" for lo, hi in DIAMETER_BINS) + " | all |",
             "|---" * (len(DIAMETER_BINS) + 2) + "|"]
    for s in slices:
        own = [r for r in rows if r["slice_mm"] == s]
        cells = [share([r for r in own if lo <= r["diameter_mm"] < hi]) for lo, hi in DIAMETER_BINS]
        lines.append(f"| {s:g} mm | " + " | ".join(cells) + f" | {share(own)} |")
    lines += ["", "By peak HU after partial volume and blur (truth), all slices:", "",
              "| " + " | ".join(f"{lo}..{hi}" for lo, hi in PEAK_BINS) + " |", "|---" * len(PEAK_BINS) + "|",
              "| " + " | ".join(share([r for r in rows if lo <= r["peak_hu"] < hi]) for lo, hi in PEAK_BINS) + " |",
              "", "By placement, all slices:", ""]
    for placement in sorted({r["placement"] for r in rows}):
        lines.append(f"* {placement}: {share([r for r in rows if r['placement'] == placement])}")
    return "\n".join(lines) + "\n"


def plot(rows, slices, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    centres = [(lo + hi) / 2 for lo, hi in DIAMETER_BINS]
    for s in slices:
        own = [r for r in rows if r["slice_mm"] == s]
        values = []
        for lo, hi in DIAMETER_BINS:
            binned = [r["found_nodular"] for r in own if lo <= r["diameter_mm"] < hi]
            values.append(np.mean(binned) if binned else np.nan)
        left.plot(centres, values, marker="o", label=f"{s:g} mm slices")
        peaks = np.array([r["peak_hu"] for r in own])
        found = np.array([r["found_nodular"] for r in own])
        right.scatter(peaks, found + np.random.default_rng(0).uniform(-0.05, 0.05, len(found)), s=10,
                      label=f"{s:g} mm")
    left.set(xlabel="PO diameter (mm)", ylabel="found as nodular", ylim=(-0.05, 1.05),
             title="detectability vs size (synthetic)")
    right.set(xlabel="peak HU after partial volume (truth)", ylabel="found (1) / missed (0)",
              title="detectability vs peak HU")
    left.legend()
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (created; files in it are replaced)")
    parser.add_argument("--slices", type=float, nargs="+", default=[1.0, 2.0, 5.0])
    parser.add_argument("--n-po", type=int, default=60)
    parser.add_argument("--seed", type=int, default=100)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for n, s in enumerate(args.slices):
            rows += measure(s, args.n_po, args.seed + n, Path(work))
    with open(out / "detectability.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = table(rows, args.slices)
    (out / "detectability.md").write_text(text, encoding="utf-8")
    plot(rows, args.slices, out / "detectability.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
