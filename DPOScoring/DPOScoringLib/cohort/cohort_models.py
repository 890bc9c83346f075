"""Regression models and inter-reader reliability for ``dpo-score cohort`` (statsmodels, scipy).

* odds ratios of belonging to the reference group (the paper's IPF vs the rest, Table 4):
  univariate logistic regression per variable, Wald 95 % CIs; a multivariate model by backward
  elimination, removing the least significant variable while its Wald P >= .01 (the paper's
  "removal at a level of significance of P = .01"), each step reported;
* linear regression of ANS on the covariates after Stata's ``lnskew0`` zero-skewness log transform,
  ``ln(ans - k)`` with k chosen so the sample skewness of the result is zero;
* ICC(2,1) (two-way random effects, absolute agreement, single rater; Shrout & Fleiss 1979) for the
  two readers' counts and scores.
"""

from __future__ import annotations

import warnings

import numpy as np

ELIMINATION_P = 0.01


def _float(value):
    value = float(value)
    return value if np.isfinite(value) else None


def _design(table, outcome: list, predictors: list, extra=None):
    """Complete cases over the outcome and the predictors: (y, X columns dict, n)."""
    known = {**table.continuous, **table.binary, **(extra or {})}
    columns = {name: known[name] for name in predictors}
    keep = [i for i in range(table.n) if outcome[i] is not None and all(columns[c][i] is not None for c in columns)]
    y = np.array([outcome[i] for i in keep], dtype=float)
    x = {name: np.array([columns[name][i] for i in keep], dtype=float) for name in predictors}
    return y, x, len(keep)


def _logit(y, x: dict):
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    names = list(x)
    design = sm.add_constant(np.column_stack([x[n] for n in names]), has_constant="add")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sm.Logit(y, design).fit(disp=0, maxiter=200)
    ci = result.conf_int(0.05)
    terms = {}
    for index, name in enumerate(names, start=1):
        with np.errstate(over="ignore"):  # a huge coefficient: an infinite OR, reported as null
            odds = [np.exp(result.params[index]), np.exp(ci[index][0]), np.exp(ci[index][1])]
        terms[name] = {"estimate": _float(odds[0]), "ci": [_float(odds[1]), _float(odds[2])],
                       "coefficient": _float(result.params[index]), "se": _float(result.bse[index]),
                       "statistic": _float(result.tvalues[index]), "p": _float(result.pvalues[index])}
    return terms, result


def _fit_or_note(y, x):
    try:
        return _logit(y, x), None
    except Exception as error:  # noqa: BLE001 - separation, singular design: reported, not fatal
        return (None, None), f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def outcome_of(table) -> list:
    return [1 if g == table.reference else 0 for g in table.group]


def odds_ratio(table, variable: str) -> dict:
    """Univariate logistic regression of "in the reference group" on one variable."""
    y, x, n = _design(table, outcome_of(table), [variable])
    kind = "binary" if variable in table.binary else "continuous"
    entry = {"analysis": "odds_ratio", "variable": variable, "groups": [table.reference, "rest"],
             "outcome": f"{table.group_column} == {table.reference}", "kind": kind,
             "unit": "presence" if kind == "binary" else "one unit",
             "counts": {"n": n, "outcome_positive": int(y.sum())}, "test": "wald (logistic regression)"}
    if kind == "binary":
        v = x[variable]
        entry["counts"].update({"exposed_in_reference": int(np.sum((v == 1) & (y == 1))),
                                "unexposed_in_reference": int(np.sum((v == 0) & (y == 1))),
                                "exposed_in_rest": int(np.sum((v == 1) & (y == 0))),
                                "unexposed_in_rest": int(np.sum((v == 0) & (y == 0)))})
    (terms, _), note = _fit_or_note(y, x)
    if terms is None:
        entry.update({"estimate": None, "ci": None, "statistic": None, "p": None, "note": note})
    else:
        term = terms[variable]
        entry.update({"estimate": term["estimate"], "ci": term["ci"], "statistic": term["statistic"],
                      "p": term["p"], "coefficient": term["coefficient"], "se": term["se"]})
    return entry


def multivariate_logistic(table, predictors: list, threshold: float = ELIMINATION_P) -> dict:
    """Backward elimination: fit all, drop the variable with the largest P while that P >= threshold."""
    y, x, n = _design(table, outcome_of(table), predictors)
    entry = {"analysis": "multivariate_logistic", "variables": list(predictors), "variable": "model",
             "groups": [table.reference, "rest"], "outcome": f"{table.group_column} == {table.reference}",
             "counts": {"n": n, "outcome_positive": int(y.sum()) if n else 0},
             "test": "wald (logistic regression), backward elimination",
             "elimination": f"remove the largest P while P >= {threshold}", "steps": []}
    current = list(predictors)
    while current:
        (terms, result), note = _fit_or_note(y, {c: x[c] for c in current})
        if terms is None:
            entry.update({"final": None, "note": note, "statistic": None, "p": None})
            return entry
        worst = max(current, key=lambda c: terms[c]["p"] if terms[c]["p"] is not None else 1.0)
        worst_p = terms[worst]["p"] if terms[worst]["p"] is not None else 1.0
        step = {"variables": list(current), "terms": terms, "log_likelihood": _float(result.llf),
                "removed": worst if worst_p >= threshold else None, "removed_p": worst_p if worst_p >= threshold
                else None}
        entry["steps"].append(step)
        if worst_p < threshold:
            break
        current.remove(worst)
    final = entry["steps"][-1] if entry["steps"] and entry["steps"][-1]["removed"] is None else None
    entry["final"] = final["terms"] if final else {}
    entry["statistic"] = None
    entry["p"] = None
    return entry


def skewness(values) -> float:
    values = np.asarray(values, dtype=float)
    centred = values - values.mean()
    return float(np.mean(centred ** 3) / np.mean(centred ** 2) ** 1.5)


def lnskew0(values):
    """Stata's lnskew0: (ln(x - k), k) with k < min(x) chosen so the result has zero skewness.

    For right-skewed x (as ANS); left-skewed x is used as -x, as Stata does. ValueError when no k exists."""
    from scipy.optimize import brentq

    values = np.asarray(values, dtype=float)
    if values.size < 3 or np.ptp(values) == 0:
        raise ValueError("needs at least 3 distinct values")
    sign = 1.0 if skewness(values) >= 0 else -1.0
    x = sign * values
    low = x.min()
    span = np.ptp(x)

    def f(k):
        return skewness(np.log(x - k))

    right = low - span * 1e-9  # ln(x - k) -> -inf at the minimum: skewness < 0
    left = low - span  # k -> -inf: ln(x - k) -> the skewness of x, > 0
    while f(left) <= 0:
        left = low - (low - left) * 10
        if low - left > span * 1e12:
            raise ValueError("no zero-skewness shift found")
    if f(right) >= 0:
        raise ValueError("the log transform cannot remove the skewness")
    k = brentq(f, left, right, xtol=span * 1e-12)
    return np.log(x - k), float(k)


def linear_regression_lnskew0(table, response: str, predictors: list, extra=None) -> dict:
    """OLS of lnskew0(response) on the predictors (``extra``: more 0/1 columns, e.g. the group)."""
    import statsmodels.api as sm

    outcome = table.continuous[response]
    y, x, n = _design(table, outcome, predictors, extra)
    entry = {"analysis": "linear_regression", "variable": response, "variables": list(predictors),
             "groups": [table.reference, "rest"], "counts": {"n": n}, "test": "OLS t tests",
             "transform": "lnskew0: ln(response - k), k chosen for zero skewness (Stata lnskew0)"}
    try:
        transformed, k = lnskew0(y)
    except ValueError as error:
        entry.update({"statistic": None, "p": None, "note": f"lnskew0: {error}"})
        return entry
    design = sm.add_constant(np.column_stack([x[c] for c in predictors]), has_constant="add")
    if n <= design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]:
        entry.update({"k": _float(k), "statistic": None, "p": None,
                      "note": "too few cases or collinear covariates for this model"})
        return entry
    result = sm.OLS(transformed, design).fit()
    ci = result.conf_int(0.05)
    entry.update({"k": _float(k), "skewness_after": _float(skewness(transformed)),
                  "skewness_before": _float(skewness(y)), "r_squared": _float(result.rsquared),
                  "statistic": _float(result.fvalue), "p": _float(result.f_pvalue),
                  "terms": {c: {"estimate": _float(result.params[i]), "ci": [_float(ci[i][0]), _float(ci[i][1])],
                                "statistic": _float(result.tvalues[i]), "p": _float(result.pvalues[i])}
                            for i, c in enumerate(predictors, start=1)}})
    return entry


def icc_2_1(ratings) -> dict:
    """ICC(2,1) of an n x k matrix (cases x readers), from the two-way ANOVA mean squares, with its
    F test P (cases differ) and the Shrout-Fleiss 95 % CI; also ICC(3,1) (consistency)."""
    from scipy import stats

    y = np.asarray(ratings, dtype=float)
    n, k = y.shape
    grand = y.mean()
    ss_rows = k * np.sum((y.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((y.mean(axis=0) - grand) ** 2)
    ss_error = np.sum((y - grand) ** 2) - ss_rows - ss_cols
    msr, msc = ss_rows / (n - 1), ss_cols / (k - 1)
    mse = ss_error / ((n - 1) * (k - 1))
    denominator = msr + (k - 1) * mse + k * (msc - mse) / n
    if denominator <= 0 or msr == 0 and mse == 0:
        return {"estimate": None, "ci": None, "statistic": None, "p": None, "icc3_1": None,
                "note": "no variance between cases"}
    icc = (msr - mse) / denominator
    icc3 = (msr - mse) / (msr + (k - 1) * mse) if msr + (k - 1) * mse > 0 else None
    f_value = msr / mse if mse > 0 else np.inf
    p = stats.f.sf(f_value, n - 1, (n - 1) * (k - 1)) if np.isfinite(f_value) else 0.0
    ci = [None, None]
    if mse > 0:  # Shrout & Fleiss (1979), eq. for ICC(2,1) via Satterthwaite degrees of freedom
        fj = msc / mse
        vn = (k - 1) * (n - 1) * (k * icc * fj + n * (1 + (k - 1) * icc) - k * icc) ** 2
        vd = (n - 1) * k ** 2 * icc ** 2 * fj ** 2 + (n * (1 + (k - 1) * icc) - k * icc) ** 2
        v = vn / vd if vd > 0 else np.inf
        f_low = stats.f.ppf(0.975, n - 1, v)
        f_high = stats.f.ppf(0.975, v, n - 1)
        ci = [_float(n * (msr - f_low * mse) / (f_low * (k * msc + (k * n - k - n) * mse) + n * msr)),
              _float(n * (f_high * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_high * msr))]
    return {"estimate": _float(icc), "ci": ci, "statistic": _float(f_value), "p": _float(p),
            "icc3_1": _float(icc3) if icc3 is not None else None}
