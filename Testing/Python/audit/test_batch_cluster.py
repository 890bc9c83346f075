"""`dpo-score batch` on dask.distributed: a worker killed with SIGKILL mid-case, Ctrl-C, a case whose
worker died after writing, GPU-aware routing, memory per case, the scheduler option.

Everything runs on LocalClusters of 2 worker processes on the loopback interface. The fakes, named
as such: a GPU is a Dask resource a test worker *declares* (this machine has no GPU), and the
lungmask model class in the model-cache test (no network weights here)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from DPOScoringLib.audit.batch import load_cohort, run_batch
from DPOScoringLib.common.errors import DPOInputError


def _as_from_a_terminal() -> None:
    # a shell starting pytest in the background ignores SIGINT, and children inherit that; a terminal
    # user's Ctrl-C is not ignored, so the batch is started with SIGINT at its default
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def batch_process(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "DPOScoringLib", "batch", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                start_new_session=True,
                            preexec_fn=_as_from_a_terminal)


def wait_for_log(log: Path, pattern: str, timeout: float = 300.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text(encoding="utf-8")) if log.exists() else None
        if match:
            return match
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} never appeared in {log}")


@pytest.fixture(scope="module")
def three_cases(phantom_1mm, phantom_2mm, phantom_contrast, tmp_path_factory):
    folder = tmp_path_factory.mktemp("three")
    for name, case in (("p1", phantom_1mm), ("p2", phantom_2mm), ("p3", phantom_contrast)):
        shutil.copy(case.paths["ct"], folder / f"{name}.nrrd")
    return folder


def test_worker_killed_mid_case_is_retried_on_the_other_and_nothing_is_lost(three_cases, tmp_path):
    out = tmp_path / "out"
    process = batch_process(three_cases, "--out", out, "--workers", "2")
    started = wait_for_log(out / "batch.log", r"(p\d): started on (\S+) \(pid (\d+)\)")
    victim, victim_pid = started.group(1), int(started.group(3))
    os.kill(victim_pid, signal.SIGKILL)  # a real SIGKILL of a worker process, as the OOM killer sends
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr
    log = (out / "batch.log").read_text(encoding="utf-8")
    assert re.search(rf"{victim}: attempt 1 failed: the worker running it died .*retrying once", log), log
    # the second attempt ran in another, living worker process and finished the case
    retried = re.findall(rf"{victim}: started on \S+ \(pid (\d+)\)", log)
    assert len(retried) == 2 and int(retried[1]) != victim_pid
    assert re.search(rf"{victim}: done \(", log)
    rows = load_cohort(out)
    assert sorted(row["case_id"] for row in rows) == ["p1", "p2", "p3"]  # once each, none lost
    assert all(row["status"] == "done" for row in rows)
    assert sorted(p.name for p in out.iterdir()) == ["batch.log", "cohort.csv", "p1", "p2", "p3"]  # no partial
    assert "[3/3]" in stderr and "cases/min" in stderr and "s left" in stderr
    # the memory measured per case stays within what the automatic --memory-per-case reserves for it
    from DPOScoringLib.audit.batch_memory import estimated_need, volume_voxels

    for case_id, peak, before in re.findall(r"(p\d): done \(.*worker peak (\d+) MB \(was (\d+) MB\)", log):
        used = (int(peak) - int(before)) * 1e6
        assert 0 < used < estimated_need(volume_voxels(str(three_cases / f"{case_id}.nrrd"))), (case_id, used)


def test_ctrl_c_cancels_and_leaves_no_partial_bundle_then_resumes(three_cases, tmp_path):
    out = tmp_path / "out"
    process = batch_process(three_cases, "--out", out, "--workers", "2")
    wait_for_log(out / "batch.log", r"p\d: started on")
    time.sleep(1.0)  # mid-case
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole process group
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "cancelled" in stderr
    names = {p.name for p in out.iterdir()}
    assert not [n for n in names if n.startswith(".")], names  # no .partial bundle left
    finished = {n for n in names if n.startswith("p")}
    assert all((out / n / "provenance.json").is_file() for n in finished)  # only complete bundles
    again = batch_process(three_cases, "--out", out, "--workers", "2")
    _, stderr = again.communicate(timeout=900)
    assert again.returncode == 0, stderr
    rows = load_cohort(out)
    assert sorted(row["case_id"] for row in rows) == ["p1", "p2", "p3"]
    assert {r["case_id"] for r in rows if r["status"] == "skipped (done before)"} == finished


def test_a_retried_case_whose_bundle_was_written_is_not_computed_again(three_cases, tmp_path):
    """A worker that dies after its atomic rename but before its result reached the client: the
    retry finds the bundle of the same input and returns without rewriting it."""
    from DPOScoringLib.audit.batch_dask import run_case_task
    from DPOScoringLib.audit.case_run import run_case
    from DPOScoringLib.ct.ct_image import input_checksum

    ct = three_cases / "p2.nrrd"
    run_case(ct, tmp_path / "p2", case_id="p2")
    stamp = (tmp_path / "p2" / "provenance.json").stat().st_mtime_ns
    result = run_case_task({"case_id": "p2", "path": str(ct)}, str(tmp_path), {}, input_checksum(ct))
    assert result["status"] == "done" and "already written" in result["note"]
    assert (tmp_path / "p2" / "provenance.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p2"]
    # a different input under the same name is computed
    changed = tmp_path / "other.nrrd"
    shutil.copy(three_cases / "p1.nrrd", changed)
    result = run_case_task({"case_id": "p2", "path": str(changed)}, str(tmp_path), {}, input_checksum(changed))
    assert result["status"] == "done" and "note" not in result and result["peak_bytes"] > 0
    assert (tmp_path / "p2" / "provenance.json").stat().st_mtime_ns != stamp


@pytest.fixture()
def gpu_cluster():
    """A LocalCluster (loopback) whose first worker declares GPU=1, a fake resource: no GPU here."""
    import logging

    from distributed import Client, Nanny, Scheduler, SpecCluster

    from DPOScoringLib.audit.batch_dask import _quiet_dask

    _quiet_dask()
    common = {"nthreads": 1, "host": "127.0.0.1", "silence_logs": logging.CRITICAL}
    cluster = SpecCluster(scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": None}},
                          workers={"gpu": {"cls": Nanny, "options": {**common, "resources": {"GPU": 1}}},
                                   "cpu": {"cls": Nanny, "options": common}}, silence_logs=logging.CRITICAL)
    client = Client(cluster)
    client.wait_for_workers(2, timeout=120)
    gpu_address = next(a for a, w in client.scheduler_info()["workers"].items() if w["resources"].get("GPU"))
    yield cluster.scheduler_address, gpu_address
    client.close()
    cluster.close()


def test_lungmask_cases_go_to_the_gpu_worker_or_cpu_workers_use_fissures(three_cases, tmp_path, gpu_cluster,
                                                                          monkeypatch):
    scheduler, gpu_worker = gpu_cluster
    monkeypatch.setenv("DPO_LUNGMASK_WEIGHTS", str(tmp_path / "no-weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-home"))
    options = {"lobe_method": "lungmask"}
    # wait (default): every case runs on the GPU worker (and fails there: this machine has no weights)
    rows = run_batch(three_cases, tmp_path / "wait", options=options, report=lambda line: None, scheduler=scheduler)
    log = (tmp_path / "wait" / "batch.log").read_text(encoding="utf-8")
    workers = re.findall(r"p\d: started on (\S+) ", log)
    assert len(workers) == 3 and set(workers) == {gpu_worker}, log
    assert all("lungmask weights" in row["status"] for row in rows)
    # fissures: CPU-only workers take the weight-free path, recorded in the cohort table
    rows = run_batch(three_cases, tmp_path / "fissures", options=options, report=lambda line: None,
                     scheduler=scheduler, cpu_lobes="fissures")
    log = (tmp_path / "fissures" / "batch.log").read_text(encoding="utf-8")
    on = dict(re.findall(r"(p\d): started on (\S+) ", log))
    done = [row for row in rows if row["status"] == "done"]
    assert done and all(on[row["case_id"]] != gpu_worker and row["lobe_method"] == "fissures" for row in done)
    assert all(on[row["case_id"]] == gpu_worker for row in rows if row["status"] != "done")


def test_lungmask_model_is_built_once_per_process_and_reused():
    """The model class here is a fake (its weights cannot be downloaded here), counting its builds."""
    import types

    from DPOScoringLib.lobes import lungmask_models

    built = []

    class FakeLMInferer:
        def __init__(self, **arguments):
            built.append(arguments)

    module = types.SimpleNamespace(LMInferer=FakeLMInferer)
    lungmask_models.reuse_models_in_this_process(module)
    lungmask_models.reuse_models_in_this_process(module)  # twice: still one layer of caching
    first = module.LMInferer(modelname="LTRCLobes", modelpath="a.pth", force_cpu=True)
    second = module.LMInferer(modelname="LTRCLobes", modelpath="a.pth", force_cpu=True)
    other = module.LMInferer(modelname="LTRCLobes", modelpath="a.pth", force_cpu=False)
    assert first is second and other is not first and len(built) == 2


def test_memory_per_case_limits_the_local_workers_and_bad_options_are_named(three_cases, tmp_path):
    import psutil

    manifest = tmp_path / "m.csv"
    manifest.write_text(f"case_id,path\nA,{three_cases / 'p2.nrrd'}\n")
    out = tmp_path / "out"
    big = f"{int(psutil.virtual_memory().total * 0.6)}"  # two of these do not fit in this machine
    process = batch_process(manifest, "--out", out, "--workers", "2", "--memory-per-case", big)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    log = (out / "batch.log").read_text(encoding="utf-8")
    assert "memory: 2 workers asked, 1 fit" in log and "dask: 1 workers" in log
    for option, value, message in (("--memory-per-case", "lots", "is not a size"),
                                   ("--memory-per-case", "1kB", "between 50 MB"),
                                   ("--workers", "0", "is outside 1 to 256")):
        bad = batch_process(manifest, "--out", tmp_path / "refused", option, value)
        _, stderr = bad.communicate(timeout=120)
        assert bad.returncode == 2 and option in stderr and message in stderr and "Traceback" not in stderr
        assert not (tmp_path / "refused").exists()


def test_unreachable_scheduler_is_one_line(three_cases, tmp_path):
    with pytest.raises(DPOInputError, match="--scheduler: cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        run_batch(three_cases, tmp_path / "out", scheduler="tcp://127.0.0.1:9", report=lambda line: None)
    assert not (tmp_path / "out").exists()


def test_resources_asked_for_by_a_case():
    from DPOScoringLib.audit.batch_dask import lobe_method_on_worker, task_resources

    cpu, gpu = {"MEMORY": 4e9}, {"GPU": 1, "MEMORY": 32e9}
    assert task_resources(1e9, "lungmask", "wait", {"a": cpu, "b": gpu})[0] == {"GPU": 1, "MEMORY": 1e9}
    assert task_resources(1e9, "lungmask", "fissures", {"a": cpu, "b": gpu})[0] == {"MEMORY": 1e9}
    wanted, notes = task_resources(1e9, "lungmask", "wait", {"a": cpu})
    assert wanted == {"MEMORY": 1e9} and "runs on CPU" in notes[0]
    assert task_resources(1e9, "fissures", "wait", {"a": cpu, "b": gpu})[0] == {"MEMORY": 1e9}
    # a case bigger than every worker still runs (alone on the largest), never waits forever
    assert task_resources(50e9, "fissures", "wait", {"a": cpu, "b": gpu})[0] == {"MEMORY": 32e9}
    # workers without a MEMORY resource: no memory restriction (a restriction would never be met)
    wanted, notes = task_resources(1e9, "fissures", "wait", {"a": {}, "b": gpu})
    assert wanted == {} and "declare no MEMORY" in notes[0]
    assert lobe_method_on_worker("lungmask", {}, "fissures", gpus_in_cluster=True) == "fissures"
    assert lobe_method_on_worker("lungmask", gpu, "fissures", gpus_in_cluster=True) == "lungmask"
    assert lobe_method_on_worker("lungmask", {}, "fissures", gpus_in_cluster=False) == "lungmask"
    assert lobe_method_on_worker("lungmask", {}, "wait", gpus_in_cluster=True) == "lungmask"


def test_memory_sizes_and_the_estimate_against_the_real_ct_measurement():
    from DPOScoringLib.audit.batch_memory import estimated_need, parse_size

    assert parse_size("auto") is None and parse_size("6GB") == 6e9 and parse_size("800 MiB") == 800 * 2 ** 20
    assert parse_size("2e9") == 2e9
    # measured (Docs/cluster.md): 729 MB peak for the 512 x 512 x 141 real CT in a fresh process
    assert 729e6 < estimated_need(512 * 512 * 141) < 2 * 729e6
