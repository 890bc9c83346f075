"""``dpo-score cohort`` on a cohort table built from the paper's published counts (cohort_builders.py)
reproduces the paper's printed numbers. Each test names the table cell or sentence it reproduces.
Where the paper's print disagrees with its own counts, the test asserts what the counts give and
Docs/cohort.md shows the computation."""

from __future__ import annotations

import json

import pytest

from DPOScoringLib.cli.main import main

from cohort_builders import paper_rows, write_cohort


def printed_p(p: float, digits: int = 3) -> str:
    """The paper's P format: '<.001' or the value at the printed number of decimals."""
    return "<.001" if p < 0.001 else f"{p:.{digits}f}".lstrip("0")


def run_cohort(tmp_path, rows, name, *options):
    table = write_cohort(tmp_path / f"{name}.csv", rows)
    out = tmp_path / name
    assert main(["cohort", str(table), "--out", str(out), *options]) == 0
    return json.loads((out / "stats.json").read_text(encoding="utf-8"))


def find(doc, analysis, variable, groups=None):
    hits = [a for a in doc["analyses"] if a["analysis"] == analysis and a.get("variable") == variable
            and (groups is None or a["groups"] == groups)]
    assert len(hits) == 1, (analysis, variable, groups, len(hits))
    return hits[0]


@pytest.fixture(scope="module")
def paper_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paper")
    run_cohort(folder, paper_rows(), "all", "--group", "diagnosis", "--reference", "IPF")
    return folder / "all"


@pytest.fixture(scope="module")
def paper(paper_folder):
    return json.loads((paper_folder / "stats.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def biopsied_rows():
    return [r for r in paper_rows() if r["biopsy_ossification"]]


# Table 1, columns IPF, Non-IPF, NSIP, Chronic HP: "n (%)"
TABLE1_PERCENT = {
    "sex": ("80.3", "35.6", "32.4", "39.6"),
    "ever_smoker": ("66.9", "41.3", "41.4", "41.3"),
    "honeycombing": ("27.9", "3.9", "1.2", "7.3"),
    "emphysema": ("43.0", "18.3", "17.2", "19.8"),
    "calcified_granuloma": ("14.9", "9.2", "8.2", "10.4"),
    "dpo_def1": ("28.5", "8.3", "11.1", "4.7"),
    "dpo_def2": ("18.9", "4.6", "6.1", "2.6"),
}


@pytest.mark.parametrize("variable", sorted(TABLE1_PERCENT))
def test_table1_percentages_of_each_binary_row(paper, variable):
    pooled = find(paper, "binary_by_group", variable, ["IPF", "rest"])
    by_group = find(paper, "binary_by_group", variable, ["IPF", "NSIP", "HP"])
    got = (pooled["counts"]["IPF"]["percent"], pooled["counts"]["rest"]["percent"],
           by_group["counts"]["NSIP"]["percent"], by_group["counts"]["HP"]["percent"])
    assert tuple(f"{v:.1f}" for v in got) == TABLE1_PERCENT[variable]


def test_table1_ever_smoker_n_854_and_subgroup_fractions(paper):
    by_group = find(paper, "binary_by_group", "ever_smoker", ["IPF", "NSIP", "HP"])["counts"]
    assert sum(c["n"] for c in by_group.values()) == 854
    assert (by_group["NSIP"]["positive"], by_group["NSIP"]["n"]) == (96, 232)  # "96/232 (41.4)"
    assert (by_group["HP"]["positive"], by_group["HP"]["n"]) == (76, 184)  # "76/184 (41.3)"


@pytest.mark.parametrize("variable", ["sex", "ever_smoker", "honeycombing", "emphysema", "dpo_def1", "dpo_def2"])
def test_table1_p_value_column_ipf_vs_non_ipf_below_001(paper, variable):
    entry = find(paper, "binary_by_group", variable, ["IPF", "rest"])
    assert entry["test"] == "chi2" and printed_p(entry["p"]) == "<.001"


def test_table1_calcified_granuloma_p_01(paper):
    entry = find(paper, "binary_by_group", "calcified_granuloma", ["IPF", "rest"])
    assert entry["test"] == "chi2" and printed_p(entry["p"], 2) == ".01"


def test_table1_note_calcified_granuloma_ipf_vs_nsip_011_and_vs_hp_127(paper):
    assert printed_p(find(paper, "binary_by_group", "calcified_granuloma", ["IPF", "NSIP"])["p"]) == ".011"
    assert printed_p(find(paper, "binary_by_group", "calcified_granuloma", ["IPF", "HP"])["p"]) == ".127"


def test_abstract_prevalence_166_and_106_of_892(paper):
    def1 = find(paper, "prevalence", "dpo_def1")["counts"]["all"]
    def2 = find(paper, "prevalence", "dpo_def2")["counts"]["all"]
    assert (def1["positive"], def1["n"], f"{def1['percent']:.1f}") == (166, 892, "18.6")
    assert (def2["positive"], def2["n"], f"{def2['percent']:.1f}") == (106, 892, "11.9")


def test_abstract_ipf_vs_hp_9_of_192_and_vs_nsip_27_of_244_both_below_001(paper):
    hp = find(paper, "binary_by_group", "dpo_def1", ["IPF", "HP"])
    nsip = find(paper, "binary_by_group", "dpo_def1", ["IPF", "NSIP"])
    assert (hp["counts"]["HP"]["positive"], hp["counts"]["HP"]["n"]) == (9, 192)
    assert (nsip["counts"]["NSIP"]["positive"], nsip["counts"]["NSIP"]["n"]) == (27, 244)
    assert printed_p(hp["p"]) == printed_p(nsip["p"]) == "<.001"


# Table 4, univariate column: odds ratio (95% CI), as printed; honeycombing's upper limit is
# printed 16.12, the counts give 16.11 (Docs/cohort.md)
TABLE4_UNIVARIATE = {
    "sex": ("7.37", "5.45", "9.98"),
    "ever_smoker": ("2.87", "2.17", "3.79"),
    "honeycombing": ("9.51", "5.62", "16.11"),
    "emphysema": ("3.35", "2.47", "4.55"),
    "dpo_def1": ("4.43", "2.98", "6.59"),
    "dpo_def2": ("4.83", "2.91", "8.02"),
}


@pytest.mark.parametrize("variable", sorted(TABLE4_UNIVARIATE))
def test_table4_univariate_odds_ratio_with_ci(paper, variable):
    entry = find(paper, "odds_ratio", variable)
    got = (f"{entry['estimate']:.2f}", f"{entry['ci'][0]:.2f}", f"{entry['ci'][1]:.2f}")
    assert got == TABLE4_UNIVARIATE[variable]
    assert printed_p(entry["p"]) == "<.001"


def test_table4_honeycombing_or_printed_9_5(paper):
    assert f"{find(paper, 'odds_ratio', 'honeycombing')['estimate']:.1f}" == "9.5"


def test_results_kappa_063_between_definitions_and_mcnemar(paper):
    entry = [a for a in paper["analyses"] if a["analysis"] == "agreement"
             and a["variables"] == ["dpo_def1", "dpo_def2"]][0]
    assert f"{entry['kappa']:.2f}" == "0.63"  # "k = 0.63"
    assert entry["counts"]["first_only"] - entry["counts"]["second_only"] == 166 - 106
    # printed "P = .005, McNemar chi2 test"; the counts (b = 73, c = 13) give chi2 = 41.9, P < .001
    assert entry["statistic"] == pytest.approx(60 ** 2 / 86)
    assert printed_p(entry["p"]) == "<.001" and printed_p(entry["p_exact"]) == "<.001"


TABLE1_MEDIAN_RANGE = {  # Table 1 "median (range)" of each group
    ("age", "IPF"): (72, 38, 93), ("age", "NSIP"): (60.5, 23, 86), ("age", "HP"): (66, 35, 88),
    ("ild_extent", "IPF"): (12, 2, 18), ("ild_extent", "NSIP"): (11, 2, 18), ("ild_extent", "HP"): (14, 3, 18),
    ("coarseness_score", "IPF"): (13, 7.2, 24), ("coarseness_score", "NSIP"): (12, 6, 18),
    ("ans", "IPF"): (0.67, 0, 71), ("ans", "NSIP"): (0.17, 0, 24), ("ans", "HP"): (0, 0, 9.2),
}


@pytest.mark.parametrize("cell", sorted(TABLE1_MEDIAN_RANGE))
def test_table1_median_and_range_per_group(paper, cell):
    variable, group = cell
    count = find(paper, "continuous_by_group", variable, ["IPF", "NSIP", "HP"])["counts"][group]
    assert (count["median"], count["min"], count["max"]) == pytest.approx(TABLE1_MEDIAN_RANGE[cell])


def test_table1_footnote_n_887_for_ans_and_coarseness(paper):
    for variable in ("ans", "coarseness_score"):
        counts = find(paper, "continuous_by_group", variable, ["IPF", "NSIP", "HP"])["counts"]
        assert sum(c["n"] for c in counts.values()) == 887


def test_fig2_sensitivity_and_specificity_of_the_definitions_for_ipf(paper):
    def1 = [a for a in paper["analyses"] if a["analysis"] == "diagnostic_accuracy" and a["variable"] == "dpo_def1"
            and a["target"] == "diagnosis == IPF"][0]
    assert (def1["sensitivity"]["k"], def1["sensitivity"]["n"]) == (130, 456)
    assert (def1["specificity"]["k"], def1["specificity"]["n"]) == (400, 436)
    curve = [a for a in paper["analyses"] if a["analysis"] == "threshold_curve"][0]
    assert curve["counts"]["n"] == 887 and curve["points"]
    sens = [p["sensitivity"] for p in curve["points"]]
    assert sens == sorted(sens, reverse=True)  # a higher threshold never finds more


def test_results_biopsy_dpo_def1_18_of_31_vs_4_of_88_and_def2_14_of_31_vs_2_of_88(tmp_path, biopsied_rows):
    doc = run_cohort(tmp_path, biopsied_rows, "biopsy", "--group", "biopsy_ossification", "--reference", "yes")
    def1 = find(doc, "binary_by_group", "dpo_def1", ["yes", "rest"])["counts"]
    def2 = find(doc, "binary_by_group", "dpo_def2", ["yes", "rest"])
    assert (def1["yes"]["positive"], def1["yes"]["n"], round(def1["yes"]["percent"])) == (18, 31, 58)
    assert (def1["rest"]["positive"], def1["rest"]["n"], round(def1["rest"]["percent"])) == (4, 88, 5)
    assert (def2["counts"]["yes"]["positive"], round(def2["counts"]["yes"]["percent"])) == (14, 45)
    assert (def2["counts"]["rest"]["positive"], round(def2["counts"]["rest"]["percent"])) == (2, 2)
    assert printed_p(def2["p"]) == "<.001"


def test_results_biopsied_ipf_vs_nsip_and_hp_by_definition(tmp_path, biopsied_rows):
    doc = run_cohort(tmp_path, biopsied_rows, "biopsied", "--group", "diagnosis", "--reference", "IPF")
    # "19 of 56 [34%] ... NSIP (one of 26 [5%], P = .003)": chi-square (every expected count >= 5)
    entry = find(doc, "binary_by_group", "dpo_def1", ["IPF", "NSIP"])
    assert entry["test"] == "chi2" and printed_p(entry["p"]) == ".003"
    assert round(entry["counts"]["IPF"]["percent"]) == 34
    # "... hypersensitivity pneumonitis (two of 37 [5%], P < .001)": Fisher gives .000997; chi-square .0013
    entry = find(doc, "binary_by_group", "dpo_def1", ["IPF", "HP"])
    assert printed_p(entry["p_fisher"]) == "<.001" and printed_p(entry["p_chi2"]) == ".001"
    # "definition 2 ... (14 of 56 [25%]) than NSIP (one of 26 [5%], P = .021)": the chi-square P;
    # an expected count is 4.76 < 5, so the rule uses Fisher (.029), and says so
    entry = find(doc, "binary_by_group", "dpo_def2", ["IPF", "NSIP"])
    assert printed_p(entry["p_chi2"]) == ".021" and entry["test"] == "fisher" and entry["expected_min"] < 5
    # "... or hypersensitivity pneumonitis (one of 37 [3%], P = .004)"
    entry = find(doc, "binary_by_group", "dpo_def2", ["IPF", "HP"])
    assert printed_p(entry["p_chi2"]) == ".004" and round(entry["counts"]["HP"]["percent"]) == 3


@pytest.mark.parametrize("row", [
    "| Male sex | 366 (80.3) | 155 (35.6) | 79 (32.4) | 76 (39.6) | <.001 |",
    "| Ever smoker (n = 854) | 293/438 (66.9) | 172/416 (41.3) | 96/232 (41.4) | 76/184 (41.3) | <.001 |",
    "| Honeycombing | 127 (27.9) | 17 (3.9) | 3 (1.2) | 14 (7.3) | <.001 |",
    "| DPO according to definition 1 | 130 (28.5) | 36 (8.3) | 27 (11.1) | 9 (4.7) | <.001 |",
    "| Male sex | 7.37 (5.45, 9.98) | <.001 |",
    "| DPO according to definition 2 | 4.83 (2.91, 8.02) | <.001 | ... | ... |",
])
def test_tables_md_prints_table1_and_table4_rows_in_the_papers_format(paper_folder, row):
    assert row in (paper_folder / "tables.md").read_text(encoding="utf-8")
