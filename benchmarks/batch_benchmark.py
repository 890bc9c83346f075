"""Batch throughput: the same cohort scored by the Dask executor (local cluster, the default) and by
the earlier process pool, with 1 and 2 workers, in one run, alternating so that the noise of a
shared machine falls on both. Reports cases per minute, the Dask/pool ratio (median of --repeat
pairs) and each case's time and worker peak memory (from batch.log). Cases: phantoms (default) or
the real CTs of ../shared/data."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from DPOScoringLib.audit.batch import run_batch
from DPOScoringLib.synthetic.phantom import PhantomSpec, generate_phantom, write_phantom

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def phantom_cohort(root: Path, cases: int) -> Path:
    cohort = root / "cohort"
    cohort.mkdir()
    for number in range(cases):
        spec = PhantomSpec(fov_mm=(220.0, 180.0, 200.0), spacing=(0.8, 0.8, 1.0), seed=100 + number, n_po=30)
        paths = write_phantom(generate_phantom(spec), root / f"phantom{number}")
        paths["ct"].rename(cohort / f"case{number}.nrrd")
    return cohort


def real_cohort(root: Path, cases: int) -> Path:
    files = sorted(SHARED_DATA.glob("chest-ct-*.nii.gz"))
    if not files:
        raise SystemExit(f"no real CTs in {SHARED_DATA}")
    cohort = root / "cohort"
    cohort.mkdir()
    for number in range(cases):  # distinct names, the same few volumes repeated
        (cohort / f"case{number}.nii.gz").symlink_to(files[number % len(files)])
    return cohort


def one_run(cohort: Path, out: Path, executor: str, workers: int) -> dict:
    ended = []  # when each case's result reached the client
    started = time.perf_counter()
    rows = run_batch(cohort, out, workers, report=lambda line: ended.append(time.perf_counter()), executor=executor)
    seconds = time.perf_counter() - started
    assert all(row["status"] == "done" for row in rows), [row["status"] for row in rows]
    result = {"seconds": round(seconds, 2), "cases_per_minute": round(60.0 * len(rows) / seconds, 1),
              # between the first and the last result: without the one-time start (pool or cluster,
              # imports in the workers) and shut-down
              "steady_cases_per_minute": round(60.0 * (len(ended) - 1) / (ended[-1] - ended[0]), 1),
              "start_s": round(ended[0] - started, 2), "stop_s": round(seconds - (ended[-1] - started), 2)}
    log = (out / "batch.log").read_text()
    per_case = re.findall(r"done \(([0-9.]+) s on .*worker peak (\d+) MB \(was (\d+) MB\)", log)
    if per_case:
        result["case_seconds_median"] = statistics.median(float(s) for s, _, _ in per_case)
        result["case_peak_mb_max"] = max(int(p) for _, p, _ in per_case)
        result["case_added_mb_max"] = max(int(p) - int(b) for _, p, b in per_case)
    shutil.rmtree(out)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--real", action="store_true", help="the real CTs of ../shared/data instead of phantoms")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="pool/dask pairs per worker count (median ratio)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="dpo-batch-bench-"))
    cohort = real_cohort(root, args.cases) if args.real else phantom_cohort(root, args.cases)
    report = {"cases": args.cases, "data": "real CTs (../shared/data)" if args.real
              else "phantoms 275 x 225 x 200 voxels", "runs": {}}
    for workers in args.workers:
        ratios = []
        for repeat in range(args.repeat):  # pool, dask, pool, dask, ...: both meet the same noise
            for executor in ("processes", "dask"):
                report["runs"][f"{executor}_{workers}_{repeat + 1}"] = one_run(cohort, root / "out", executor, workers)
            pool, dask = (report["runs"][f"{e}_{workers}_{repeat + 1}"] for e in ("processes", "dask"))
            ratios.append((dask["cases_per_minute"] / pool["cases_per_minute"],
                           dask["steady_cases_per_minute"] / pool["steady_cases_per_minute"]))
        report[f"dask_to_pool_throughput_{workers}_workers"] = [round(r[0], 3) for r in ratios]
        report[f"dask_to_pool_throughput_{workers}_workers_median"] = round(statistics.median(r[0] for r in ratios), 3)
        report[f"dask_to_pool_steady_throughput_{workers}_workers"] = [round(r[1], 3) for r in ratios]
        report[f"dask_to_pool_steady_throughput_{workers}_workers_median"] = round(
            statistics.median(r[1] for r in ratios), 3)
    if {1, 2} <= set(args.workers):
        def median_seconds(name: str) -> float:
            return statistics.median(run["seconds"] for key, run in report["runs"].items()
                                     if key.rsplit("_", 1)[0] == name)

        report["dask_speed_up_2_vs_1"] = round(median_seconds("dask_1") / median_seconds("dask_2"), 2)
    for kind in ("throughput", "steady_throughput"):
        report[f"dask_{kind}_within_10_percent_of_pool"] = all(
            value >= 0.9 for key, value in report.items() if key.endswith("_median") and f"pool_{kind}_" in key)
    print(json.dumps(report, indent=2))
    shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
