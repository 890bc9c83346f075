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
