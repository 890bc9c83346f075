"""``dpo-score cohort`` as a command: it reads the table ``batch`` writes, writes stats.json,
tables.html (self-contained) and tables.md, compares two readers, draws the second reader's sample,
and refuses bad input in one line with exit 2, writing nothing."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from DPOScoringLib.audit.batch import COHORT_COLUMNS, _write_cohort
from DPOScoringLib.cli.main import main
from DPOScoringLib.common.anatomy import LOBE_CODES

from cohort_builders import paper_rows, write_cohort


def batch_rows(n=60, seed=0, shift=0):
    """Rows as ``batch`` builds them (its column names and value types), with manifest columns."""
    import numpy as np

    rng = np.random.RandomState(seed)
    rows = []
    for i in range(n):
        ipf = i % 2 == 0
        counts = {c: int(rng.poisson(3 if ipf else 1)) + (shift if c == "RLL" and i % 5 == 0 else 0)
                  for c in LOBE_CODES}
        total = sum(counts.values())
        rows.append({"case_id": f"case{i:03d}", "status": "done", **{f"nnpol_{c}": counts[c] for c in LOBE_CODES},
                     "right_total": counts["RUL"] + counts["RML"] + counts["RLL"], "left_total": 0, "total": total,
                     "ldo": 0, "dpo_def1": total >= 10, "dpo_def2": max(counts.values()) >= 5, "ans": total / 6,
                     "ild_extent": int(rng.randint(2, 19)), "coarseness_score": float(rng.uniform(6, 24)),
                     "complete": True, "pending_candidates": 0, "provisional_total": total, "warnings": "",
                     "input_sha256": "0" * 64, "bundle": f"/x/case{i:03d}", "diagnosis": "IPF" if ipf else "NSIP",
                     "sex": "M" if rng.uniform() < (0.8 if ipf else 0.35) else "F", "age": int(rng.randint(40, 90)),
                     "honeycombing": "yes" if rng.uniform() < (0.3 if ipf else 0.05) else "no"})
    failed = {column: "" for column in COHORT_COLUMNS}
    failed.update({"case_id": "broken", "status": "failed: DPOInputError: unreadable", "diagnosis": "IPF"})
    return rows + [failed]


@pytest.fixture(scope="module")
def batch_table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    _write_cohort(folder, batch_rows())  # the batch's own writer
    return folder / "cohort.csv"


@pytest.fixture(scope="module")
def analysed(batch_table, tmp_path_factory):
    second = tmp_path_factory.mktemp("reader2")
    _write_cohort(second, batch_rows(seed=0, shift=4)[:40])
    out = tmp_path_factory.mktemp("out") / "stats"
    assert main(["cohort", str(batch_table), "--group", "diagnosis", "--reference", "IPF",
                 "--second-reader", str(second / "cohort.csv"), "--out", str(out)]) == 0
    return out


def test_reads_the_batch_table_and_leaves_out_failed_cases(analysed):
    doc = json.loads((analysed / "stats.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "dpo-cohort-stats/1"
    assert doc["cohort"]["n"] == 60 and doc["cohort"]["left_out"] == {"case not scored (status failed)": 1}
    assert {"dpo_def1", "dpo_def2", "sex", "honeycombing"} <= set(doc["cohort"]["binary"])
    assert {"age", "ans", "total", "ild_extent", "coarseness_score"} <= set(doc["cohort"]["continuous"])
    kinds = {a["analysis"] for a in doc["analyses"]}
    assert {"prevalence", "binary_by_group", "continuous_by_group", "correlation", "odds_ratio",
            "multivariate_logistic", "linear_regression", "agreement", "diagnostic_accuracy",
            "threshold_curve"} <= kinds
    for entry in doc["analyses"]:
        assert {"analysis", "groups", "counts", "test", "p"} <= set(entry), entry["analysis"]
        assert "variable" in entry or "variables" in entry
        if entry.get("test") in ("chi2", "fisher"):
            assert "p_fisher" in entry and "p_chi2" in entry
    assert doc["provenance"]["libraries"]["statsmodels"]


def test_second_reader_kappa_per_definition_and_icc_per_lobe_and_case(analysed):
    doc = json.loads((analysed / "stats.json").read_text(encoding="utf-8"))
    readers = [a for a in doc["analyses"] if a["analysis"] == "agreement" and a["groups"] == ["reader 1", "reader 2"]]
    kappas = {a["variable"] for a in readers if "kappa" in a}
    assert kappas == {"dpo_def1", "dpo_def2"}
    iccs = {a["variable"]: a for a in readers if str(a["test"]).startswith("icc")}
    assert {f"nnpol_{c}" for c in LOBE_CODES} | {"total", "ans"} <= set(iccs)
    assert iccs["nnpol_RLL"]["counts"]["n"] == 40 and iccs["nnpol_RLL"]["level"] == "lobe"
    # reader 2 added 4 nodules to RLL in every fifth case: RLL agrees less than an untouched lobe
    assert iccs["nnpol_RLL"]["estimate"] < iccs["nnpol_LLL"]["estimate"] == pytest.approx(1.0)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls, self.images = [], []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)
                if tag == "img":
                    self.images.append(value)


def test_tables_html_is_self_contained_with_tables_1_to_4_and_the_figure(analysed):
    html = (analysed / "tables.html").read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(html)
    assert all(url.startswith(("data:", "#")) for url in parser.urls), parser.urls
    assert len(parser.images) == 1
    png = base64.b64decode(parser.images[0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == (analysed / "threshold-curve.png").read_bytes()
    for title in ("Table 1.", "Table 2.", "Table 3.", "Table 4.", "Inter-reader agreement"):
        assert title in html
        assert title in (analysed / "tables.md").read_text(encoding="utf-8")
    assert "Non-IPF (n = 30)" in html and "IPF (n = 30)" in html


def test_refuses_to_overwrite_an_earlier_run_without_force(analysed, batch_table, capsys):
    before = (analysed / "stats.json").read_bytes()
    assert main(["cohort", str(batch_table), "--group", "diagnosis", "--out", str(analysed)]) == 2
    assert "not overwritten" in capsys.readouterr().err
    assert (analysed / "stats.json").read_bytes() == before


def _bad(tmp_path, rows_or_text, *options):
    table = tmp_path / "bad.csv"
    if isinstance(rows_or_text, str):
        table.write_text(rows_or_text)
    else:
        write_cohort(table, rows_or_text)
    out = tmp_path / "out"
    return table, out, ["cohort", str(table), *options, "--out", str(out)]


def _small_paper_rows():
    return [r for r in paper_rows() if r["case_id"].endswith(("1", "2"))]


@pytest.mark.parametrize("case", ["missing column", "unknown level", "header only", "empty file", "non-numeric age",
                                  "non-binary value", "no such file", "one level"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, case):
    rows = _small_paper_rows()
    options = ["--group", "diagnosis"]
    if case == "missing column":
        options = ["--group", "histology"]
    elif case == "unknown level":
        options += ["--reference", "UIP"]
    elif case == "non-numeric age":
        rows[3]["age"] = "seventy"
    elif case == "non-binary value":
        rows[5]["honeycombing"] = "maybe"
    elif case == "one level":
        rows = [r for r in rows if r["diagnosis"] == "IPF"]
    text = {"header only": ",".join(rows[0]) + "\n", "empty file": ""}.get(case, rows)
    table, out, argv = _bad(tmp_path, text, *options)
    if case == "no such file":
        table.unlink()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dpo-score: error:") and "\n" not in err, err
    expected = {"missing column": "--group histology", "unknown level": "--reference UIP", "non-numeric age":
                "'seventy'", "non-binary value": "'maybe'", "one level": "one level"}.get(case, str(table))
    assert expected in err
    assert not out.exists()


def test_bad_input_from_the_shell_has_no_traceback(tmp_path):
    table, out, argv = _bad(tmp_path, _small_paper_rows(), "--group", "nope")
    result = subprocess.run([sys.executable, "-m", "DPOScoringLib", *argv], capture_output=True, text=True,
                            encoding="utf-8",
                            timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_sample_is_stratified_reproducible_and_listed(tmp_path, capsys):
    table = write_cohort(tmp_path / "c.csv", paper_rows())
    argv = ["cohort", "sample", str(table), "--n", "100", "--stratify", "diagnosis", "--seed", "7"]
    assert main(argv + ["--out", str(tmp_path / "s.csv")]) == 0
    first = capsys.readouterr()
    assert "Mersenne Twister" in first.err and "seed 7" in first.err
    lines = first.out.strip().splitlines()
    assert lines[0] == "case_id,stratum" and len(lines) == 101
    strata = [line.split(",")[1] for line in lines[1:]]
    assert (strata.count("IPF"), strata.count("NSIP"), strata.count("HP")) == (51, 27, 22)
    assert (tmp_path / "s.csv").read_text(encoding="utf-8") == first.out
    assert main(argv) == 0 and capsys.readouterr().out == first.out
    assert main(argv[:-1] + ["8"]) == 0 and capsys.readouterr().out != first.out


@pytest.mark.parametrize("options,expected", [(["--n", "5000"], "--n 5000"),
                                              (["--n", "10", "--stratify", "nope"], "--stratify nope")])
def test_sample_bad_input_is_one_line_exit_2(tmp_path, capsys, options, expected):
    table = write_cohort(tmp_path / "c.csv", _small_paper_rows())
    assert main(["cohort", "sample", str(table), "--seed", "1", *options]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err


def test_help_names_both_forms(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["cohort", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "--group" in text and "cohort sample" in text


def test_a_tiny_cohort_with_no_positive_still_gives_every_file(tmp_path):
    rows = [{"case_id": str(i), "diagnosis": "ABC"[i % 3], "dpo_def1": "False", "dpo_def2": "False",
             "ans": "0", "age": str(50 + i), "sex": "MF"[i % 2]} for i in range(6)]
    table = write_cohort(tmp_path / "tiny.csv", rows)
    assert main(["cohort", str(table), "--group", "diagnosis", "--out", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert find_prevalence(doc)["counts"]["all"] == {"positive": 0, "n": 6, "percent": 0.0}
    assert (tmp_path / "out" / "tables.html").is_file() and (tmp_path / "out" / "tables.md").is_file()


def find_prevalence(doc):
    return [a for a in doc["analyses"] if a["analysis"] == "prevalence" and a["variable"] == "dpo_def1"][0]


def test_definition_variants_are_recomputed_from_the_per_lobe_counts(analysed, batch_table):
    doc = json.loads((analysed / "stats.json").read_text(encoding="utf-8"))
    assert doc["cohort"]["definition_variants"] == ["dpo_def1_total", "dpo_def2_lobe", "dpo_def2_each_lung"]
    rows = [r for r in batch_rows() if r["status"] == "done"]
    right, left = ("RUL", "RML", "RLL"), ("LUL", "LING", "LLL")
    by_hand = {  # spec section 5, counted here without definitions.py
        "dpo_def1_total": sum(r["total"] >= 10 for r in rows),
        "dpo_def2_lobe": sum(max(r[f"nnpol_{c}"] for c in right + left) >= 5 for r in rows),
        "dpo_def2_each_lung": sum(max(r[f"nnpol_{c}"] for c in right) >= 5 and max(r[f"nnpol_{c}"] for c in left) >= 5
                                  for r in rows),
    }
    for name, expected in by_hand.items():
        entry = [a for a in doc["analyses"] if a["analysis"] == "prevalence" and a["variable"] == name][0]
        assert entry["counts"]["all"]["positive"] == expected, name
    assert "Prevalence of DPO by definition and variant" in (analysed / "tables.html").read_text(encoding="utf-8")
