"""``dpo-score demo`` as a user runs it (a real subprocess): the pipeline on the built-in phantom,
its result told against the planted truth, and reruns into its own folder only."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np

from DPOScoringLib.synthetic.phantom import truth_reach_mm


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "DPOScoringLib", *map(str, args)],
                          capture_output=True, text=True, encoding="utf-8", timeout=600)


def expected_against_truth(folder):
    """Found / missed nodular POs and the truth's R/L counts, worked out from the files alone."""
    truth = json.loads((folder / "phantom" / "truth.json").read_text(encoding="utf-8"))
    candidates = json.loads((folder / "bundle" / "candidates.json").read_text(encoding="utf-8"))["candidates"]
    nodular = [f for f in truth["findings"] if f["kind"] == "nodular"]

    def found(f):
        return any(np.linalg.norm(np.subtract(c["lps"], f["lps"])) <= truth_reach_mm(f) for c in candidates)

    missed = [f["id"] for f in nodular if not found(f)]
    dendriform_lobes = {f["lobe"] for f in truth["findings"] if f["kind"] == "dendriform"}
    counted = [f for f in nodular if f["lobe"] not in dendriform_lobes]  # the default policy
    right = sum(1 for f in counted if f["lobe"] in ("RUL", "RML", "RLL"))
    return len(nodular), missed, right, len(counted) - right


def test_demo_reports_against_the_planted_truth_and_reruns_in_its_own_folder(tmp_path):
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", out)
    assert result.returncode == 0, result.stderr
    for name in ("phantom/ct.nrrd", "phantom/truth.json", "bundle/lobes.seg.nrrd", "bundle/candidates.mrk.json",
                 "bundle/reading.json", "bundle/scores.json", "bundle/provenance.json", "bundle/report.html",
                 "DPO-DEMO-OUTPUT.txt"):
        assert (out / name).is_file(), name
    scores = json.loads((out / "bundle" / "scores.json").read_text(encoding="utf-8"))
    assert scores["complete"] is True and scores["findings"]["pending"] == 0
    provenance = json.loads((out / "bundle" / "provenance.json").read_text(encoding="utf-8"))
    assert len(provenance["decisions"]) == scores["findings"]["confirmed"] + scores["findings"]["rejected"]

    text = result.stdout
    assert text.startswith(f"R {scores['right_total']} / L {scores['left_total']} ")
    assert "complete, reviewed by simulated reader" in text.splitlines()[0]
    assert "\nnext:\n" in text and "grade ILD per lobe" in text
    planted, missed, right, left = expected_against_truth(out)
    assert f"nodular POs: found {planted - len(missed)} of {planted}" in text
    for finding_id in missed:  # each miss named, with a reason
        assert re.search(rf"- {finding_id} \(\w+, [\d.]+ mm\): \S", text), finding_id
    assert (f"counted R {scores['right_total']} / L {scores['left_total']} against a truth of R {right} / L {left}"
            in text)
    assert "(dendriform lobe: its nodular POs are not counted)" in text
    assert re.search(r"\[ *\d+%\] phantom: ", result.stderr) and "report.html" in result.stderr

    # a rerun replaces the demo's own entries (no --force needed), quietly, and leaves other files alone
    (out / "bundle" / "left-over.txt").write_text("from the first run")
    (out / "my-notes.txt").write_text("mine")
    again = run_cli("demo", "--out", out, "--quiet")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "" and again.stderr == ""
    assert not (out / "bundle" / "left-over.txt").exists() and (out / "bundle" / "report.html").is_file()
    assert (out / "my-notes.txt").read_text(encoding="utf-8") == "mine"


def test_demo_never_touches_a_folder_that_is_not_its_own(tmp_path):
    foreign = tmp_path / "results"
    (foreign / "bundle").mkdir(parents=True)
    (foreign / "bundle" / "scores.json").write_text("{}")
    for extra in ((), ("--force",)):
        result = run_cli("demo", "--out", foreign, *extra)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and str(foreign) in result.stderr
        assert sorted(p.name for p in foreign.rglob("*")) == ["bundle", "scores.json"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "a.txt").write_text("x")
    refused = run_cli("demo", "--out", other)
    assert refused.returncode == 2 and "holds no earlier demo" in refused.stderr
    assert [p.name for p in other.iterdir()] == ["a.txt"]
