"""Each statistic of ``dpo-score cohort`` against a value computed by a different route (closed
formulas, direct enumeration, a hand-written IRLS) or a published worked example."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest

from DPOScoringLib.cohort import cohort_models as models
from DPOScoringLib.cohort import cohort_stats as stats
from DPOScoringLib.cohort.cohort_cli import allocate, draw_sample
from DPOScoringLib.cohort.cohort_table import CohortTable


def chi2_sf_df1(x: float) -> float:
    return math.erfc(math.sqrt(x / 2))


def pearson_chi2(table) -> float:
    table = [[float(v) for v in row] for row in table]
    total = sum(map(sum, table))
    rows = [sum(r) for r in table]
    cols = [sum(c) for c in zip(*table)]
    return sum((table[i][j] - rows[i] * cols[j] / total) ** 2 / (rows[i] * cols[j] / total)
               for i in range(len(rows)) for j in range(len(cols)))


def fisher_by_enumeration(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher: sum of the hypergeometric probabilities of every table with these margins
    that is no more probable than the observed one."""
    row1, col1, n = a + b, a + c, a + b + c + d

    def prob(x):
        return math.comb(col1, x) * math.comb(n - col1, row1 - x) / math.comb(n, row1)

    observed = prob(a)
    low, high = max(0, row1 + col1 - n), min(row1, col1)
    return min(1.0, sum(prob(x) for x in range(low, high + 1) if prob(x) <= observed * (1 + 1e-7)))


@pytest.mark.parametrize("cells", [(68, 388, 40, 396), (19, 37, 1, 25), (14, 42, 1, 25), (3, 2, 1, 9), (0, 5, 5, 0)])
def test_two_by_two_chi_square_and_fisher_match_the_formula_and_the_enumeration(cells):
    a, b, c, d = cells
    entry = stats.compare_binary([[a, b], [c, d]], ["x", "y"])
    assert entry["statistic"] == pytest.approx(pearson_chi2([[a, b], [c, d]]), rel=1e-9)
    assert entry["p_chi2"] == pytest.approx(chi2_sf_df1(pearson_chi2([[a, b], [c, d]])), rel=1e-9)
    assert entry["p_fisher"] == pytest.approx(fisher_by_enumeration(a, b, c, d), rel=1e-9)
    expected_min = min((a + b) * (a + c), (a + b) * (b + d), (c + d) * (a + c), (c + d) * (b + d)) / (a + b + c + d)
    assert entry["test"] == ("fisher" if expected_min < 5 else "chi2")
    assert entry["p"] == (entry["p_fisher"] if expected_min < 5 else entry["p_chi2"])


def test_three_by_two_chi_square_with_two_df_is_exp_minus_half_x():
    # with 2 degrees of freedom the chi-square survival function is exp(-x/2) exactly
    table = [[68, 388], [20, 224], [20, 172]]
    entry = stats.compare_binary(table, ["IPF", "NSIP", "HP"])
    x = pearson_chi2(table)
    assert entry["df"] == 2 and entry["statistic"] == pytest.approx(x, rel=1e-9)
    assert entry["p_chi2"] == pytest.approx(math.exp(-x / 2), rel=1e-9)
    assert "Monte Carlo" in entry["fisher_method"] and 0 < entry["p_fisher"] < 1


def test_mcnemar_and_kappa_match_their_formulas():
    a, b, c, d = 93, 73, 13, 713
    first = [1] * (a + b) + [0] * (c + d)
    second = [1] * a + [0] * b + [1] * c + [0] * d
    entry = stats.agreement(first, second, ["x", "y"])
    assert entry["statistic"] == pytest.approx((b - c) ** 2 / (b + c), rel=1e-12)
    assert entry["p"] == pytest.approx(chi2_sf_df1((b - c) ** 2 / (b + c)), rel=1e-9)
    exact = min(1.0, 2 * sum(math.comb(b + c, k) for k in range(min(b, c) + 1)) / 2 ** (b + c))
    assert entry["p_exact"] == pytest.approx(exact, rel=1e-9)
    n = a + b + c + d
    po = (a + d) / n
    pe = ((a + b) * (a + c) + (c + d) * (b + d)) / n ** 2
    assert entry["kappa"] == pytest.approx((po - pe) / (1 - pe), rel=1e-12)
    assert entry["ci"][0] < entry["kappa"] < entry["ci"][1]


def test_rank_sum_matches_pair_counting_with_tie_corrected_normal_approximation():
    rng = np.random.RandomState(3)
    x = np.round(rng.gamma(1.0, 2.0, 40), 1)
    y = np.round(rng.gamma(1.5, 2.0, 33), 1)
    u = sum(1.0 if xi > yj else 0.5 if xi == yj else 0.0 for xi in x for yj in y)
    n1, n2 = len(x), len(y)
    n = n1 + n2
    _, counts = np.unique(np.concatenate([x, y]), return_counts=True)
    variance = n1 * n2 / 12 * ((n + 1) - np.sum(counts ** 3 - counts) / (n * (n - 1)))
    z = (u - n1 * n2 / 2) / math.sqrt(variance)
    result = stats.rank_sum(x, y)
    assert result["statistic"] == pytest.approx(u)
    assert result["p"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)


def test_spearman_matches_the_published_worked_example():
    # Wikipedia, "Spearman's rank correlation coefficient", example: IQ vs hours of TV per week,
    # rho = -29/165, P = 0.627188 (t distribution)
    iq = [106, 100, 86, 101, 99, 103, 97, 113, 112, 110]
    tv = [7, 27, 2, 50, 28, 29, 20, 12, 6, 17]
    table = CohortTable("x", list(range(10)), ["a"] * 10, "g", "a", ["a"], continuous={"ans": iq, "age": tv})
    entry = stats.correlation(table, "ans", "age")
    assert entry["estimate"] == pytest.approx(-29 / 165, rel=1e-12)
    assert entry["p"] == pytest.approx(0.627188, abs=5e-7)


def irls(y, columns):
    """Logistic regression by iteratively reweighted least squares (numpy only): coefficients and SEs."""
    x = np.column_stack([np.ones(len(y))] + list(columns))
    beta = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-x @ beta))
        w = p * (1 - p)
        step = np.linalg.solve(x.T @ (x * w[:, None]), x.T @ (y - p))
        beta += step
        if np.max(np.abs(step)) < 1e-12:
            break
    p = 1 / (1 + np.exp(-x @ beta))
    cov = np.linalg.inv(x.T @ (x * (p * (1 - p))[:, None]))
    return beta, np.sqrt(np.diag(cov))


def _synthetic_table(n=400, seed=11):
    rng = np.random.RandomState(seed)
    age = rng.normal(65, 10, n).round()
    male = (rng.uniform(size=n) < 0.5).astype(int)
    noise = rng.normal(0, 1, n)
    logit = -13 + 0.2 * age + 1.5 * male
    outcome = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    group = ["IPF" if o else "other" for o in outcome]
    table = CohortTable("x", [str(i) for i in range(n)], group, "diagnosis", "IPF", ["IPF", "other"],
                        binary={"sex": male.tolist()}, continuous={"age": age.tolist(), "noise": noise.tolist()})
    return table, outcome, age, male, noise


def test_univariate_odds_ratio_matches_an_independent_irls_fit():
    table, outcome, age, _, _ = _synthetic_table()
    entry = models.odds_ratio(table, "age")
    beta, se = irls(outcome, [age])
    assert entry["estimate"] == pytest.approx(math.exp(beta[1]), rel=1e-6)
    assert entry["ci"] == pytest.approx([math.exp(beta[1] - 1.959963984540054 * se[1]),
                                         math.exp(beta[1] + 1.959963984540054 * se[1])], rel=1e-6)
    assert entry["p"] == pytest.approx(math.erfc(abs(beta[1] / se[1]) / math.sqrt(2)), rel=1e-5)


def test_backward_elimination_drops_the_noise_at_p_01_and_keeps_the_final_fit():
    table, outcome, age, male, noise = _synthetic_table()
    entry = models.multivariate_logistic(table, ["age", "sex", "noise"])
    removed = [s["removed"] for s in entry["steps"] if s["removed"]]
    assert removed == ["noise"]
    assert entry["steps"][0]["removed_p"] >= 0.01
    assert set(entry["final"]) == {"age", "sex"}
    assert all(term["p"] < 0.01 for term in entry["final"].values())
    beta, _ = irls(outcome, [age, male])
    assert entry["final"]["age"]["estimate"] == pytest.approx(math.exp(beta[1]), rel=1e-6)
    assert entry["final"]["sex"]["estimate"] == pytest.approx(math.exp(beta[2]), rel=1e-6)


def test_lnskew0_leaves_zero_skewness_by_the_moment_formula():
    rng = np.random.RandomState(5)
    values = np.concatenate([np.zeros(200), rng.lognormal(0, 1.2, 300)])
    transformed, k = models.lnskew0(values)
    assert k < values.min()
    assert np.allclose(transformed, np.log(values - k))
    d = transformed - transformed.mean()
    assert abs(np.sum(d ** 3) / len(d) / (np.sum(d ** 2) / len(d)) ** 1.5) < 1e-6


def test_icc_matches_shrout_and_fleiss_1979():
    # Shrout & Fleiss (1979) Psychol Bull 86:420, Table 2 (6 targets, 4 judges): ICC(2,1) = .29, ICC(3,1) = .71
    ratings = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    result = models.icc_2_1(ratings)
    assert round(result["estimate"], 2) == 0.29
    assert round(result["icc3_1"], 2) == 0.71
    assert result["ci"][0] < result["estimate"] < result["ci"][1]


def test_clopper_pearson_matches_the_closed_form_at_zero_and_all():
    result = stats.accuracy([0] * 10 + [1] * 5, [1] * 10 + [0] * 5)  # sensitivity 0/10, specificity 0/5
    assert result["sensitivity"]["ci"][1] == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-9)
    result = stats.accuracy([1] * 10, [1] * 10)
    assert result["sensitivity"]["ci"][0] == pytest.approx(0.025 ** (1 / 10), rel=1e-9)


def test_sample_allocation_is_proportional_and_reproducible():
    # the paper drew 100 of 892 in the cohort's proportions: 456, 244, 192 -> 51.1, 27.4, 21.5
    assert allocate({"IPF": 456, "NSIP": 244, "HP": 192}, 100) == {"IPF": 51, "NSIP": 27, "HP": 22}
    rows = [{"case_id": f"{g}-{i}", "dx": g} for g, n in (("IPF", 456), ("NSIP", 244), ("HP", 192)) for i in range(n)]
    first = draw_sample(rows, 100, "dx", 42)
    assert len(first) == len({c for c, _ in first}) == 100
    assert first == draw_sample(list(reversed(rows)), 100, "dx", 42)  # row order does not matter
    assert first != draw_sample(rows, 100, "dx", 43)
    # the stream is numpy's legacy Mersenne Twister: the first stratum (HP, 192 cases) draws the
    # same indices as RandomState(42).choice itself
    hp_ids = sorted(f"HP-{i}" for i in range(192))
    picks = np.random.RandomState(42).choice(192, 22, replace=False)
    assert [c for c, s in first if s == "HP"] == [hp_ids[i] for i in sorted(picks)]


@pytest.mark.parametrize("positives", list(product([0, 3], [0, 4])))
def test_degenerate_tables_do_not_crash(positives):
    a, c = positives
    entry = stats.compare_binary([[a, 3 - a], [c, 4 - c]], ["x", "y"])
    assert entry["p"] is None or 0 <= entry["p"] <= 1


def test_tiny_three_group_table_gets_a_scalar_fisher_p():
    # scipy returns a shape-(1,) P for tables this small; the entry must still hold a number
    entry = stats.compare_binary([[1, 0], [0, 1], [1, 0]], ["a", "b", "c"])
    assert entry["test"] == "fisher" and isinstance(entry["p_fisher"], float) and 0 < entry["p_fisher"] <= 1


def test_threshold_curve_counts_match_counting_by_hand():
    scores = [0, 0, 1 / 6, 0.5, 1, 2, 3, 7, None, 12]
    truth = [0, 1, 0, 1, 1, 0, 1, 1, 1, None]
    curve = stats.threshold_curve(scores, truth, "x", thresholds=[1 / 6, 1, 2.5])
    for point in curve["points"]:
        pairs = [(s, d) for s, d in zip(scores, truth) if s is not None and d is not None]
        tp = sum(1 for s, d in pairs if s >= point["threshold"] and d == 1)
        tn = sum(1 for s, d in pairs if s < point["threshold"] and d == 0)
        assert point["sensitivity"] == pytest.approx(tp / sum(d for _, d in pairs))
        assert point["specificity"] == pytest.approx(tn / sum(1 - d for _, d in pairs))
