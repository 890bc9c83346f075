"""A cohort table built from the published counts of Egashira et al., Radiology 2017 (the paper).

892 patients: 456 IPF, 244 NSIP, 192 chronic HP. Every binary count below is printed in the
paper (Table 1, and the Results text for the 119 biopsied patients); what the paper does not print is
stated where it is chosen:

* the joint definition 1 x definition 2 table. The printed kappa of 0.63 fixes it: with 166 and 106
  positives, b - c = 60, and kappa in [0.625, 0.635) needs b + c in (84.9, 87.2]; b + c has the parity
  of 60, so b + c = 86: b = 73 (def 1 only), c = 13 (def 2 only), 93 both, 713 neither. How the 13
  "def 2 only" split across the groups is not printed (chosen 9 / 3 / 1); no printed number depends on it;
* which biopsied patients were DPO positive: the printed margins (by ossification: 18/31 vs 4/88 and
  14/31 vs 2/88; by diagnosis: 19, 1, 2 and 14, 1, 1) admit several cell tables; one is chosen below;
* continuous variables (age, ILD extent, coarseness, ANS): the paper prints median (range) only. Each
  group gets deterministic values with exactly the printed median, minimum and maximum (half the
  values evenly from the minimum to the median, half from the median to the maximum), shuffled with
  a fixed seed. Nothing printed about them beyond median and range can be reproduced (their P values,
  Table 2, Table 3, the age and coarseness odds ratios and the multivariate model need the raw data).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

GROUPS = {"IPF": 456, "NSIP": 244, "HP": 192}
# (positives, cases with the information) per group; Table 1
BINARY = {
    "sex": {"IPF": (366, 456), "NSIP": (79, 244), "HP": (76, 192)},
    "ever_smoker": {"IPF": (293, 438), "NSIP": (96, 232), "HP": (76, 184)},  # n = 854
    "honeycombing": {"IPF": (127, 456), "NSIP": (3, 244), "HP": (14, 192)},
    "emphysema": {"IPF": (196, 456), "NSIP": (42, 244), "HP": (38, 192)},
    "calcified_granuloma": {"IPF": (68, 456), "NSIP": (20, 244), "HP": (20, 192)},
}
# (biopsy ossification: 1, 0 or None for not biopsied, def1, def2) -> number of patients
DPO_CELLS = {
    "IPF": {(1, 1, 1): 12, (1, 1, 0): 4, (1, 0, 0): 5, (0, 1, 1): 2, (0, 1, 0): 1, (0, 0, 0): 32,
            (None, 1, 1): 63, (None, 1, 0): 48, (None, 0, 1): 9, (None, 0, 0): 280},
    "NSIP": {(1, 1, 1): 1, (1, 0, 0): 2, (0, 0, 0): 23,
             (None, 1, 1): 11, (None, 1, 0): 15, (None, 0, 1): 3, (None, 0, 0): 189},
    "HP": {(1, 1, 1): 1, (1, 0, 0): 6, (0, 1, 0): 1, (0, 0, 0): 29,
           (None, 1, 1): 3, (None, 1, 0): 4, (None, 0, 1): 1, (None, 0, 0): 147},
}
# median, minimum, maximum per group (Table 1); ANS and coarseness have n = 887: the 5 patients with
# only dendriform ossification have none (which groups they were in is not printed: IPF chosen)
CONTINUOUS = {
    "age": {"IPF": (72, 38, 93), "NSIP": (60.5, 23, 86), "HP": (66, 35, 88)},
    "ild_extent": {"IPF": (12, 2, 18), "NSIP": (11, 2, 18), "HP": (14, 3, 18)},
    "coarseness_score": {"IPF": (13, 7.2, 24), "NSIP": (12, 6, 18), "HP": (12, 6, 18)},
    "ans": {"IPF": (0.67, 0, 71), "NSIP": (0.17, 0, 24), "HP": (0, 0, 9.2)},
}
DENDRIFORM_ONLY = {"IPF": 5, "NSIP": 0, "HP": 0}


def spread(n: int, median: float, low: float, high: float) -> np.ndarray:
    """n values with exactly this median, minimum and maximum."""
    half = n // 2
    lower = np.linspace(low, median, half)
    upper = np.linspace(median, high, half)
    values = np.concatenate([lower, [median] if n % 2 else [], upper])
    return values


def _flags(positives: int, known: int, n: int) -> list:
    return ["yes"] * positives + ["no"] * (known - positives) + [""] * (n - known)


def paper_rows(seed: int = 2017) -> list:
    rng = np.random.RandomState(seed)
    rows = []
    for group, n in GROUPS.items():
        cells = [key for key, count in DPO_CELLS[group].items() for _ in range(count)]
        assert len(cells) == n, (group, len(cells))
        columns = {}
        for name, counts in BINARY.items():
            positives, known = counts[group]
            flags = _flags(positives, known, n)
            if name == "sex":
                flags = ["M" if f == "yes" else "F" for f in flags]
            columns[name] = list(rng.permutation(flags))
        missing = DENDRIFORM_ONLY[group]
        for name, spec in CONTINUOUS.items():
            median, low, high = spec[group]
            count = n - missing if name in ("ans", "coarseness_score") else n
            values = [f"{v:.6g}" for v in rng.permutation(spread(count, median, low, high))]
            columns[name] = values + [""] * (n - count)
        for index, (biopsy, def1, def2) in enumerate(cells):
            rows.append({"case_id": f"{group}-{index + 1:03d}", "status": "done", "diagnosis": group,
                         "dpo_def1": "True" if def1 else "False", "dpo_def2": "True" if def2 else "False",
                         "biopsy_ossification": "" if biopsy is None else ("yes" if biopsy else "no"),
                         **{name: columns[name][index] for name in columns}})
    return rows


def write_cohort(path: Path, rows: list) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
