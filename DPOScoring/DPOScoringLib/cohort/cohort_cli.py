"""``dpo-score cohort``: the paper's statistics from a batch's cohort table, and a reproducible
random sample of cases for a second reader.

    dpo-score cohort COHORT.csv --group COLUMN [--reference LEVEL] [--second-reader COHORT2.csv] --out DIR
    dpo-score cohort sample COHORT.csv --n 100 --stratify COLUMN --seed N [--out FILE]

This module imports nothing heavy at load time: ``cli.py`` registers the command through
:func:`add_cohort_command`, and scipy/statsmodels/matplotlib load only when the command runs.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from ..common.errors import DPOInputError

SAMPLER = "numpy.random.RandomState (Mersenne Twister MT19937; its stream is frozen by numpy's policy)"


def add_cohort_command(commands) -> None:
    """Register ``cohort`` on the ``dpo-score`` subparsers; its own parsers read the rest."""
    cohort = commands.add_parser("cohort", add_help=False, prefix_chars="\0",
                                 help="cohort statistics as in the paper (Tables 1-4) from cohort.csv; "
                                      "'cohort sample' draws cases for a second reader")
    cohort.add_argument("arguments", nargs=argparse.REMAINDER, metavar="...",
                        help="COHORT.csv --group COLUMN ... or 'sample COHORT.csv --n N ...': see "
                             "'dpo-score cohort --help' and 'dpo-score cohort sample --help'")
    cohort.set_defaults(run=lambda args: run(args.arguments))


def analysis_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpo-score cohort", description=(
        "Statistics of a cohort table (the cohort.csv of dpo-score batch; manifest columns such as diagnosis, "
        "sex, ever_smoker, honeycombing, emphysema, calcified_granuloma, biopsy_ossification, age carry through): "
        "stats.json (dpo-cohort-stats/1), tables.html (Tables 1-4 and the threshold figure), tables.md. "
        "'dpo-score cohort sample --help' for the second-reader sample."))
    parser.add_argument("cohort", metavar="COHORT.csv")
    parser.add_argument("--group", required=True, metavar="COLUMN", help="the column whose levels are compared "
                        "(e.g. diagnosis)")
    parser.add_argument("--reference", metavar="LEVEL", help="the level compared with the others (e.g. IPF; "
                        "default: the most frequent level)")
    parser.add_argument("--second-reader", metavar="COHORT2.csv", help="a second reader's cohort table of (some "
                        "of) the same cases, matched by case_id")
    parser.add_argument("--predictors", metavar="A,B,...", help="candidates of the multivariate logistic model "
                        "(default: every covariate and dpo_def1)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for stats.json, tables.html, tables.md")
    parser.add_argument("--force", action="store_true", help="replace the files of an earlier run in --out")
    return parser


def sample_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpo-score cohort sample", description=(
        "A reproducible stratified random sample of scored cases (e.g. 100 for a second reader, as the paper): "
        f"proportional allocation (largest remainder), drawn with {SAMPLER}. Writes case_id,stratum as CSV."))
    parser.add_argument("cohort", metavar="COHORT.csv")
    parser.add_argument("--n", type=int, required=True, help="number of cases to draw")
    parser.add_argument("--stratify", metavar="COLUMN", help="keep the proportions of this column's levels")
    parser.add_argument("--seed", type=int, required=True, help="random seed (record it in your methods)")
    parser.add_argument("--out", metavar="FILE", help="also write the list to this CSV file")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    return parser


def run(arguments: list) -> int:
    if arguments and arguments[0] == "sample":
        return run_sample(sample_parser().parse_args(arguments[1:]))
    return run_analysis(analysis_parser().parse_args(arguments))


def _check_out_folder(out: Path, force: bool, names: list) -> None:
    if out.exists() and not out.is_dir():
        raise DPOInputError(f"--out {out}", "exists and is not a folder")
    if out.is_dir() and not force:
        existing = [n for n in names if (out / n).exists()]
        if existing:
            raise DPOInputError(f"--out {out}", f"already holds {', '.join(existing)}; not overwritten "
                                                "(use --force to replace them)")


def run_analysis(args: argparse.Namespace) -> int:
    from ..common.safe_files import atomic_write_bytes, to_json_text
    from .cohort_analysis import analyse, read_second_reader
    from .cohort_report import render_html, render_markdown, threshold_figure
    from .cohort_table import load_cohort

    out = Path(args.out)
    names = ["stats.json", "tables.html", "tables.md", "threshold-curve.png"]
    _check_out_folder(out, args.force, names)  # before the work, not after
    table = load_cohort(args.cohort, args.group, args.reference)
    second = read_second_reader(args.second_reader) if args.second_reader else None
    predictors = [p.strip() for p in args.predictors.split(",") if p.strip()] if args.predictors else None
    print(f"cohort: {table.n} cases, {args.group}: "
          + ", ".join(f"{lv} {table.group.count(lv)}" for lv in table.levels) + f"; reference {table.reference}",
          file=sys.stderr)
    document = analyse(table, predictors, second)
    figure = threshold_figure(document)
    files = {"stats.json": to_json_text(document).encode("utf-8"),
             "tables.html": render_html(document, figure).encode("utf-8"),
             "tables.md": render_markdown(document).encode("utf-8")}
    if figure:
        files["threshold-curve.png"] = figure["png_bytes"]
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        atomic_write_bytes(out / name, data, overwrite=args.force)
    print(f"{len(document['analyses'])} analyses written to {out / 'stats.json'}; tables: {out / 'tables.html'}",
          file=sys.stderr)
    return 0


def allocate(sizes: dict, n: int) -> dict:
    """Proportional allocation by largest remainder (ties: larger stratum, then name)."""
    total = sum(sizes.values())
    quotas = {k: n * v / total for k, v in sizes.items()}
    counts = {k: int(q) for k, q in quotas.items()}
    order = sorted(sizes, key=lambda k: (-(quotas[k] - counts[k]), -sizes[k], k))
    for k in order[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def draw_sample(rows: list, n: int, stratify, seed: int) -> list:
    """[(case_id, stratum)] of n cases; strata in name order, case ids sorted within each, so the
    sample depends on the cases and the seed only, not on the row order of the file."""
    import numpy as np

    strata = {}
    for row in rows:
        strata.setdefault(row[stratify].strip() if stratify else "all", []).append(row["case_id"])
    counts = allocate({k: len(v) for k, v in strata.items()}, n)
    rng = np.random.RandomState(seed)
    chosen = []
    for stratum in sorted(strata):
        ids = sorted(strata[stratum])
        picks = rng.choice(len(ids), size=counts[stratum], replace=False)
        chosen += [(ids[i], stratum) for i in sorted(picks)]
    return chosen


def run_sample(args: argparse.Namespace) -> int:
    from ..common.safe_files import atomic_write_bytes, refuse_existing
    from .cohort_table import DONE_STATUSES, read_rows

    if args.out:
        refuse_existing(args.out, args.force)
    rows = read_rows(args.cohort)
    if args.stratify and args.stratify not in rows[0]:
        raise DPOInputError(f"--stratify {args.stratify}", f"no such column in {args.cohort}")
    rows = [r for r in rows if "status" not in r or r["status"].strip() in DONE_STATUSES]
    for row in rows:
        if args.stratify and not row[args.stratify].strip():
            raise DPOInputError(f"{args.cohort}: case {row['case_id']}", f"has no {args.stratify}; cannot stratify")
    if args.n < 1 or args.n > len(rows):
        raise DPOInputError(f"--n {args.n}", f"must be between 1 and the {len(rows)} scored cases")
    chosen = draw_sample(rows, args.n, args.stratify, args.seed)
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["case_id", "stratum"])
    writer.writerows(chosen)
    if args.out:
        atomic_write_bytes(args.out, stream.getvalue().encode("utf-8"), overwrite=args.force)
    sys.stdout.write(stream.getvalue())
    per = {}
    for _, stratum in chosen:
        per[stratum] = per.get(stratum, 0) + 1
    print(f"sampled {len(chosen)} of {len(rows)} scored cases"
          + (f", stratified by {args.stratify} (" + ", ".join(f"{k} {v}" for k, v in per.items()) + ")"
             if args.stratify else "") + f"; {SAMPLER}, seed {args.seed}", file=sys.stderr)
    return 0
