"""Reading the cohort table (``cohort.csv`` of ``dpo-score batch``) for the cohort statistics.

Which columns are analysed, and as what:

* binary: the batch's ``dpo_def1``, ``dpo_def2`` and any column whose values are all yes/no
  tokens (true/false, yes/no, y/n, 1/0); ``sex`` is binary with *male* as the positive level (M/male);
* continuous: the batch's ``ans``, ``total``, ``ild_extent``, ``coarseness_score`` and the manifest's
  ``age``; any other manifest column whose values are all numbers.

Empty cells (and NA, N/A, ".") are missing: a case missing a variable is left out of the analyses
of that variable only (as the paper's "Ever smoker (n = 854)"). A known numeric or binary column
holding something else is bad input (one line, exit 2). Rows of a batch table whose ``status`` is
not done (failed, pending) carry no scores and are left out, and counted.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..common.errors import DPOInputError

MISSING = {"", "na", "n/a", "nan", ".", "none", "null"}
TRUE_TOKENS = {"1", "true", "yes", "y", "t"}
FALSE_TOKENS = {"0", "false", "no", "n", "f"}
MALE_TOKENS = {"m", "male", "man"}
FEMALE_TOKENS = {"f", "female", "woman"}
DONE_STATUSES = {"done", "skipped (done before)"}

KNOWN_BINARY = ("sex", "ever_smoker", "honeycombing", "emphysema", "calcified_granuloma", "dpo_def1", "dpo_def2",
                "biopsy_ossification")
KNOWN_CONTINUOUS = ("age", "ild_extent", "coarseness_score", "ans", "total")
# batch bookkeeping and per-lobe columns: never analysed as covariates (per-lobe counts are used for
# two-reader agreement only)
BATCH_ONLY = {"case_id", "status", "right_total", "left_total", "ldo", "complete", "pending_candidates",
              "provisional_total", "warnings", "input_sha256", "bundle", "path"}
LABELS = {"sex": "Male sex", "ever_smoker": "Ever smoker", "honeycombing": "Honeycombing", "emphysema": "Emphysema",
          "calcified_granuloma": "Calcified granuloma", "dpo_def1": "DPO according to definition 1",
          "dpo_def2": "DPO according to definition 2", "biopsy_ossification": "Ossification at biopsy",
          "age": "Age at time of CT (y)", "ild_extent": "Extent of ILD at CT", "coarseness_score": "Coarseness at CT",
          "ans": "Average nodule score", "total": "Nodular ossifications (total)"}


def label(variable: str) -> str:
    return LABELS.get(variable, variable.replace("_", " "))


@dataclass
class CohortTable:
    """The analysable rows of a cohort table, with every analysed column already typed."""

    path: str
    case_ids: list
    group: list  # the level of each row (str)
    group_column: str
    reference: str
    levels: list  # reference first, then the others in order of frequency
    binary: dict = field(default_factory=dict)  # name -> list of 0/1/None
    continuous: dict = field(default_factory=dict)  # name -> list of float/None
    raw: list = field(default_factory=list)  # the rows as read (dicts of strings)
    left_out: dict = field(default_factory=dict)  # reason -> number of rows
    ignored_columns: list = field(default_factory=list)
    derived: list = field(default_factory=list)  # definition variants recomputed from nnpol_* (prevalence only)

    @property
    def n(self) -> int:
        return len(self.group)


def _is_missing(value: Optional[str]) -> bool:
    return value is None or value.strip().lower() in MISSING


def parse_binary(value: Optional[str], column: str, where: str):
    """0, 1 or None; anything else is bad input naming the cell."""
    if _is_missing(value):
        return None
    token = value.strip().lower()
    if column == "sex":
        if token in MALE_TOKENS:
            return 1
        if token in FEMALE_TOKENS:
            return 0
        raise DPOInputError(where, f"column sex holds {value!r}; expected M/male or F/female")
    if token in TRUE_TOKENS:
        return 1
    if token in FALSE_TOKENS:
        return 0
    try:
        number = float(token)
    except ValueError:
        number = None
    if number in (0.0, 1.0):
        return int(number)
    raise DPOInputError(where, f"column {column} holds {value!r}; expected yes/no, true/false or 1/0")


def parse_number(value: Optional[str], column: str, where: str):
    if _is_missing(value):
        return None
    try:
        number = float(value)
    except ValueError:
        raise DPOInputError(where, f"column {column} holds {value!r}, which is not a number") from None
    if not math.isfinite(number):
        raise DPOInputError(where, f"column {column} holds {value!r}, which is not a finite number")
    return number


def read_rows(path: str | Path) -> list:
    """The rows of a CSV file as dicts; a missing, unreadable or empty file is bad input."""
    path = Path(path)
    if not path.is_file():
        raise DPOInputError(str(path), "no such cohort table")
    try:
        text = path.read_text(encoding="utf-8-sig")
        reader = csv.DictReader(io.StringIO(text))
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        raise DPOInputError(str(path), f"is not a readable CSV table ({error})") from None
    if not reader.fieldnames:
        raise DPOInputError(str(path), "is empty (no header line)")
    if not rows:
        raise DPOInputError(str(path), "has a header but no rows")
    if "case_id" not in reader.fieldnames:
        raise DPOInputError(str(path), "needs a case_id column (the cohort.csv of dpo-score batch has one)")
    if None in rows[0] or any(None in row for row in rows):
        line = next(i for i, row in enumerate(rows, start=2) if None in row)
        raise DPOInputError(f"{path}: line {line}", "has more cells than the header")
    return rows


def _kind(values: list) -> str:
    present = [v.strip().lower() for v in values if not _is_missing(v)]
    if not present:
        return "empty"
    if all(v in TRUE_TOKENS | FALSE_TOKENS for v in present):
        return "binary"
    try:
        [float(v) for v in present]
    except ValueError:
        return "text"
    return "continuous"


def load_cohort(path: str | Path, group_column: str, reference: Optional[str] = None) -> CohortTable:
    """Read, filter and type a cohort table for ``dpo-score cohort``."""
    rows = read_rows(path)
    columns = list(rows[0].keys())
    if group_column not in columns:
        raise DPOInputError(f"--group {group_column}", f"no such column in {path} (columns: {', '.join(columns)})")
    left_out = {}
    kept = []
    for line, row in enumerate(rows, start=2):
        status = (row.get("status") or "done").strip()
        if "status" in row and status not in DONE_STATUSES:
            left_out["case not scored (status " + status.split(":")[0] + ")"] = \
                left_out.get("case not scored (status " + status.split(":")[0] + ")", 0) + 1
            continue
        if _is_missing(row[group_column]):
            left_out[f"no {group_column}"] = left_out.get(f"no {group_column}", 0) + 1
            continue
        kept.append((line, row))
    if not kept:
        raise DPOInputError(str(path), f"has no scored case with a {group_column} (left out: {left_out or 'none'})")
    seen = set()
    for line, row in kept:
        if row["case_id"] in seen:
            raise DPOInputError(f"{path}: line {line}", f"case_id {row['case_id']!r} is repeated")
        seen.add(row["case_id"])
    group = [row[group_column].strip() for _, row in kept]
    counts = {}
    for level in group:
        counts[level] = counts.get(level, 0) + 1
    if len(counts) < 2:
        raise DPOInputError(f"--group {group_column}", f"has one level only ({next(iter(counts))}); "
                                                       "nothing to compare")
    if reference is None:
        reference = max(counts, key=lambda level: (counts[level], level))
    elif reference not in counts:
        raise DPOInputError(f"--reference {reference}",
                            f"is not a level of {group_column} (levels: {', '.join(sorted(counts))})")
    levels = [reference] + sorted((lv for lv in counts if lv != reference), key=lambda lv: (-counts[lv], lv))
    table = CohortTable(str(path), [row["case_id"] for _, row in kept], group, group_column, reference, levels,
                        raw=[row for _, row in kept], left_out=left_out)
    for column in columns:
        if column == group_column or column in BATCH_ONLY or column.startswith("nnpol_"):
            continue
        values = [row[column] for _, row in kept]
        kind = "binary" if column in KNOWN_BINARY else "continuous" if column in KNOWN_CONTINUOUS else _kind(values)
        if kind == "binary":
            parsed = [parse_binary(row[column], column, f"{path}: line {line}") for line, row in kept]
            if any(v is not None for v in parsed):
                table.binary[column] = parsed
        elif kind == "continuous":
            parsed = [parse_number(row[column], column, f"{path}: line {line}") for line, row in kept]
            if any(v is not None for v in parsed):
                table.continuous[column] = parsed
        else:
            table.ignored_columns.append(column)
    _add_definition_variants(table, kept, str(path))
    return table


def _add_definition_variants(table: CohortTable, kept: list, path: str) -> None:
    """The other variants of definitions 1 and 2 (spec section 5), from the per-lobe counts the batch
    wrote, so one batch run reports the prevalence under each variant (definitions.py decides)."""
    from ..common.anatomy import LOBE_CODES
    from ..rules.definitions import dpo_definition_1, dpo_definition_2
    from ..rules.policy import DEF1_VARIANTS, DEF2_VARIANTS

    if not all(f"nnpol_{code}" in kept[0][1] for code in LOBE_CODES):
        return
    counts = []
    for line, row in kept:
        values = {code: parse_number(row[f"nnpol_{code}"], f"nnpol_{code}", f"{path}: line {line}")
                  for code in LOBE_CODES}
        counts.append(None if any(v is None for v in values.values()) else {k: int(v) for k, v in values.items()})
    if all(c is None for c in counts):
        return
    for number, variants, rule in (("1", DEF1_VARIANTS, dpo_definition_1), ("2", DEF2_VARIANTS, dpo_definition_2)):
        for variant in variants:
            if variant == "default":
                continue  # the batch's own dpo_def1 / dpo_def2 columns, made with the policy it ran
            name = f"dpo_def{number}_{variant.replace('-', '_')}"
            table.binary[name] = [None if c is None else int(rule(c, variant)) for c in counts]
            table.derived.append(name)


def lobe_columns(rows: list) -> list:
    return [c for c in rows[0] if c.startswith("nnpol_")] if rows else []
