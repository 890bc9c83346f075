"""All analyses of ``dpo-score cohort`` on one cohort table: the ``dpo-cohort-stats/1`` document.

The analyses follow the paper's Statistical Analysis (see Docs/cohort.md for each choice):
prevalence of each DPO definition; every binary variable by group (Table 1), every continuous one
(Table 1); Spearman correlations of ANS (Table 2); ANS by each binary finding (Table 3); odds ratios
of belonging to the reference group, univariate and multivariate by backward elimination (Table 4);
a linear model of lnskew0(ANS); agreement of the definitions (McNemar, kappa); diagnostic accuracy of
the definitions and of ANS thresholds (Fig. 2); and, with a second reader's table, inter-reader
agreement per definition (kappa), per case and per lobe (ICC).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path
from typing import Optional

from ..common.errors import DPOInputError
from . import cohort_models as models
from . import cohort_stats as stats
from .cohort_table import CohortTable, lobe_columns, parse_binary, parse_number, read_rows

SCHEMA = "dpo-cohort-stats/1"
TABLE1_ORDER = ("age", "sex", "ever_smoker", "ild_extent", "coarseness_score", "honeycombing", "emphysema",
                "calcified_granuloma", "ans", "dpo_def1", "dpo_def2")
NOT_IN_MULTIVARIATE = ("biopsy_ossification", "ans", "total")  # subset-only, or the outcome's own measure


def ordered(names) -> list:
    names = list(names)
    return [n for n in TABLE1_ORDER if n in names] + sorted(n for n in names if n not in TABLE1_ORDER)


def definitions(table: CohortTable) -> list:
    return ordered(n for n in table.binary if n.startswith("dpo_") and n not in table.derived)


def default_predictors(table: CohortTable) -> list:
    """The multivariate model's candidates: every covariate and the first DPO definition (the paper
    left definition 2 out, it being a second measure of the same thing)."""
    defs = definitions(table)
    names = [n for n in ordered(list(table.binary) + list(table.continuous))
             if n not in NOT_IN_MULTIVARIATE and not n.startswith("dpo_")]
    return names + defs[:1]


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def analyse(table: CohortTable, predictors: Optional[list] = None, second: Optional[dict] = None) -> dict:
    """The stats document of a loaded table; ``second``: {case_id: row} of a second reader."""
    from .. import __version__

    if predictors is None:
        predictors = default_predictors(table)
    for name in predictors:
        if name not in table.binary and name not in table.continuous:
            raise DPOInputError(f"--predictors {name}", "is not an analysable column of the cohort table")
    analyses = []
    for name in definitions(table) + table.derived:
        analyses.append(stats.prevalence(table, name))
    for name in table.derived:
        analyses.extend(stats.binary_by_group(table, name))
    binaries = ordered(n for n in table.binary if n not in table.derived)
    continuous = ordered(table.continuous)
    for name in ordered(binaries + continuous):
        analyses.extend(stats.binary_by_group(table, name) if name in table.binary
                        else stats.continuous_by_group(table, name))
    if "ans" in table.continuous:
        for name in continuous:
            if name not in ("ans", "total"):
                analyses.append(stats.correlation(table, "ans", name))
        for name in binaries:
            if not name.startswith("dpo_"):
                analyses.append(stats.continuous_by_binary(table, "ans", name))
    for name in ordered(binaries + continuous):
        analyses.append(models.odds_ratio(table, name))
    if predictors:
        analyses.append(models.multivariate_logistic(table, predictors))
    if "ans" in table.continuous:
        linear = [n for n in predictors if not n.startswith("dpo_")]
        indicator = f"{table.group_column}={table.reference}"
        analyses.append(models.linear_regression_lnskew0(table, "ans", linear + [indicator],
                                                         {indicator: models.outcome_of(table)}))
    defs = definitions(table)
    for i, first in enumerate(defs):
        for other in defs[i + 1:]:
            analyses.append(stats.agreement(table.binary[first], table.binary[other], [first, other]))
    target = f"{table.group_column} == {table.reference}"
    for name in defs:
        analyses.append(stats.diagnostic_accuracy(table.binary[name], models.outcome_of(table), name, target))
    if "ans" in table.continuous:
        analyses.append(stats.threshold_curve(table.continuous["ans"], models.outcome_of(table), target))
    if "biopsy_ossification" in table.binary:
        for name in defs:
            analyses.append(stats.diagnostic_accuracy(table.binary[name], table.binary["biopsy_ossification"], name,
                                                      "biopsy_ossification"))
    if second is not None:
        analyses.extend(second_reader(table, second))
    return {"schema": SCHEMA,
            "cohort": {"path": str(table.path), "sha256": _sha256(table.path), "n": table.n,
                       "group": table.group_column, "reference": table.reference, "levels": table.levels,
                       "level_counts": {lv: table.group.count(lv) for lv in table.levels},
                       "left_out": table.left_out, "ignored_columns": table.ignored_columns,
                       "binary": binaries, "continuous": continuous, "definition_variants": table.derived,
                       "multivariate_candidates": predictors},
            "provenance": _provenance(__version__),
            "analyses": analyses}


def _provenance(version: str) -> dict:
    import numpy
    import scipy
    import statsmodels

    return {"software": f"DPOScoring {version}", "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "libraries": {"numpy": numpy.__version__, "scipy": scipy.__version__,
                          "statsmodels": statsmodels.__version__},
            "reference": "Egashira R et al. Diffuse pulmonary ossification in fibrosing interstitial lung "
                         "diseases. Radiology 2017;284:255-263"}


def read_second_reader(path) -> dict:
    rows = read_rows(path)
    by_id = {}
    for line, row in enumerate(rows, start=2):
        if row["case_id"] in by_id:
            raise DPOInputError(f"{path}: line {line}", f"case_id {row['case_id']!r} is repeated")
        if "status" in row and row["status"].strip() not in ("done", "skipped (done before)"):
            continue
        by_id[row["case_id"]] = dict(row, _line=str(line))
    return by_id


def second_reader(table: CohortTable, second: dict) -> list:
    """Reader 1 (the cohort table) against reader 2 on the cases both scored."""
    import numpy as np

    first = dict(zip(table.case_ids, table.raw))
    common = [c for c in table.case_ids if c in second]
    if not common:
        raise DPOInputError("--second-reader", "shares no scored case_id with the cohort table")
    groups = ["reader 1", "reader 2"]
    entries = []
    for name in ordered(n for n in table.binary if n.startswith("dpo_")):
        if name not in next(iter(second.values())):
            continue
        a = [parse_binary(first[c][name], name, f"{table.path}: case {c}") for c in common]
        b = [parse_binary(second[c][name], name, f"second reader: line {second[c]['_line']}") for c in common]
        entry = stats.agreement(a, b, [name, name], groups)
        entry["analysis"] = "agreement"
        entry["variable"] = name
        entries.append(entry)
    scores = [n for n in ("total", "ans", "coarseness_score", "ild_extent") if n in table.raw[0]]
    for name in scores + lobe_columns(table.raw):
        if name not in next(iter(second.values())):
            continue
        pairs = []
        for c in common:
            a = parse_number(first[c][name], name, f"{table.path}: case {c}")
            b = parse_number(second[c][name], name, f"second reader: line {second[c]['_line']}")
            if a is not None and b is not None:
                pairs.append((a, b))
        entry = {"analysis": "agreement", "variable": name, "variables": [name, name], "groups": groups,
                 "level": "lobe" if name.startswith("nnpol_") else "case", "counts": {"n": len(pairs)},
                 "test": "icc(2,1) two-way random, absolute agreement, single rater"}
        if len(pairs) >= 3:
            entry.update(models.icc_2_1(np.array(pairs)))
        else:
            entry.update({"estimate": None, "ci": None, "statistic": None, "p": None, "note": "fewer than 3 cases"})
        entries.append(entry)
    return entries
