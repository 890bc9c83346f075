"""Lung masks and detect candidates of this checkout against an earlier revision, case by case.

For a change meant to keep results (a speed-up), run:

    python benchmarks/lung_mask_regression.py --before <git revision>

The earlier revision's ``DPOScoring/`` is extracted with ``git archive`` into the work folder, and
both versions run in their own process on the same files: the real CTs in ../shared/data and
phantoms written once with this checkout's generator (the scanner and anatomy variants of
``phantom_scanner.SCANNER_VARIANTS`` and the fibrosis preset at 1 and 2 mm). Compared per case:
the lung labels (identical, or Dice of each lung), the airway mask, the volumes and warnings, and
on the real CTs and the 2 mm fibrosis phantom the `detect` path's candidates, exclusions,
warnings and contrast judgement. Exit status 1 when a lung's Dice is below ``--min-dice``
(0.999) or any candidate changed; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DETECT_CASES = ("fibrosis-2mm",)  # phantoms on which the detect path runs too (and every real CT)


def phantom_cases(folder: Path) -> dict:
    """Write the phantoms once (this checkout's generator) and return name -> CT path."""
    sys.path.insert(0, str(REPO / "DPOScoring"))
    from DPOScoringLib.synthetic.phantom import PHANTOM_FILES, PhantomSpec, generate_phantom, write_phantom
    from DPOScoringLib.synthetic.phantom_scanner import SCANNER_VARIANTS

    specs = {f"variant-{name}": PhantomSpec.fibrosis_preset((0.8, 0.8, 2.0), n_po=12, n_po_clusters=1, **options)
             for name, options in SCANNER_VARIANTS.items()}
    specs["fibrosis-2mm"] = PhantomSpec.fibrosis_preset((0.8, 0.8, 2.0), seed=12)
    specs["fibrosis-1mm"] = PhantomSpec.fibrosis_preset((0.8, 0.8, 1.0), seed=11)
    paths = {}
    for name, spec in specs.items():
        if not (folder / name / PHANTOM_FILES["ct"]).is_file():
            print(f"writing phantom {name} ...", file=sys.stderr)
            write_phantom(generate_phantom(spec), folder / name)
        paths[name] = folder / name / PHANTOM_FILES["ct"]
    return paths


def worker(cases: dict, out: Path) -> None:
    """Run in a process whose PYTHONPATH holds the version under test."""
    from DPOScoringLib.ct.ct_image import load_ct
    from DPOScoringLib.ct.lung_mask import segment_lungs
    from DPOScoringLib.detection.pipeline import detect_on_ct

    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name, entry in cases.items():
        ct = load_ct(entry["path"])
        started = time.perf_counter()
        mask = segment_lungs(ct.array, ct.spacing, ct.image.GetOrigin()[0])
        record = {"mask_s": round(time.perf_counter() - started, 2), "volumes": mask.volumes_ml,
                  "warnings": mask.warnings, "carina": mask.carina_slice,
                  "labels_md5": hashlib.md5(mask.labels.tobytes()).hexdigest(),
                  "airways_md5": hashlib.md5(mask.airways.tobytes()).hexdigest()}
        np.savez_compressed(out / f"{name}.npz", labels=mask.labels)
        if entry["detect"]:
            started = time.perf_counter()
            run = detect_on_ct(ct, None, None, None)
            record["detect_s"] = round(time.perf_counter() - started, 2)
            record["detect"] = {
                "warnings": run.warnings, "sources": run.sources, "volumes": run.lung_volumes_ml,
                "excluded": run.result.excluded,
                "candidates": [{"id": c.id, "kind": c.kind, "lung": c.lung, "lps": [round(v, 2) for v in c.lps],
                                "short_axis_mm": round(c.short_axis_mm, 2), "long_axis_mm": round(c.long_axis_mm, 2),
                                "peak_hu": round(float(c.peak_hu), 1), "zone": c.zone,
                                "distance_to_pleura_mm": round(c.distance_to_pleura_mm, 2)}
                               for c in run.result.candidates]}
        summary[name] = record
        print(f"  {name}: lung mask {record['mask_s']} s", file=sys.stderr, flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")


def run_version(code: Path, cases: dict, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code / "DPOScoring"))
    job = out.with_suffix(".cases.json")
    job.write_text(json.dumps({name: {"path": str(e["path"]), "detect": e["detect"]} for name, e in cases.items()}),
                   encoding="utf-8")
    subprocess.run([sys.executable, __file__, "--worker", str(job), str(out)], env=env, check=True)
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def compare(before: dict, after: dict, before_dir: Path, after_dir: Path, min_dice: float) -> bool:
    ok = True
    for name in after:
        b, a = before[name], after[name]
        if b["labels_md5"] == a["labels_md5"]:
            masks = "identical"
        else:
            lb, la = np.load(before_dir / f"{name}.npz")["labels"], np.load(after_dir / f"{name}.npz")["labels"]
            dices = [dice(lb == label, la == label) for label in (1, 2)]
            masks = "Dice right {:.5f} left {:.5f}".format(*dices)
            ok &= min(dices) >= min_dice
        same = {key: b[key] == a[key] for key in ("airways_md5", "volumes", "warnings", "carina")}
        line = (f"{name}: lungs {masks}; airways {'same' if same['airways_md5'] else 'DIFFER'}; "
                f"volumes {a['volumes']}{'' if same['volumes'] else ' (were ' + str(b['volumes']) + ')'}; "
                f"warnings {'same' if same['warnings'] and same['carina'] else 'DIFFER'}; "
                f"lung mask {b['mask_s']} s -> {a['mask_s']} s")
        if "detect" in a:
            unchanged = a["detect"] == b.get("detect")
            ok &= unchanged
            line += (f"; detect: {len(a['detect']['candidates'])} candidates, "
                     f"{'unchanged' if unchanged else 'CHANGED'} ({b['detect_s']} s -> {a['detect_s']} s)")
        print(line)
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision to compare with (e.g. a commit before the change)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="folder of real CTs")
    parser.add_argument("--work", type=Path, help="folder for phantoms and results (kept; default: temporary)")
    parser.add_argument("--min-dice", type=float, default=0.999)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        job = json.loads(Path(args.worker[0]).read_text(encoding="utf-8"))
        worker(job, Path(args.worker[1]))
        return 0
    if not args.before:
        parser.error("--before REVISION is required")
    work = args.work or Path(tempfile.mkdtemp(prefix="lung-regression-"))
    code = work / "before-code"
    code.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before, "DPOScoring"], capture_output=True)
    if archive.returncode:
        print(f"--before: {archive.stderr.decode().strip()}", file=sys.stderr)
        return 2
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
    real = sorted(p for p in args.data.glob("*") if p.name.endswith((".nii.gz", ".mha", ".nrrd")))
    cases = {p.name: {"path": p, "detect": True} for p in real}
    cases.update({name: {"path": path, "detect": name in DETECT_CASES}
                  for name, path in phantom_cases(work / "phantoms").items()})
    print(f"{args.before} ...", file=sys.stderr)
    before = run_version(code, cases, work / "before")
    print("this checkout ...", file=sys.stderr)
    after = run_version(REPO, cases, work / "after")
    ok = compare(before, after, work / "before", work / "after", args.min_dice)
    print(f"unchanged (within Dice {args.min_dice:g})" if ok else "CHANGED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
