"""Option checking for ``dpo-score``: every value is checked by the parser (type, range, NaN,
relations between options), and every refusal is one line naming the option, exit 2.

Ranges and why:
* ``--seed-hu`` 100-3071 HU: below 100 HU is soft tissue or blood, not calcific attenuation;
  3071 is the top of the 12-bit CT range the loader keeps (``ct_image.HU_RANGE``).
* ``--grow-hu`` 0-3071 HU and below ``--seed-hu``: below 0 HU a finding's extent would grow
  into fat and lung; an extent threshold above the peak threshold leaves no extent.
* ``--seed`` 0 to 2**32-1: what numpy's random generator accepts as a seed.
* ``--workers`` 1-256: processes; 0 would score nothing and hang.
"""

from __future__ import annotations

import argparse
import math
import sys

SEED_HU_RANGE = (100.0, 3071.0)
GROW_HU_RANGE = (0.0, 3071.0)
DEFAULT_SEED_HU = 300.0  # candidates.DetectionParams (not imported: the parser stays light)
DEFAULT_GROW_HU = 100.0
RANDOM_SEED_RANGE = (0, 2 ** 32 - 1)
WORKERS_RANGE = (1, 256)

CT_HELP = ("the chest CT: a NRRD (.nrrd/.nhdr), NIfTI (.nii/.nii.gz) or MetaImage (.mha/.mhd) file, "
           "or a folder holding one DICOM series (the one with most slices is used)")


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose refusals are one line (no usage block), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def finite_float(low: float, high: float):
    """An argparse type: a finite number within [low, high]."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value:g} is outside {low:g} to {high:g}")
        return value
    parse.__name__ = "number"
    return parse


def int_in(low: int, high: int):
    """An argparse type: a whole number within [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low} to {high}")
        return value
    parse.__name__ = "whole number"
    return parse


def non_empty_text(text: str) -> str:
    """An argparse type: text that is not empty and holds no line break or control character."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty")
    if any(ord(c) < 32 for c in text):
        raise argparse.ArgumentTypeError("holds a line break or control character")
    return text


def relation_problem(args: argparse.Namespace) -> str | None:
    """Problems between options (None when they agree). Works on whatever options the command
    has, so new commands get the same checks by reusing the option names."""
    seed = getattr(args, "seed_hu", None)
    grow = getattr(args, "grow_hu", None)
    if seed is not None or grow is not None:
        seed_value = DEFAULT_SEED_HU if seed is None else seed
        grow_value = DEFAULT_GROW_HU if grow is None else grow
        if grow_value >= seed_value:
            return (f"argument --grow-hu: {grow_value:g} HU must be below --seed-hu ({seed_value:g} HU): a "
                    "finding's extent threshold is lower than its peak threshold")
    for method_option, method, source_option, source in (
            ("--lobe-method", getattr(args, "lobe_method", None), "--lobes-from", getattr(args, "lobes_from", None)),
            ("--method", getattr(args, "method", None), "--from", getattr(args, "source", None))):
        if method is None:
            continue
        if method == "import" and not source:
            return f"argument {source_option}: is required with {method_option} import"
        if method != "import" and source:
            return f"argument {source_option}: is only used with {method_option} import (given: {method})"
    weights = getattr(args, "weights", None)
    method = getattr(args, "lobe_method", None) or getattr(args, "method", None)
    if weights and method not in (None, "lungmask"):
        option = "--lobe-method" if hasattr(args, "lobe_method") else "--method"
        return f"argument --weights: is only used with {option} lungmask (given: {method})"
    if getattr(args, "points_out", None) and getattr(args, "out", None) and args.points_out == args.out:
        return "argument --points-out: is the same file as --out"
    return None


def parse_checked(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse ``argv`` and check relations between options; refusals exit 2 with one line."""
    args = parser.parse_args(argv)
    problem = relation_problem(args)
    if problem:
        prog = f"{parser.prog} {args.command}" if getattr(args, "command", None) else parser.prog
        print(f"{prog}: error: {problem} (see '{prog} --help')", file=sys.stderr)
        raise SystemExit(2)
    return args
