"""`dpo-score batch` (on a local Dask cluster, the default): a cohort with a corrupt case, resuming,
and a batch killed midway. Workers killed, Ctrl-C, GPU routing and memory: test_batch_cluster.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pandas
import pytest

from DPOScoringLib.audit.batch import load_cohort, read_cases
from DPOScoringLib.common.errors import DPOInputError


def batch(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "DPOScoringLib", "batch", *map(str, args)], capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout)


@pytest.fixture(scope="module")
def cohort(phantom_1mm, phantom_2mm, phantom_contrast, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    for name, case in (("p1", phantom_1mm), ("p2", phantom_2mm), ("p3", phantom_contrast)):
        shutil.copy(case.paths["ct"], folder / f"{name}.nrrd")
    (folder / "p4-corrupt.nrrd").write_text("NRRD0004\nthis file was cut off")
    return folder


def test_corrupt_case_is_reported_and_the_others_finish(cohort, tmp_path):
    out = tmp_path / "out"
    result = batch(cohort, "--out", out, "--workers", "2")
    assert result.returncode == 1, result.stderr
    rows = {row["case_id"]: row for row in load_cohort(out)}
    assert set(rows) == {"p1", "p2", "p3", "p4-corrupt"}
    table = pandas.read_csv(out / "cohort.csv").set_index("case_id")
    assert table.loc["p1", "status"] == "done" and table.loc["p1", "dpo_def1"] in (False, "False")
    assert all(rows[c]["status"] == "done" for c in ("p1", "p2", "p3"))
    assert rows["p4-corrupt"]["status"].startswith("failed: ") and "p4-corrupt.nrrd" in rows["p4-corrupt"]["status"]
    assert "p4-corrupt: failed" in (out / "batch.log").read_text(encoding="utf-8")
    assert int(rows["p1"]["provisional_total"]) > 0 and rows["p3"]["warnings"].startswith("contrast")
    assert "[4/4]" in result.stderr and "s left" in result.stderr
    # a re-run skips what is done (same input checksum) and touches no bundle
    stamp = (out / "p1" / "provenance.json").stat().st_mtime
    again = batch(cohort, "--out", out)
    rows = {row["case_id"]: row for row in load_cohort(out)}
    assert rows["p1"]["status"] == "skipped (done before)"
    assert (out / "p1" / "provenance.json").stat().st_mtime == stamp
    assert again.returncode == 1  # the corrupt case is still failing, and said so


def test_killed_batch_resumes_without_loss_or_duplicates(cohort, tmp_path):
    """The client (and with it its local Dask cluster of 2 workers) killed with SIGKILL, then re-run."""
    source = tmp_path / "cases"
    source.mkdir()
    for name in ("p1", "p2", "p3"):
        shutil.copy(cohort / f"{name}.nrrd", source / f"{name}.nrrd")
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "DPOScoringLib", "batch", str(source), "--out", str(out),
                                "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (out / "p1" / "provenance.json").exists() \
            and not (out / "p2" / "provenance.json").exists():
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # a real signal, mid-batch
    process.wait()
    # a case counts as done once its bundle is in place (the kill may come before cohort.csv says so)
    done_before = {name for name in ("p1", "p2", "p3") if (out / name / "provenance.json").exists()}
    assert 1 <= len(done_before) < 3
    result = batch(source, "--out", out)
    assert result.returncode == 0, result.stderr
    rows = load_cohort(out)
    assert sorted(row["case_id"] for row in rows) == ["p1", "p2", "p3"]
    assert all(row["status"] in ("done", "skipped (done before)") for row in rows)
    assert {row["case_id"] for row in rows if row["status"] == "skipped (done before)"} == done_before
    assert sorted(p.name for p in out.iterdir()) == ["batch.log", "cohort.csv", "p1", "p2", "p3"]


def test_manifest_carries_clinical_columns(cohort, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"case_id,path,diagnosis,age\nA,{cohort / 'p2.nrrd'},IPF,72\n")
    out = tmp_path / "out"
    assert batch(manifest, "--out", out).returncode == 0
    row = load_cohort(out)[0]
    assert row["case_id"] == "A" and row["diagnosis"] == "IPF" and row["age"] == "72" and row["status"] == "done"


def test_bad_manifests_are_named(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("id,file\nA,x.nrrd\n")
    with pytest.raises(DPOInputError, match="needs the columns case_id and path"):
        read_cases(bad)
    bad.write_text("case_id,path\nA,x.nrrd\nA,y.nrrd\n")
    with pytest.raises(DPOInputError, match="line 3"):
        read_cases(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DPOInputError, match="holds no CT files"):
        read_cases(empty)
