"""``dpo-score``: the command line over DPOScoringLib.

Exit codes: 0 success, 2 bad input (one line on stderr naming the file or field), 130 cancelled.
No traceback is ever shown for bad input.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from .. import __version__
from ..common.errors import DPOCancelled, DPOInputError
from ..common.safe_files import (
    atomic_write_json,
    check_output_file,
    check_output_folder,
    expected_label_map_bytes,
    to_json_text,
)
from ..rules.policy import DEF1_VARIANTS, DEF2_VARIANTS, DENDRIFORM_NODULE_VARIANTS, ScoringPolicy
from .cli_validation import (
    CT_HELP,
    GROW_HU_RANGE,
    RANDOM_SEED_RANGE,
    SEED_HU_RANGE,
    WORKERS_RANGE,
    OneLineParser,
    finite_float,
    int_in,
    non_empty_text,
    parse_checked,
)

# Expected output sizes for the free-space check before work, with a wide margin over what the demo
# writes (measured: its candidates file 19 KB, the whole demo folder 15.6 MB); a label map is
# estimated from its voxels (safe_files.expected_label_map_bytes).
CANDIDATES_FILE_BYTES = 2 * 1024 * 1024

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


LOBE_METHOD_HELP = ("how the lobes are made: fissures = from the lung shape with movable fissure points, no "
                    "learned weights; lungmask = the LTRCLobes and R231 networks (needs their weights); "
                    "import = read a lobe file")
LOBE_SOURCE_HELP = ("the lobe file to import: a label map (values 1-6, or lungmask's 1-5, or TotalSegmentator's "
                    "10-14), a Slicer .seg.nrrd, or a TotalSegmentator output folder")
WEIGHTS_HELP = ("folder holding lungmask's two weight files (also searched: $DPO_LUNGMASK_WEIGHTS and "
                "torch's cache, $TORCH_HOME/hub/checkpoints)")


def _add_case_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``batch``: how lobes are made, who reads, the policy."""
    parser.add_argument("--lobe-method", choices=("fissures", "lungmask", "import"), default="fissures",
                        help=LOBE_METHOD_HELP + " (default: %(default)s)")
    parser.add_argument("--lobes-from", metavar="FILE", help=LOBE_SOURCE_HELP + " (only with --lobe-method import)")
    parser.add_argument("--weights", metavar="DIR", help=WEIGHTS_HELP + " (only with --lobe-method lungmask)")
    parser.add_argument("--reader", type=non_empty_text, metavar="ID", help="reader ID recorded in the provenance")
    parser.add_argument("--dicom-out", action="store_true",
                        help="also write lobes.dcm (DICOM SEG) and findings.dcm (DICOM SR TID 1500) into the "
                             "bundle; DICOM series input only; needs the 'dicom' extra (highdicom)")
    _add_policy_options(parser)


def _policy(args: argparse.Namespace) -> ScoringPolicy:
    return ScoringPolicy(def1=args.def1, def2=args.def2, dendriform_nodules=args.dendriform_nodules)


def _emit(document, out: str | None, force: bool, text_format: str = "json") -> None:
    if out:
        path = atomic_write_json(out, document, overwrite=force)
        print(f"wrote {path}", file=sys.stderr)
    elif text_format == "text":
        from ..rules.score_summary import text_report

        sys.stdout.write(text_report(document))
    else:
        sys.stdout.write(to_json_text(document))


def _refuse_other_documents(path: str) -> None:
    """A file of another kind (a candidates file, a bundle's scores) gets a message saying what it is."""
    from ..rules.reading import load_json_file

    document = load_json_file(path, "reading file")
    schema = document.get("schema") if isinstance(document, dict) else None
    if isinstance(schema, str) and schema.startswith("dpo-candidates/"):
        raise DPOInputError(path, f"is a candidates file ({schema}), not a reading; review it in Slicer or use "
                            "'dpo-score run', whose bundle holds reading.json")
    if isinstance(schema, str) and schema.startswith("dpo-scores/"):
        raise DPOInputError(path, f"is a scores file ({schema}: the output of tally, or a bundle's scores.json), "
                            "not a reading")


def _cmd_tally(args: argparse.Namespace) -> int:
    from ..rules.reading import load_reading
    from ..rules.scoring import score_reading

    if args.out:
        check_output_file(args.out, args.force)
    _refuse_other_documents(args.reading)
    scores = score_reading(load_reading(args.reading), _policy(args))
    _emit(scores, args.out, args.force, args.format)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """The main job on a built-in example (see demo.py)."""
    from .demo import run_demo

    run_demo(args.out, args.seed, _policy(args), force=args.force, quiet=args.quiet)
    return 0


def _stderr_progress(quiet: bool):
    """A progress callback printing '[ 42%] stage: message' lines to standard error."""
    from ..common.progress import line_printer

    return line_printer(quiet)


def _cmd_detect(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..common.progress import Progress
    from ..detection.candidates import DetectionParams
    from ..detection.candidates_file import candidates_document, write_candidates
    from ..detection.pipeline import run_detection

    check_output_file(args.out, args.force, CANDIDATES_FILE_BYTES)  # before minutes of work, not after
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
    from ..common.progress import Progress
    from ..ct.ct_image import load_ct
    from ..lobes.fissures import save_points
    from ..lobes.lobe_pipeline import compute_lobes, write_lobes

    check_output_file(args.out, args.force)  # before minutes of work, not after
    if args.points_out:
        check_output_file(args.points_out, args.force)
    ct = load_ct(args.ct)
    check_output_file(args.out, args.force, expected_label_map_bytes(ct.array.size))
    lungs = None
    if args.lungs:
        from ..ct.label_maps import LUNG_VALUES, load_label_map

        lungs = load_label_map(args.lungs, ct, "--lungs", LUNG_VALUES)
    result = compute_lobes(ct, args.method, args.source, args.weights, args.points, args.device,
                           args.numbering, lungs=lungs, progress=Progress(_stderr_progress(args.quiet)),
                           download=True if args.download_weights else None)
    write_lobes(args.out, result.lobes, ct, overwrite=args.force)
    if args.points_out and result.points:
        save_points(args.points_out, result.points, overwrite=args.force)
    for warning in ct.warnings + result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    volumes = result.volumes_ml(ct.spacing)
    print("lobe volumes (ml): " + ", ".join(f"{code} {volume:g}" for code, volume in volumes.items()),
          file=sys.stderr)
    confidence = result.fissure_confidence()
    if confidence:
        print("fissures supported by the image: " + ", ".join(f"{name} {share:.0%}" for name, share in
                                                              confidence.items()), file=sys.stderr)
    print(f"lobes ({result.method}) written to {args.out}", file=sys.stderr)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from ..audit.case_run import run_case
    from ..common.progress import Progress

    bundle = run_case(args.ct, args.out, args.lobe_method, args.lobes_from, args.weights, args.reader or "",
                      policy=_policy(args), overwrite=args.force, progress=Progress(_stderr_progress(args.quiet)),
                      dicom_out=args.dicom_out)
    if not args.quiet:  # the same closing summary as the demo's
        import json

        from ..rules.score_summary import closing_summary

        scores, reading = (json.loads((bundle / name).read_text(encoding="utf-8")) for name in ("scores.json",
                                                                                                "reading.json"))
        sys.stdout.write(closing_summary(scores, reading, str(bundle)))
        print(f"bundle written to {bundle}; report: {bundle / 'report.html'}", file=sys.stderr)
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from ..audit.batch import run_batch
    from ..audit.batch_manifest import read_cases
    from ..audit.batch_memory import parse_size

    read_cases(args.input)  # a refused manifest leaves nothing behind: checked before --out is made
    check_output_folder(args.out, overwrite=False, reuse=True)  # an existing --out is a batch to resume
    options = {"lobe_method": args.lobe_method, "lobe_source": args.lobes_from, "weights_dir": args.weights,
               "reader": args.reader or "", "policy": _policy(args)}
    if args.dicom_out:
        from ..audit.dicom_export import require_highdicom

        require_highdicom("--dicom-out")  # each case's input is checked when its turn comes
        options["dicom_out"] = True
    rows = run_batch(args.input, args.out, args.workers, options,
                     report=lambda line: print(line, file=sys.stderr, flush=True), scheduler=args.scheduler,
                     memory_per_case=parse_size(args.memory_per_case), cpu_lobes=args.cpu_lobes)
    failed = [r["case_id"] for r in rows if r["status"].startswith("failed")]
    print(f"{len(rows) - len(failed)} of {len(rows)} cases scored; cohort table: {Path(args.out) / 'cohort.csv'}"
          + (f"; failed: {', '.join(failed)} (see batch.log)" if failed else ""), file=sys.stderr)
    return EXIT_SOME_CASES_FAILED if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="dpo-score",
        description="Score diffuse pulmonary ossification (DPO) on chest CT "
                    "(Egashira et al., Radiology 2017).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tally = commands.add_parser("tally", help="score a reading (dpo-reading/1 JSON) and print the scores")
    tally.add_argument("reading", metavar="READING.json", help="a reading (dpo-reading/1 JSON), e.g. a bundle's "
                       "reading.json")
    _add_policy_options(tally)
    tally.add_argument("--out", metavar="FILE", help="write the scores to this file instead of standard output")
    tally.add_argument("--force", action="store_true", help="replace --out if it exists")
    tally.add_argument("--format", choices=("json", "text"), default="json",
                       help="standard output as JSON or a readable table (default: %(default)s)")
    tally.set_defaults(run=_cmd_tally)

    detect = commands.add_parser("detect", help="find and measure ossification candidates in a CT")
    detect.add_argument("ct", metavar="CT", help=CT_HELP)
    detect.add_argument("--out", required=True, metavar="FILE", help="the candidates file to write (dpo-candidates/1 "
                        "JSON)")
    detect.add_argument("--lobes", metavar="LABELMAP", help="lobe label map, values 1-6 of the spec")
    detect.add_argument("--lungs", metavar="LABELMAP", help="lung label map, 1 right 2 left "
                        "(default: computed without learned weights)")
    detect.add_argument("--contrast", choices=("auto", "on", "off"), default="auto",
                        help="contrast-enhanced study: auto = detect it from the CT (default); on/off = say "
                             "so")
    detect.add_argument("--series-uid", metavar="UID", help="DICOM SeriesInstanceUID to read (default: most slices)")
    detect.add_argument("--seed-hu", type=finite_float(*SEED_HU_RANGE), metavar="HU",
                        help=f"a candidate's peak must reach this (default 300 HU; {SEED_HU_RANGE[0]:g}-"
                             f"{SEED_HU_RANGE[1]:g})")
    detect.add_argument("--grow-hu", type=finite_float(*GROW_HU_RANGE), metavar="HU",
                        help=f"a candidate's extent: voxels at or above this (default 100 HU; {GROW_HU_RANGE[0]:g}-"
                             f"{GROW_HU_RANGE[1]:g}, below --seed-hu)")
    _add_force_and_quiet(detect)
    detect.set_defaults(run=_cmd_detect)

    lobes = commands.add_parser("lobes", help="segment the six lobes (the lingula separate)")
    lobes.add_argument("ct", metavar="CT", help=CT_HELP)
    lobes.add_argument("--method", choices=("fissures", "lungmask", "import"), default="fissures",
                       help=LOBE_METHOD_HELP + " (--from) (default: %(default)s)")
    lobes.add_argument("--from", dest="source", metavar="FILE",
                       help=LOBE_SOURCE_HELP + " (only with --method import)")
    lobes.add_argument("--numbering", choices=("auto", "dpo"), default="auto",
                       help="how an imported label map with values 1-5 only is read: auto = as lungmask's "
                            "LTRCLobes numbering (1 LUL with lingula, 2 LLL, 3 RUL, 4 RML, 5 RLL); dpo = as this "
                            "tool's numbering with the lingula (6) absent (default: %(default)s)")
    lobes.add_argument("--weights", metavar="DIR", help=WEIGHTS_HELP + " (only with --method lungmask)")
    lobes.add_argument("--download-weights", action="store_true",
                       help="lungmask: download missing weights into torch's cache (also DPO_LUNGMASK_DOWNLOAD=1)")
    lobes.add_argument("--lungs", metavar="LABELMAP", help="fissures: lung label map (1 right, 2 left) to use "
                       "instead of the built-in lung mask")
    lobes.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                       help="where lungmask runs: auto = a GPU when torch sees one, else the CPU; cpu; gpu "
                            "(default: %(default)s)")
    lobes.add_argument("--points", metavar="JSON", help="fissure control points to use (dpo-fissure-points/1; "
                       "default: placed from the lung shape)")
    lobes.add_argument("--points-out", metavar="JSON", help="write the fissure control points used to this file")
    lobes.add_argument("--out", required=True, metavar="FILE",
                       help="the lobe file to write: a label map (values 1-6 of the spec) or, when the name ends "
                            "in .seg.nrrd, a Slicer segmentation")
    _add_force_and_quiet(lobes)
    lobes.set_defaults(run=_cmd_lobes)

    run = commands.add_parser("run", help="the whole pipeline for one CT: lobes, candidates, bundle and report")
    run.add_argument("ct", metavar="CT", help=CT_HELP)
    run.add_argument("--out", required=True, metavar="FOLDER", help="the case bundle folder to write (must not "
                     "exist or be empty, unless --force)")
    _add_case_options(run)
    _add_force_and_quiet(run, "replace an existing bundle")
    run.set_defaults(run=_cmd_run)

    batch = commands.add_parser("batch", help="score a folder of CTs or a CSV manifest, one bundle per case")
    batch.add_argument("input", metavar="INPUT", help="a folder of CTs (files and DICOM folders; the case_id is "
                       "the name without extension), or a CSV manifest with the columns case_id (a name: letters, "
                       "digits, '.', '_', '-') and path (relative to the manifest), extra columns copied to "
                       "cohort.csv")
    batch.add_argument("--out", required=True, metavar="FOLDER",
                       help="folder for the bundles, cohort.csv and batch.log (an existing one is resumed)")
    batch.add_argument("--workers", type=int_in(*WORKERS_RANGE), default=1, metavar="N",
                       help="cases scored at once on the local Dask cluster, each in its own process (ignored "
                            "with --scheduler) (default: %(default)s)")
    batch.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on this existing Dask cluster, e.g. tcp://node:8786 (Docs/cluster.md; default: a "
                            "local cluster on this machine)")
    batch.add_argument("--memory-per-case", default="auto", metavar="SIZE",
                       help="memory one case needs, e.g. 6GB; auto = from the volume's size (default: %(default)s)")
    batch.add_argument("--cpu-lobes", choices=("wait", "fissures"), default="wait",
                       help="with --lobe-method lungmask and GPU workers: CPU-only workers wait for a GPU worker, or "
                            "score with the fissure method instead (default: %(default)s)")
    _add_case_options(batch)
    batch.set_defaults(run=_cmd_batch)

    demo = commands.add_parser("demo", help="run the pipeline on a built-in synthetic chest CT and score it")
    _add_policy_options(demo)
    demo.add_argument("--out", default="demo-output", metavar="FOLDER",
                      help="folder for the demo's files (default: demo-output)")
    demo.add_argument("--seed", type=int_in(*RANDOM_SEED_RANGE), default=7, metavar="N",
                      help="random seed of the synthetic CT (0 to 2**32-1; default: %(default)s)")
    _add_force_and_quiet(demo, "also write into a non-empty folder that is not an earlier demo's "
                         "(an earlier demo's folder is replaced without it)")
    demo.set_defaults(run=_cmd_demo)

    from ..cohort.cohort_cli import add_cohort_command  # `cohort` and `cohort sample`: parsers and handler live there

    add_cohort_command(commands)
    return parser


def _input_of(args: argparse.Namespace) -> str:
    """The command's input file, for a message that must name it."""
    for name in ("reading", "ct", "input"):
        if getattr(args, name, None):
            return str(getattr(args, name))
    return "input"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_checked(parser, argv)
    try:
        return args.run(args)
    except DPOInputError as error:
        print(f"dpo-score: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RecursionError:  # json.loads on thousands of nested brackets
        print(f"dpo-score: error: {_input_of(args)}: is nested too deeply to be read (a damaged or hostile file?)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:  # a read or write the checks before work could not foresee
        where = error.filename or _input_of(args)
        print(f"dpo-score: error: {where}: {error.strerror or error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (DPOCancelled, KeyboardInterrupt):
        print("dpo-score: cancelled", file=sys.stderr)
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
