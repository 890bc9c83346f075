"""Batch throughput on phantoms: the same cohort scored with 1 and with 2 workers, in one run.
Reports cases per minute and the speed-up (the machine has 2 cores, shared and noisy)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from DPOScoringLib.batch import run_batch
from DPOScoringLib.phantom import PhantomSpec, generate_phantom, write_phantom


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="dpo-batch-bench-"))
    cohort = root / "cohort"
    cohort.mkdir()
    for number in range(args.cases):
        spec = PhantomSpec(fov_mm=(220.0, 180.0, 200.0), spacing=(0.8, 0.8, 1.0), seed=100 + number, n_po=30)
        paths = write_phantom(generate_phantom(spec), root / f"phantom{number}")
        paths["ct"].rename(cohort / f"case{number}.nrrd")
    report = {"cases": args.cases, "volume": "275 x 225 x 200 voxels"}
    for workers in (1, 2):
        started = time.perf_counter()
        rows = run_batch(cohort, root / f"out{workers}", workers, report=lambda line: None)
        seconds = time.perf_counter() - started
        assert all(row["status"] == "done" for row in rows)
        report[f"workers_{workers}_s"] = round(seconds, 2)
        report[f"workers_{workers}_cases_per_minute"] = round(60.0 * args.cases / seconds, 1)
    report["speed_up"] = round(report["workers_1_s"] / report["workers_2_s"], 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
