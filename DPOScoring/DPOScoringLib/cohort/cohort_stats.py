"""Group comparisons, correlations, agreement and diagnostic accuracy for ``dpo-score cohort``.

Every test is a library's (scipy.stats, statsmodels); this module only chooses, as the paper's
Statistical Analysis did (Egashira et al., Radiology 2017):

* binary by group: Pearson chi-square *without* continuity correction (Stata's ``tabulate, chi2``),
  Fisher's exact test always reported beside it (``p_fisher``) and *used* when an expected count is
  < 5 (``test`` says which). 2 x 2 Fisher is exact (scipy); for the k x 2 table it is the Monte Carlo
  version (scipy ``MonteCarloMethod``, 99 999 tables, seed 0, stated in the entry);
* continuous by group: Wilcoxon rank-sum / Mann-Whitney, normal approximation with tie correction and
  no continuity correction (as Stata's ``ranksum``); Kruskal-Wallis for the k groups;
* correlation: Spearman;
* agreement of two binary ratings: McNemar chi-square without continuity correction and the exact
  (binomial) McNemar P, Cohen's kappa with its asymptotic 95 % CI (statsmodels);
* diagnostic accuracy: sensitivity, specificity (Clopper-Pearson 95 % CIs), PPV, NPV.
"""

from __future__ import annotations

import numpy as np

MONTE_CARLO_TABLES = 99999
MONTE_CARLO_SEED = 0


def _pct(k: int, n: int):
    return round(100.0 * k / n, 4) if n else None


def _float(value):
    value = float(np.asarray(value, dtype=float).reshape(-1)[0])  # scipy returns shape-(1,) P for tiny tables
    return value if np.isfinite(value) else None


def paired(values: list, other: list):
    """Indices where both are present."""
    return [i for i, (a, b) in enumerate(zip(values, other)) if a is not None and b is not None]


def compare_binary(rows: list, names: list) -> dict:
    """rows: [[positives, negatives], ...] of each group; chi-square (no correction) and Fisher."""
    from scipy import stats

    table = np.asarray(rows, dtype=np.int64)
    entry = {"counts": {name: {"positive": int(r[0]), "n": int(r[0] + r[1]), "percent": _pct(r[0], r[0] + r[1])}
                        for name, r in zip(names, table)}}
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        entry.update({"test": None, "statistic": None, "p": None, "p_chi2": None, "p_fisher": None,
                      "note": "a row or column of the table is empty; no test"})
        return entry
    chi2, p_chi2, dof, expected = stats.chi2_contingency(table, correction=False)
    if table.shape == (2, 2):
        p_fisher = stats.fisher_exact(table).pvalue
        fisher_method = "exact"
    else:
        method = stats.MonteCarloMethod(n_resamples=MONTE_CARLO_TABLES, rng=np.random.default_rng(MONTE_CARLO_SEED))
        p_fisher = stats.fisher_exact(table, method=method).pvalue
        fisher_method = f"Monte Carlo, {MONTE_CARLO_TABLES} tables, seed {MONTE_CARLO_SEED}"
    use_fisher = bool(expected.min() < 5)
    entry.update({"test": "fisher" if use_fisher else "chi2", "statistic": _float(chi2), "df": int(dof),
                  "p": _float(p_fisher if use_fisher else p_chi2), "p_chi2": _float(p_chi2),
                  "p_fisher": _float(p_fisher), "fisher_method": fisher_method,
                  "expected_min": _float(expected.min()),
                  "test_rule": "Pearson chi-square without continuity correction; Fisher exact when an "
                               "expected count is < 5"})
    return entry


def group_comparisons(levels: list, reference: str):
    """(label, members of side A, members of side B): reference vs rest, reference vs each other."""
    others = [lv for lv in levels if lv != reference]
    yield [reference, "rest"], {reference}, set(others)
    if len(others) > 1:
        for other in others:
            yield [reference, other], {reference}, {other}


def prevalence(table, variable: str) -> dict:
    values = table.binary[variable]
    counts = {}
    for level in table.levels + ["rest", "all"]:
        members = (set(table.levels) if level == "all" else
                   set(table.levels) - {table.reference} if level == "rest" else {level})
        present = [v for v, g in zip(values, table.group) if g in members and v is not None]
        counts[level] = {"positive": int(sum(present)), "n": len(present), "percent": _pct(sum(present), len(present))}
    return {"analysis": "prevalence", "variable": variable, "groups": table.levels + ["rest", "all"],
            "counts": counts, "test": None, "statistic": None, "p": None}


def binary_by_group(table, variable: str) -> list:
    values = table.binary[variable]

    def positives(members):
        present = [v for v, g in zip(values, table.group) if g in members and v is not None]
        return [int(sum(present)), len(present) - int(sum(present))]

    entries = []
    for names, side_a, side_b in group_comparisons(table.levels, table.reference):
        entry = {"analysis": "binary_by_group", "variable": variable, "groups": names}
        entry.update(compare_binary([positives(side_a), positives(side_b)], names))
        entries.append(entry)
    if len(table.levels) > 2:
        entry = {"analysis": "binary_by_group", "variable": variable, "groups": list(table.levels)}
        entry.update(compare_binary([positives({lv}) for lv in table.levels], list(table.levels)))
        entries.append(entry)
    return entries


def describe(values) -> dict:
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": int(values.size), "median": _float(np.median(values)), "min": _float(values.min()),
            "max": _float(values.max())}


def rank_sum(a, b) -> dict:
    """Wilcoxon rank-sum (Mann-Whitney U) as Stata's ranksum: normal approximation, tie-corrected,
    no continuity correction."""
    from scipy import stats

    if len(a) == 0 or len(b) == 0:
        return {"test": "wilcoxon_rank_sum", "statistic": None, "p": None, "note": "a group is empty"}
    if np.ptp(np.concatenate([a, b])) == 0:
        return {"test": "wilcoxon_rank_sum", "statistic": None, "p": 1.0, "note": "all values equal"}
    result = stats.mannwhitneyu(a, b, use_continuity=False, alternative="two-sided", method="asymptotic")
    return {"test": "wilcoxon_rank_sum", "statistic": _float(result.statistic), "statistic_name": "U",
            "p": _float(result.pvalue)}


def continuous_by_group(table, variable: str) -> list:
    from scipy import stats

    values = table.continuous[variable]

    def pick(members):
        return np.array([v for v, g in zip(values, table.group) if g in members and v is not None], dtype=float)

    entries = []
    for names, side_a, side_b in group_comparisons(table.levels, table.reference):
        a, b = pick(side_a), pick(side_b)
        entry = {"analysis": "continuous_by_group", "variable": variable, "groups": names,
                 "counts": {names[0]: describe(a), names[1]: describe(b)}}
        entry.update(rank_sum(a, b))
        entries.append(entry)
    if len(table.levels) > 2:
        samples = [pick({lv}) for lv in table.levels]
        entry = {"analysis": "continuous_by_group", "variable": variable, "groups": list(table.levels),
                 "counts": {lv: describe(s) for lv, s in zip(table.levels, samples)}, "test": "kruskal_wallis"}
        try:
            if np.ptp(np.concatenate(samples)) == 0:
                raise ValueError("all values are equal")
            result = stats.kruskal(*[s for s in samples if s.size])
            entry.update({"statistic": _float(result.statistic), "p": _float(result.pvalue)})
        except ValueError as error:
            entry.update({"statistic": None, "p": None, "note": str(error)})
        entries.append(entry)
    return entries


def continuous_by_binary(table, variable: str, by: str) -> dict:
    """Table 3: a continuous variable (ANS) in the cases with and without a binary finding."""
    values, flags = table.continuous[variable], table.binary[by]
    keep = paired(values, flags)
    present = np.array([values[i] for i in keep if flags[i] == 1], dtype=float)
    absent = np.array([values[i] for i in keep if flags[i] == 0], dtype=float)
    entry = {"analysis": "continuous_by_binary", "variable": variable, "by": by, "groups": ["present", "absent"],
             "counts": {"present": describe(present), "absent": describe(absent)}}
    entry.update(rank_sum(present, absent))
    return entry


def correlation(table, x: str, y: str) -> dict:
    from scipy import stats

    a, b = table.continuous[x], table.continuous[y]
    keep = paired(a, b)
    entry = {"analysis": "correlation", "variables": [x, y], "variable": y, "groups": ["all"],
             "counts": {"all": {"n": len(keep)}}, "test": "spearman"}
    if len(keep) < 3:
        entry.update({"statistic": None, "estimate": None, "p": None, "note": "fewer than 3 pairs"})
        return entry
    x, y = [a[i] for i in keep], [b[i] for i in keep]
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        entry.update({"statistic": None, "estimate": None, "p": None, "note": "a variable is constant"})
        return entry
    result = stats.spearmanr(x, y)
    entry.update({"statistic": _float(result.statistic), "estimate": _float(result.statistic),
                  "p": _float(result.pvalue)})
    return entry


def agreement(first: list, second: list, variables: list, groups=None) -> dict:
    """Two binary ratings of the same cases: McNemar (no correction, and exact) and Cohen's kappa."""
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.inter_rater import cohens_kappa

    keep = paired(first, second)
    a = np.array([first[i] for i in keep], dtype=int)
    b = np.array([second[i] for i in keep], dtype=int)
    cells = np.array([[np.sum((a == 1) & (b == 1)), np.sum((a == 1) & (b == 0))],
                      [np.sum((a == 0) & (b == 1)), np.sum((a == 0) & (b == 0))]])
    entry = {"analysis": "agreement", "variables": variables, "groups": groups or ["all"],
             "counts": {"both_positive": int(cells[0, 0]), "first_only": int(cells[0, 1]),
                        "second_only": int(cells[1, 0]), "both_negative": int(cells[1, 1]), "n": len(keep)},
             "test": "mcnemar"}
    if not keep:
        entry.update({"statistic": None, "p": None, "note": "no case has both ratings"})
        return entry
    discordant = cells[0, 1] + cells[1, 0]
    if discordant:
        chi = mcnemar(cells, exact=False, correction=False)
        exact = mcnemar(cells, exact=True)
        entry.update({"statistic": _float(chi.statistic), "p": _float(chi.pvalue), "p_exact": _float(exact.pvalue)})
    else:
        entry.update({"statistic": 0.0, "p": 1.0, "p_exact": 1.0, "note": "no discordant case"})
    with np.errstate(divide="ignore", invalid="ignore"):  # one rating constant: kappa undefined, said below
        kappa = cohens_kappa(cells, return_results=True)
    if np.isfinite(kappa.kappa):
        entry.update({"kappa": _float(kappa.kappa), "estimate": _float(kappa.kappa),
                      "ci": [_float(kappa.kappa_low), _float(kappa.kappa_upp)], "kappa_se": _float(kappa.std_kappa)})
    else:
        entry.update({"kappa": None, "estimate": None, "ci": None, "note": "kappa undefined (one rating constant)"})
    entry["percent_agreement"] = _pct(cells[0, 0] + cells[1, 1], len(keep))
    return entry


def _proportion(k: int, n: int) -> dict:
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return {"estimate": None, "ci": None, "k": 0, "n": 0}
    low, high = proportion_confint(k, n, alpha=0.05, method="beta")
    return {"estimate": k / n, "ci": [_float(low), _float(high)], "k": int(k), "n": int(n)}


def accuracy(test: list, truth: list) -> dict:
    keep = paired(test, truth)
    t = np.array([test[i] for i in keep], dtype=int)
    d = np.array([truth[i] for i in keep], dtype=int)
    tp, fn = int(np.sum((t == 1) & (d == 1))), int(np.sum((t == 0) & (d == 1)))
    fp, tn = int(np.sum((t == 1) & (d == 0))), int(np.sum((t == 0) & (d == 0)))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "sensitivity": _proportion(tp, tp + fn),
            "specificity": _proportion(tn, tn + fp), "ppv": _proportion(tp, tp + fp), "npv": _proportion(tn, tn + fn)}


def diagnostic_accuracy(test: list, truth: list, variable: str, target: str) -> dict:
    result = accuracy(test, truth)
    entry = {"analysis": "diagnostic_accuracy", "variable": variable, "target": target,
             "groups": ["target present", "target absent"],
             "counts": {k: result[k] for k in ("tp", "fp", "fn", "tn")}, "test": None, "statistic": None, "p": None}
    entry.update({k: result[k] for k in ("sensitivity", "specificity", "ppv", "npv")})
    entry["estimate"] = result["sensitivity"]["estimate"]
    entry["ci"] = result["sensitivity"]["ci"]
    return entry


def threshold_curve(scores: list, truth: list, target: str, thresholds=None) -> dict:
    """Sensitivity and specificity of "score >= t" across thresholds (the paper's Fig. 2)."""
    keep = paired(scores, truth)
    s = np.array([scores[i] for i in keep], dtype=float)
    d = np.array([truth[i] for i in keep], dtype=int)
    if thresholds is None:  # ANS moves in steps of 1/6 (one nodule in the six lobes): fine steps first
        top = min(float(np.percentile(s, 99)) if s.size else 0.0, 20.0)
        thresholds = [k / 6 for k in range(1, 7)] + [t for t in (1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20)
                                                     if t <= max(top, 2.0)]
    points = []
    for t in thresholds:
        positive = (s >= t).astype(int).tolist()
        result = accuracy(positive, d.tolist())
        points.append({"threshold": float(t), "sensitivity": result["sensitivity"]["estimate"],
                       "specificity": result["specificity"]["estimate"], "tp": result["tp"], "fp": result["fp"],
                       "fn": result["fn"], "tn": result["tn"]})
    return {"analysis": "threshold_curve", "variable": "ans", "target": target,
            "rule": "positive when ans >= threshold",
            "groups": ["target present", "target absent"],
            "counts": {"n": int(s.size), "target_present": int(d.sum())}, "test": None, "statistic": None, "p": None,
            "points": points}
