"""``dpo-score``: the command line over DPOScoringLib.

Exit codes: 0 success, 2 bad input (one line on stderr naming the file or field), 130 cancelled.
No traceback is ever shown for bad input.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from . import __version__
from .errors import DPOCancelled, DPOInputError
from .policy import DEF1_VARIANTS, DEF2_VARIANTS, DENDRIFORM_NODULE_VARIANTS, ScoringPolicy
from .safe_files import atomic_write_json, refuse_existing, to_json_text

EXIT_SOME_CASES_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130


def example_reading_path() -> Path:
    """A hand-written example reading shipped with the package (used by the docs and tests)."""
    return Path(str(resources.files("DPOScoringLib") / "examples" / "example-reading.json"))


def _add_policy_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scoring policy (spec section 5; defaults documented in the README)")
    group.add_argument("--def1", choices=DEF1_VARIANTS, default="default",
                       help="definition 1: default = bilateral and >= 10; total = >= 10")
    group.add_argument("--def2", choices=DEF2_VARIANTS, default="default",
                       help="definition 2: default = a lobe >= 5 and bilateral; lobe = a lobe >= 5; "
                            "each-lung = a right and a left lobe >= 5")
    group.add_argument("--dendriform-nodules", choices=DENDRIFORM_NODULE_VARIANTS, default="exclude",
                       help="nodular POs in a dendriform lobe: exclude (default) or count")


def _add_force_and_quiet(parser: argparse.ArgumentParser, force_help: str = "replace --out if it exists") -> None:
    parser.add_argument("--force", action="store_true", help=force_help)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _add_case_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``batch``: how lobes are made, who reads, the policy."""
    parser.add_argument("--lobe-method", choices=("fissures", "lungmask", "import"), default="fissures")
    parser.add_argument("--lobes-from", metavar="FILE", help="with --lobe-method import")
    parser.add_argument("--weights", metavar="DIR", help="lungmask's weight folder")
    parser.add_argument("--reader", help="reader ID recorded in the provenance")
    _add_policy_options(parser)


def _policy(args: argparse.Namespace) -> ScoringPolicy:
    return ScoringPolicy(def1=args.def1, def2=args.def2, dendriform_nodules=args.dendriform_nodules)


def _emit(document, out: str | None, force: bool, text_format: str = "json") -> None:
    if out:
        path = atomic_write_json(out, document, overwrite=force)
        print(f"wrote {path}", file=sys.stderr)
    elif text_format == "text":
        from .score_summary import text_report

        sys.stdout.write(text_report(document))
    else:
        sys.stdout.write(to_json_text(document))


def _cmd_tally(args: argparse.Namespace) -> int:
    from .reading import load_reading
    from .scoring import score_reading

    scores = score_reading(load_reading(args.reading), _policy(args))
    _emit(scores, args.out, args.force, args.format)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """The main job on a built-in example: a synthetic chest CT with known findings run through the
    whole pipeline (lobes, candidates, bundle, report), with a simulated reader who confirms the
    candidates that are true findings of the phantom and rejects the rest."""
    import json

    from .case_run import run_case
    from .phantom import PhantomSpec, generate_phantom, matches_truth, write_phantom
    from .progress import Progress
    from .score_summary import text_report

    folder = Path(args.out)
    if folder.exists() and any(folder.iterdir()) and not args.force:
        raise DPOInputError(str(folder), "is not empty; not overwritten (use --force to replace the demo)")
    folder.mkdir(parents=True, exist_ok=True)
    progress = Progress(_stderr_progress(args.quiet))
    print("building a synthetic chest CT (phantom) with known ossifications ...", file=sys.stderr)
    spec = PhantomSpec(fov_mm=(220.0, 180.0, 200.0), spacing=(0.8, 0.8, 1.0), seed=args.seed, n_po=30)
    paths = write_phantom(generate_phantom(spec, progress.sub(0.0, 0.4)), folder / "phantom")
    truth = json.loads(paths["truth"].read_text())

    def simulated_reader(document: dict) -> dict:
        statuses = {}
        for candidate in document["candidates"]:
            near = any(matches_truth(f, candidate["lps"]) for f in truth["findings"])
            statuses[candidate["id"]] = "confirmed" if near else "rejected"
        return statuses

    bundle = run_case(paths["ct"], folder / "bundle", reader="simulated reader (phantom truth)",
                      case_id=f"phantom-seed-{args.seed}", policy=_policy(args), overwrite=True,
                      decide=simulated_reader, progress=progress.sub(0.4, 1.0))
    scores = json.loads((bundle / "scores.json").read_text())
    sys.stdout.write(text_report(scores))
    print(f"\nreport: {bundle / 'report.html'}\nbundle: {bundle} (lobes, candidates, reading, scores, "
          f"provenance); phantom and its truth: {folder / 'phantom'}", file=sys.stderr)
    return 0


def _stderr_progress(quiet: bool):
    """A progress callback printing '[ 42%] message' lines to standard error."""
    if quiet:
        return None
    last = {"percent": -10}

    def report(fraction: float, message: str) -> None:
        percent = int(fraction * 100)
        if percent >= last["percent"] + 10 or percent == 100:
            last["percent"] = percent
            print(f"[{percent:3d}%] {message}", file=sys.stderr, flush=True)
    return report


def _cmd_detect(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .candidates import DetectionParams
    from .candidates_file import candidates_document, write_candidates
    from .pipeline import run_detection
    from .progress import Progress

    refuse_existing(args.out, args.force)  # before minutes of work, not after
    params = DetectionParams()
    overrides = {k: v for k, v in (("seed_hu", args.seed_hu), ("grow_hu", args.grow_hu)) if v is not None}
    if overrides:
        params = replace(params, **overrides)
    run = run_detection(args.ct, args.lobes, args.lungs, args.contrast, params, args.series_uid,
                        Progress(_stderr_progress(args.quiet)))
    document = candidates_document(run.ct, run.result, run.warnings, run.sources, run.lung_volumes_ml)
    write_candidates(args.out, document, overwrite=args.force)
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{len(run.result.candidates)} candidates written to {args.out}", file=sys.stderr)
    return 0


def _cmd_lobes(args: argparse.Namespace) -> int:
    from .ct_image import load_ct
    from .fissures import save_points
    from .lobe_pipeline import compute_lobes, write_lobes
    from .progress import Progress

    refuse_existing(args.out, args.force)
    ct = load_ct(args.ct)
    result = compute_lobes(ct, args.method, args.source, args.weights, args.points, args.device,
                           args.numbering, progress=Progress(_stderr_progress(args.quiet)))
    write_lobes(args.out, result.lobes, ct, overwrite=args.force)
    if args.points_out and result.points:
        save_points(args.points_out, result.points, overwrite=args.force)
    for warning in ct.warnings + result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    volumes = result.volumes_ml(ct.spacing)
    print("lobe volumes (ml): " + ", ".join(f"{code} {volume:g}" for code, volume in volumes.items()),
          file=sys.stderr)
    print(f"lobes ({result.method}) written to {args.out}", file=sys.stderr)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .case_run import run_case
    from .progress import Progress

    bundle = run_case(args.ct, args.out, args.lobe_method, args.lobes_from, args.weights, args.reader or "",
                      policy=_policy(args), overwrite=args.force, progress=Progress(_stderr_progress(args.quiet)))
    print(f"bundle written to {bundle}; report: {bundle / 'report.html'}", file=sys.stderr)
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from .batch import run_batch
    from .batch_memory import parse_size

    options = {"lobe_method": args.lobe_method, "lobe_source": args.lobes_from, "weights_dir": args.weights,
               "reader": args.reader or "", "policy": _policy(args)}
    rows = run_batch(args.input, args.out, args.workers, options,
                     report=lambda line: print(line, file=sys.stderr, flush=True), scheduler=args.scheduler,
                     memory_per_case=parse_size(args.memory_per_case), cpu_lobes=args.cpu_lobes)
    failed = [r["case_id"] for r in rows if r["status"].startswith("failed")]
    print(f"{len(rows) - len(failed)} of {len(rows)} cases scored; cohort table: {Path(args.out) / 'cohort.csv'}"
          + (f"; failed: {', '.join(failed)} (see batch.log)" if failed else ""), file=sys.stderr)
    return EXIT_SOME_CASES_FAILED if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpo-score",
        description="Score diffuse pulmonary ossification (DPO) on chest CT "
                    "(Egashira et al., Radiology 2017).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tally = commands.add_parser("tally", help="score a reading (dpo-reading/1 JSON) and print the scores")
    tally.add_argument("reading", metavar="READING.json")
    _add_policy_options(tally)
    tally.add_argument("--out", help="write the scores to this file instead of standard output")
    tally.add_argument("--force", action="store_true", help="replace --out if it exists")
    tally.add_argument("--format", choices=("json", "text"), default="json",
                       help="standard output as JSON (default) or a readable table")
    tally.set_defaults(run=_cmd_tally)

    detect = commands.add_parser("detect", help="find and measure ossification candidates in a CT")
    detect.add_argument("ct", metavar="CT", help="NRRD, NIfTI or MHA file, or a DICOM series folder")
    detect.add_argument("--out", required=True, help="the dpo-candidates/1 JSON file to write")
    detect.add_argument("--lobes", metavar="LABELMAP", help="lobe label map, values 1-6 of the spec")
    detect.add_argument("--lungs", metavar="LABELMAP", help="lung label map, 1 right 2 left "
                        "(default: computed without learned weights)")
    detect.add_argument("--contrast", choices=("auto", "on", "off"), default="auto",
                        help="contrast-enhanced study: detect it (default), or say so")
    detect.add_argument("--series-uid", help="DICOM SeriesInstanceUID to read (default: most slices)")
    detect.add_argument("--seed-hu", type=float, help="peak threshold in HU (default 300)")
    detect.add_argument("--grow-hu", type=float, help="extent threshold in HU (default 100)")
    _add_force_and_quiet(detect)
    detect.set_defaults(run=_cmd_detect)

    lobes = commands.add_parser("lobes", help="segment the six lobes (the lingula separate)")
    lobes.add_argument("ct", metavar="CT")
    lobes.add_argument("--method", choices=("fissures", "lungmask", "import"), default="fissures",
                       help="fissures: no weights, movable points (default); lungmask: LTRCLobes+R231; "
                            "import: a lobe file (--from)")
    lobes.add_argument("--from", dest="source", metavar="FILE",
                       help="with import: a label map, .seg.nrrd or TotalSegmentator folder")
    lobes.add_argument("--numbering", choices=("auto", "dpo"), default="auto",
                       help="label values 1-5 are lungmask's unless 'dpo'")
    lobes.add_argument("--weights", metavar="DIR", help="folder holding lungmask's weight files")
    lobes.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    lobes.add_argument("--points", metavar="JSON", help="fissure control points (dpo-fissure-points/1)")
    lobes.add_argument("--points-out", metavar="JSON", help="write the control points used")
    lobes.add_argument("--out", required=True, help="label map (values 1-6) or .seg.nrrd")
    _add_force_and_quiet(lobes)
    lobes.set_defaults(run=_cmd_lobes)

    run = commands.add_parser("run", help="the whole pipeline for one CT: lobes, candidates, bundle and report")
    run.add_argument("ct", metavar="CT")
    run.add_argument("--out", required=True, help="the case bundle folder to write")
    _add_case_options(run)
    _add_force_and_quiet(run, "replace an existing bundle")
    run.set_defaults(run=_cmd_run)

    batch = commands.add_parser("batch", help="score a folder of CTs or a CSV manifest, one bundle per case")
    batch.add_argument("input", metavar="INPUT", help="folder of CTs, or CSV with case_id, path (+ columns)")
    batch.add_argument("--out", required=True, help="folder for the bundles, cohort.csv and batch.log")
    batch.add_argument("--workers", type=int, default=1,
                       help="worker processes of the local Dask cluster (ignored with --scheduler)")
    batch.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on this Dask cluster, e.g. tcp://node:8786 (Docs/cluster.md)")
    batch.add_argument("--memory-per-case", default="auto", metavar="SIZE",
                       help="memory a case needs, e.g. 6GB (default auto: from the volume size)")
    batch.add_argument("--cpu-lobes", choices=("wait", "fissures"), default="wait",
                       help="with lungmask and GPU workers: CPU-only workers wait (default) or use fissures")
    _add_case_options(batch)
    batch.set_defaults(run=_cmd_batch)

    demo = commands.add_parser("demo", help="run the pipeline on a built-in synthetic chest CT and score it")
    _add_policy_options(demo)
    demo.add_argument("--out", default="demo-output",
                      help="folder for the demo's files (default: demo-output)")
    demo.add_argument("--seed", type=int, default=7, help="phantom random seed")
    _add_force_and_quiet(demo, "replace the files of an earlier demo")
    demo.set_defaults(run=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except DPOInputError as error:
        print(f"dpo-score: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (DPOCancelled, KeyboardInterrupt):
        print("dpo-score: cancelled", file=sys.stderr)
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
