"""``dpo-score tally`` as a user runs it: a real subprocess (the demo: test_demo.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from DPOScoringLib.cli.main import example_reading_path

from reading_builders import reading_doc


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "DPOScoringLib", *map(str, args)],
                          capture_output=True, text=True, encoding="utf-8", cwd=cwd, timeout=120)


def write(tmp_path, doc, name="reading.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_tally_prints_required_fields(tmp_path):
    path = write(tmp_path, reading_doc({"RUL": 6, "LLL": 4}, dendriform=["LING"]))
    result = run_cli("tally", path)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    for key in ("nnpol", "right_total", "left_total", "total", "ldo", "dpo_def1", "dpo_def2", "ans",
                "ans_note", "ild_extent", "coarseness_score", "lobe_distribution", "complete",
                "policy"):
        assert key in scores, key
    assert scores["total"] == 10 and scores["dpo_def1"] is True and scores["ldo"] == 1
    assert scores["ans"] == pytest.approx(2.0)


def test_tally_policy_options_change_the_definitions(tmp_path):
    path = write(tmp_path, reading_doc({"RUL": 6, "RLL": 6}))
    default = json.loads(run_cli("tally", path).stdout)
    variant = json.loads(run_cli("tally", path, "--def1", "total", "--def2", "lobe").stdout)
    assert (default["dpo_def1"], default["dpo_def2"]) == (False, False)
    assert (variant["dpo_def1"], variant["dpo_def2"]) == (True, True)
    assert variant["policy"]["id"].startswith("def1=total,def2=lobe")


@pytest.mark.parametrize("content,phrase", [
    ('{"schema": "dpo-reading/1", "findings": [{"lobe": "RXL", "kind": "nodular", '
     '"status": "confirmed"}]}', "findings[0].lobe"),
    ('{"schema": "dpo-reading/1", "findings": [{"lobe": "RUL", "kind": "bone", '
     '"status": "confirmed"}]}', "findings[0].kind"),
    ('{"schema": "dpo-reading/1", "lobes": {"RUL": {"ild": {"ggo": -1}}}}', "lobes.RUL.ild.ggo"),
    ('{"schema": "dpo-reading/1", "lobes": {"RUL": {"ild": {"ggo": 1.5}}}}', "lobes.RUL.ild.ggo"),
    ('{"schema": "dpo-scores/1"}', "is a scores file"),
    ('{"schema": "dpo-reading/1", "findings": [', "not valid JSON"),
])
def test_tally_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path, content, phrase):
    path = tmp_path / "reading.json"
    path.write_text(content, encoding="utf-8")
    result = run_cli("tally", path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and phrase in lines[0] and "reading.json" in lines[0]
    assert "Traceback" not in result.stderr


def test_tally_missing_file(tmp_path):
    result = run_cli("tally", tmp_path / "nope.json")
    assert result.returncode == 2 and "no such reading file" in result.stderr


def test_tally_out_is_atomic_and_never_overwrites_silently(tmp_path):
    path = write(tmp_path, reading_doc({"RUL": 1}))
    out = tmp_path / "scores.json"
    assert run_cli("tally", path, "--out", out).returncode == 0
    first = out.read_text(encoding="utf-8")
    again = run_cli("tally", path, "--out", out, "--def1", "total")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert out.read_text(encoding="utf-8") == first
    assert run_cli("tally", path, "--out", out, "--force", "--def1", "total").returncode == 0
    assert json.loads(out.read_text(encoding="utf-8"))["policy"]["def1"] == "total"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_example_reading_is_packaged_and_valid():
    result = run_cli("tally", example_reading_path())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["complete"] is False  # it holds a pending finding

