"""``dpo-score batch`` on dask.distributed: a ``LocalCluster`` of worker processes on this machine by
default, or any running Dask cluster given by ``--scheduler ADDRESS`` (a workstation, GPU nodes, a
SLURM/PBS allocation started with dask-jobqueue; see Docs/cluster.md).

Each case is one task. The worker writes the case's bundle into the shared output folder (the same
atomic rename as ``dpo-score run``) and returns its status; the client, here, keeps ``cohort.csv``
and ``batch.log``. A case whose worker dies (killed, out of memory) or that fails unexpectedly is
recorded and submitted once more; a bad input (a named ``DPOInputError``) is not retried, it would
fail the same way. A task first looks for a finished bundle of the same input, so a case whose worker
died after writing is not computed twice. Cancelling (Ctrl-C) cancels every future, tells running
tasks to stop at their next progress step and removes unfinished bundle folders.

GPU-aware lobes: workers declare a GPU with Dask worker resources (``dask worker --resources GPU=1``).
With ``--lobe-method lungmask`` and any such worker, cases need a GPU (``--cpu-lobes wait``, default)
or run anywhere, CPU-only workers taking the weight-free fissure path (``--cpu-lobes fissures``,
recorded per case in the provenance and cohort.csv). Each worker keeps one lungmask model.

Memory: a case needs ``--memory-per-case`` or, by default, an estimate from its voxel count
(batch_memory). Workers that declare a ``MEMORY`` resource (the local cluster does: its memory limit)
run only as many cases at once as fit; the local cluster starts no more workers than fit in RAM.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

from ..common.errors import DPOCancelled, DPOInputError

TOPIC = "dpo-batch"
GPU = "GPU"
MEMORY = "MEMORY"
CANCEL_CHECK_SECONDS = 1.0
CANCEL_GRACE_SECONDS = 30.0
_GPU_LOCK = threading.Lock()  # one lungmask case at a time per worker's GPU


# ---------------------------------------------------------------------------------------- worker side
def _cancel_checker(event_name: str):
    """A progress callback raising DPOCancelled once the client has set the batch's cancel event
    (asked the scheduler at most once a second)."""
    state = {"last": 0.0, "event": None}

    def check(_fraction: float, _message: str) -> None:
        now = time.monotonic()
        if now - state["last"] < CANCEL_CHECK_SECONDS:
            return
        state["last"] = now
        try:
            from distributed import Event

            state["event"] = state["event"] or Event(event_name)
            cancelled = state["event"].is_set()
        except Exception:  # noqa: BLE001 - no scheduler to ask (a test calling the task directly)
            return
        if cancelled:
            raise DPOCancelled("batch cancelled")
    return check


def lobe_method_on_worker(requested: str, worker_resources: dict, cpu_lobes: str, gpus_in_cluster: bool) -> str:
    """The lobe method a worker uses: lungmask, unless the cluster has GPUs, this worker has none and
    the user chose the weight-free path for CPU-only workers."""
    if requested == "lungmask" and gpus_in_cluster and not worker_resources.get(GPU) and cpu_lobes == "fissures":
        return "fissures"
    return requested


def run_case_task(case: dict, out: str, options: dict, checksum: str, cancel_event: str = "",
                  cpu_lobes: str = "wait", gpus_in_cluster: bool = False) -> dict:
    """One case on a worker: its bundle written into ``out``, a small result dict returned."""
    case_id = case["case_id"]
    try:
        from distributed import get_worker

        worker = get_worker()
        address, resources = worker.address, dict(worker.state.total_resources)
        log = worker.log_event
    except ValueError:  # called outside a worker (tests of this function)
        address, resources, log = "local", {}, None
    result = {"case_id": case_id, "worker": address, "pid": os.getpid(), "retry": False}
    if log:
        log(TOPIC, {"event": "started", "case_id": case_id, "worker": address, "pid": os.getpid()})
    from ..common.progress import Progress
    from .batch import _finished
    from .batch_manifest import case_folder
    from .batch_memory import PeakMemory
    from .case_run import run_case

    bundle = case_folder(out, case_id)
    if _finished(bundle, checksum):  # an earlier attempt wrote it, then its worker died
        return {**result, "status": "done", "note": "bundle of this input already written by an earlier attempt",
                "seconds": 0.0, "peak_bytes": 0, "lobe_method": options.get("lobe_method", "fissures")}
    method = lobe_method_on_worker(options.get("lobe_method", "fissures"), resources, cpu_lobes, gpus_in_cluster)
    options = {**options, "lobe_method": method}
    if method == "lungmask":
        from ..lobes.lungmask_models import reuse_models_in_this_process

        reuse_models_in_this_process()
    progress = Progress(_cancel_checker(cancel_event)) if cancel_event else None
    started = time.perf_counter()
    with PeakMemory() as memory:
        try:
            lock = _GPU_LOCK if (method == "lungmask" and resources.get(GPU)) else None
            if lock:
                lock.acquire()
            try:
                run_case(case["path"], bundle, case_id=case_id, overwrite=True, progress=progress, **options)
            finally:
                if lock:
                    lock.release()
            status = "done"
        except DPOCancelled:
            status = "cancelled"
        except DPOInputError as error:
            status = f"failed: {error}"
        except Exception as error:  # noqa: BLE001 - one case must never stop the cohort
            status, result["retry"] = f"failed: {type(error).__name__}: {error}", True
    if log:
        log(TOPIC, {"event": "ended", "case_id": case_id, "worker": address, "pid": os.getpid()})
    return {**result, "status": status, "seconds": round(time.perf_counter() - started, 2),
            "peak_bytes": memory.peak, "start_bytes": memory.start, "lobe_method": method}


# ---------------------------------------------------------------------------------------- client side
def _quiet_dask() -> None:
    for name in ("distributed", "distributed.nanny", "distributed.worker", "distributed.scheduler",
                 "distributed.core", "distributed.comm", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _total_memory() -> float:
    import psutil

    return float(psutil.virtual_memory().total)


def open_client(workers: int, scheduler: str | None, need_bytes: float, note):
    """(client, cluster or None): connected to ``scheduler`` or to a new local cluster of ``workers``
    worker processes (one case at a time each, no more than fit in memory), loopback only."""
    import dask
    from distributed import Client, LocalCluster

    _quiet_dask()
    if scheduler:
        try:
            return Client(scheduler, timeout="10s", set_as_default=False), None
        except (OSError, TimeoutError, ValueError) as error:
            raise DPOInputError("--scheduler", f"cannot reach the Dask scheduler at {scheduler} ({error})") from None
    fitting = max(int(_total_memory() // max(need_bytes, 1.0)), 1)
    if fitting < workers:
        note(f"memory: {workers} workers asked, {fitting} fit ({need_bytes / 1e9:.1f} GB a case, "
             f"{_total_memory() / 1e9:.1f} GB in this machine)")
    count = min(workers, fitting)
    limit = _total_memory() / count
    # a killed worker fails its task at once (allowed-failures 0) so that the client records it and
    # retries it itself, exactly once; a worker takes one case at a time (saturation 1.0); workers
    # keep this process's environment, as `dpo-score run` would (Dask's default sets one BLAS/OpenMP
    # thread and an aggressive malloc trim threshold, which slowed cases down: Docs/cluster.md)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0,
                          "distributed.nanny.pre-spawn-environ": {},
                          # Dask's event loop wakes every 20 ms by default to time itself, taking
                          # the GIL from the case's thread; with that (and a 50 ms memory sampler,
                          # now the kernel's peak) cases ran 35-45 % slower than in a process pool
                          "distributed.admin.tick.interval": "1s",
                          "distributed.admin.system-monitor.interval": "2s",
                          # the same for the worker's profiler (a thread sampling the task's stack
                          # every 10 ms) and its memory monitor (every 100 ms; the nanny still kills
                          # a worker at 95 % of its memory limit)
                          "distributed.worker.profile.enabled": False,
                          "distributed.worker.memory.monitor-interval": "1s",
                          "distributed.admin.system-monitor.gil.enabled": False}):
        cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, memory_limit=limit, resources={MEMORY: limit},
                               silence_logs=logging.CRITICAL)
        client = Client(cluster, set_as_default=False)
    return client, cluster


def check_scheduler(scheduler: str) -> None:
    """A DPOInputError naming --scheduler when no Dask scheduler answers there (before anything is written)."""
    client, _ = open_client(1, scheduler, 0.0, lambda line: None)
    client.close()


def cluster_resources(client) -> dict:
    """{worker address: its declared resources}."""
    return {address: dict(info.get("resources") or {})
            for address, info in client.scheduler_info(n_workers=-1)["workers"].items()}


def task_resources(need_bytes: float, lobe_method: str, cpu_lobes: str, workers: dict) -> tuple[dict, list]:
    """(resources a case asks for, notes for the log) given every worker's declared resources."""
    notes, wanted = [], {}
    gpus = any(r.get(GPU) for r in workers.values())
    if lobe_method == "lungmask":
        if not gpus:
            notes.append("no worker declares a GPU resource: lungmask runs on CPU (minutes a case)")
        elif cpu_lobes == "wait":
            wanted[GPU] = 1
            notes.append("lungmask cases wait for the workers that declare a GPU")
        else:
            notes.append("CPU-only workers take the weight-free fissure path (--cpu-lobes fissures)")
    if workers and all(MEMORY in r for r in workers.values()):
        largest = max(r[MEMORY] for r in workers.values())
        if need_bytes > largest:
            notes.append(f"memory: a case needs {need_bytes / 1e9:.1f} GB, the largest worker has "
                         f"{largest / 1e9:.1f} GB; cases run one at a time there")
        wanted[MEMORY] = min(need_bytes, largest)
    elif workers:
        notes.append("memory: the workers declare no MEMORY resource, so cases per worker are not limited "
                     "by memory (start them with --resources MEMORY=<bytes>, see Docs/cluster.md)")
    return wanted, notes


def run_on_dask(todo: list[dict], out: Path, options: dict, checksums: dict, needs: dict, finish, note,
                workers: int = 1, scheduler: str | None = None, cpu_lobes: str = "wait") -> None:
    """Runs ``todo`` on the cluster; calls ``finish(case_id, status, result)`` as each case ends."""
    from distributed import KilledWorker, as_completed

    if not todo:
        return
    client, cluster = open_client(workers, scheduler, max(needs.values()), note)
    in_flight: dict[str, int] = {}  # case_id -> pid of the worker running it

    def on_event(event) -> None:
        message = event[1] if isinstance(event, tuple) else event
        if message.get("event") == "started":
            in_flight[message["case_id"]] = message["pid"]
            note(f"{message['case_id']}: started on {message['worker']} (pid {message['pid']})")
        else:
            in_flight.pop(message["case_id"], None)

    cancel_name = f"dpo-batch-cancel-{uuid.uuid4().hex}"
    futures: dict = {}
    pending = as_completed(loop=client.loop)
    try:
        client.subscribe_topic(TOPIC, on_event)
        while not client.scheduler_info(n_workers=-1)["workers"]:  # a job queue may start them late
            note("waiting for the first worker to join the scheduler")
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                pass
        declared = cluster_resources(client)
        gpus = any(r.get(GPU) for r in declared.values())
        notes = task_resources(max(needs.values()), options.get("lobe_method", "fissures"), cpu_lobes, declared)[1]
        for line in notes:
            note(line)
        note(f"dask: {len(declared)} workers at {client.scheduler.address}")

        def submit(case: dict, attempt: int) -> None:
            wanted = task_resources(needs[case["case_id"]], options.get("lobe_method", "fissures"), cpu_lobes,
                                    declared)[0]
            future = client.submit(run_case_task, case, str(out), options, checksums[case["case_id"]], cancel_name,
                                   cpu_lobes, gpus, key=f"dpo-case-{case['case_id']}-{attempt}-{uuid.uuid4().hex[:8]}",
                                   pure=False, resources=wanted or None)
            futures[future] = (case, attempt)
            pending.add(future)

        for case in todo:
            submit(case, 1)
        for future in pending:
            case, attempt = futures.pop(future)
            try:
                result = future.result()
            except KilledWorker:
                result = {"status": "failed: the worker running it died (killed or out of memory)", "retry": True}
            except Exception as error:  # noqa: BLE001 - a lost connection, a task that could not run: recorded
                result = {"status": f"failed: {type(error).__name__}: {error}", "retry": True}
            if result.get("retry") and attempt == 1:
                note(f"{case['case_id']}: attempt 1 {result['status']}; retrying once")
                submit(case, 2)
                continue
            finish(case["case_id"], result["status"], result)
    except KeyboardInterrupt:
        note("cancelled (Ctrl-C): cancelling the remaining cases")
        _cancel(client, cluster, cancel_name, list(futures), in_flight, out)
        raise
    finally:
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # noqa: BLE001 - closing after a lost scheduler
            pass


def _cancel(client, cluster, cancel_name: str, futures: list, in_flight: dict, out: Path) -> None:
    """Stops the batch: futures cancelled, running tasks asked to stop (a second Ctrl-C does not wait),
    then unfinished bundle folders of this batch removed."""
    from distributed import Event

    try:
        Event(cancel_name, client=client).set()
        client.cancel(futures, force=True)
        deadline = time.monotonic() + CANCEL_GRACE_SECONDS
        while in_flight and time.monotonic() < deadline and cluster is None:
            time.sleep(0.2)  # remote workers finish their step (or their atomic write) and stop
    except (KeyboardInterrupt, Exception):  # noqa: BLE001 - cancelling must end in the clean-up below
        pass
    finally:
        if cluster is not None:
            try:
                client.close()
                cluster.close(timeout=10)
            except Exception:  # noqa: BLE001
                pass
        for stale in out.glob(".*.partial"):
            shutil.rmtree(stale, ignore_errors=True)
