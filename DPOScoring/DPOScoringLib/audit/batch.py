"""Scoring a cohort (``dpo-score batch``): a folder of CTs or a CSV manifest, one bundle per case.

One failed case never stops the batch: its error goes into the cohort table and ``batch.log``.
A re-run skips cases whose bundle was made from the same input (SHA-256 in its provenance) and
finishes the others; bundles are written atomically, so a batch killed midway loses and
duplicates nothing. ``cohort.csv`` is rebuilt from the bundles after every case.

The cases run on dask.distributed (batch_dask: a local cluster by default, any Dask cluster by
``--scheduler``); a case whose worker is killed is recorded and retried once.
"""

from __future__ import annotations

import concurrent.futures
import csv
import datetime as _dt
import io
import json
import shutil
import threading
import time
from pathlib import Path

from ..common.anatomy import LOBE_CODES
from ..common.errors import DPOInputError
from ..common.safe_files import atomic_write_bytes
from ..ct.ct_image import input_checksum
from .batch_manifest import CT_SUFFIXES, case_folder, read_cases  # noqa: F401 - the cases of a batch

COHORT_COLUMNS = (["case_id", "status"] + [f"nnpol_{c}" for c in LOBE_CODES]
                  + ["right_total", "left_total", "total", "ldo", "dpo_def1", "dpo_def2", "ans", "ild_extent",
                     "coarseness_score", "complete", "pending_candidates", "provisional_total", "warnings",
                     "lobe_method", "input_sha256", "bundle"])


def _finished(bundle: Path, checksum: str) -> bool:
    try:
        provenance = json.loads((bundle / "provenance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return provenance.get("input", {}).get("sha256") == checksum


def _cohort_row(case: dict, status: str, out: Path, checksum: str) -> dict:
    row = {column: "" for column in COHORT_COLUMNS}
    row.update({"case_id": case["case_id"], "status": status, "input_sha256": checksum})
    extra = {k: v for k, v in case.items() if k not in ("case_id", "path")}
    bundle = case_folder(out, case["case_id"])
    if status in ("done", "skipped (done before)"):
        scores = json.loads((bundle / "scores.json").read_text(encoding="utf-8"))
        row.update({f"nnpol_{c}": scores["nnpol"][c] for c in LOBE_CODES})
        row.update({key: scores[key] for key in ("right_total", "left_total", "total", "ldo", "dpo_def1",
                                                   "dpo_def2", "ans", "ild_extent", "coarseness_score",
                                                   "complete")})
        row["pending_candidates"] = scores["findings"]["pending"]
        row["provisional_total"] = scores["provisional"]["total"]
        provenance = json.loads((bundle / "provenance.json").read_text(encoding="utf-8"))
        row["warnings"] = " | ".join(provenance.get("warnings", []))
        row["lobe_method"] = provenance.get("parameters", {}).get("lobe_method", "")
        row["bundle"] = str(bundle)
    return {**row, **extra}


def _write_cohort(out: Path, rows: list[dict]) -> None:
    columns = list(COHORT_COLUMNS) + sorted({k for r in rows for k in r} - set(COHORT_COLUMNS))
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "cohort.csv", stream.getvalue().encode("utf-8"), overwrite=True)


EXECUTORS = ("dask", "processes")
CPU_LOBES = ("wait", "fissures")


def run_batch(source: str | Path, out: str | Path, workers: int = 1, options: dict | None = None,
              report=print, scheduler: str | None = None, memory_per_case: float | None = None,
              cpu_lobes: str = "wait", executor: str = "dask") -> list[dict]:
    """Scores every case of ``source`` not done before into ``out``; returns the cohort rows.

    ``executor``: "dask" (default; a local cluster of ``workers`` processes, or the cluster at
    ``scheduler``) or "processes" (the earlier process pool, kept to compare against in the benchmark).
    ``memory_per_case`` in bytes, None = estimated from each volume's size (batch_memory)."""
    from .batch_memory import estimated_need, volume_voxels

    if executor not in EXECUTORS:
        raise DPOInputError("executor", f"{executor!r} is not one of {', '.join(EXECUTORS)}")
    if cpu_lobes not in CPU_LOBES:
        raise DPOInputError("--cpu-lobes", f"{cpu_lobes!r} is not one of {', '.join(CPU_LOBES)}")
    if workers < 1:
        raise DPOInputError("--workers", f"must be at least 1, not {workers}")
    if executor == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise DPOInputError("dask.distributed", "is not installed (batch runs its cases on Dask); install it "
                                "with pip install 'dpo-scoring[cluster]'") from None
    cases = read_cases(source)
    if executor == "dask" and scheduler:
        from .batch_dask import check_scheduler

        check_scheduler(scheduler)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = options or {}
    log = out / "batch.log"
    log_lock = threading.Lock()

    def note(message: str) -> None:
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        with log_lock, open(log, "a", encoding="utf-8") as stream:
            stream.write(f"{stamp} {message}\n")

    for stale in out.glob(".*.partial"):  # a case interrupted while its bundle was written
        note(f"removing unfinished {stale.name}")
        shutil.rmtree(stale)
    checksums, statuses, todo = {}, {}, []
    for case in cases:
        try:
            checksums[case["case_id"]] = input_checksum(case["path"])
        except DPOInputError as error:
            statuses[case["case_id"]] = f"failed: {error}"
            note(f"{case['case_id']}: failed: {error}")
            continue
        if _finished(case_folder(out, case["case_id"]), checksums[case["case_id"]]):
            statuses[case["case_id"]] = "skipped (done before)"
        else:
            todo.append(case)

    by_id = {case["case_id"]: case for case in cases}

    def row_of(case_id: str) -> dict:
        return _cohort_row(by_id[case_id], statuses.get(case_id, "pending"), out, checksums.get(case_id, ""))

    table = {case["case_id"]: row_of(case["case_id"]) for case in cases}  # each row read from disk once

    def rows() -> list[dict]:
        return [table[case["case_id"]] for case in cases]

    _write_cohort(out, rows())
    started, finished = time.monotonic(), [0]

    def finish(case_id: str, status: str, result: dict | None = None) -> None:
        """A case ended: its row re-read from its bundle, cohort.csv rewritten, a progress line."""
        statuses[case_id] = status
        table[case_id] = row_of(case_id)  # only the case that just finished changes
        finished[0] += 1
        note(f"{case_id}: {status}{_details(result)}")
        _write_cohort(out, rows())
        elapsed = max(time.monotonic() - started, 1e-6)
        remaining = elapsed / finished[0] * (len(todo) - finished[0])
        report(f"[{finished[0]}/{len(todo)}] {case_id}: {status} (about {remaining:.0f} s left; "
               f"{60.0 * finished[0] / elapsed:.1f} cases/min)")

    if executor == "processes":
        _run_in_processes(todo, out, options, workers, finish)
    else:
        from .batch_dask import run_on_dask

        needs = {}
        for case in todo:
            voxels = volume_voxels(case["path"]) if memory_per_case is None else None
            needs[case["case_id"]] = memory_per_case or estimated_need(voxels or 0)
        run_on_dask(todo, out, options, checksums, needs, finish, note, workers, scheduler, cpu_lobes)
    return rows()


def _details(result: dict | None) -> str:
    if not result or "seconds" not in result:
        return ""
    text = f" ({result['seconds']:.1f} s on {result.get('worker', '?')}"
    if result.get("peak_bytes"):
        text += f", worker peak {result['peak_bytes'] / 1e6:.0f} MB (was {result.get('start_bytes', 0) / 1e6:.0f} MB)"
    if result.get("lobe_method"):
        text += f", lobes: {result['lobe_method']}"
    return text + (f"; {result['note']}" if result.get("note") else "") + ")"


def _run_one(case: dict, out: str, options: dict) -> tuple[str, str]:
    """In a worker process of the process pool: (case_id, "done" or the error's one line)."""
    from .case_run import run_case

    try:
        run_case(case["path"], case_folder(out, case["case_id"]), case_id=case["case_id"], overwrite=True, **options)
        return case["case_id"], "done"
    except DPOInputError as error:
        return case["case_id"], f"failed: {error}"
    except Exception as error:  # noqa: BLE001 - one case must never stop the cohort
        return case["case_id"], f"failed: {type(error).__name__}: {error}"


def _run_in_processes(todo: list[dict], out: Path, options: dict, workers: int, finish) -> None:
    """The earlier executor (a local process pool). A worker that dies breaks the whole pool: the
    cases it held are recorded as failed instead of stopping the batch, but not retried."""
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_run_one, case, str(out), options): case["case_id"] for case in todo}
        for future in concurrent.futures.as_completed(futures):
            try:
                case_id, status = future.result()
            except concurrent.futures.process.BrokenProcessPool:
                case_id, status = futures[future], "failed: a worker process died (killed or out of memory)"
            finish(case_id, status)


def load_cohort(out: str | Path) -> list[dict]:
    text = Path(out, "cohort.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))

