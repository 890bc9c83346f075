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
from .safe_files import atomic_write_json, to_json_text

EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130


def example_reading_path() -> Path:
    return Path(str(resources.files("DPOScoringLib") / "examples" / "example-reading.json"))


def _add_policy_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scoring policy (spec section 5; defaults in bold in the docs)")
    group.add_argument("--def1", choices=DEF1_VARIANTS, default="default",
                       help="definition 1: default = bilateral and >= 10; total = >= 10")
    group.add_argument("--def2", choices=DEF2_VARIANTS, default="default",
                       help="definition 2: default = a lobe >= 5 and bilateral; lobe = a lobe >= 5; "
                            "each-lung = a right and a left lobe >= 5")
    group.add_argument("--dendriform-nodules", choices=DENDRIFORM_NODULE_VARIANTS, default="exclude",
                       help="nodular POs in a dendriform lobe: exclude (default) or count")


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
    from .reading import load_reading
    from .scoring import score_reading

    path = example_reading_path()
    scores = score_reading(load_reading(path), _policy(args))
    print(f"example reading: {path}", file=sys.stderr)
    _emit(scores, args.out, args.force)
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

    if Path(args.out).exists() and not args.force:
        raise DPOInputError(args.out, "already exists; not overwritten (use --force to replace it)")
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
    detect.add_argument("--grow-hu", type=float, help="extent threshold in HU (default 150)")
    detect.add_argument("--force", action="store_true", help="replace --out if it exists")
    detect.add_argument("--quiet", action="store_true", help="no progress lines")
    detect.set_defaults(run=_cmd_detect)

    demo = commands.add_parser("demo", help="score the built-in example reading")
    _add_policy_options(demo)
    demo.add_argument("--out", help="write the scores to this file instead of standard output")
    demo.add_argument("--force", action="store_true", help="replace --out if it exists")
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
