"""The lobes follow a dragged fissure point without blocking the GUI: the voxels to relabel are
computed in a worker thread (numpy and scipy release the GIL for most of it), then written into
the segmentation on the caller's thread (MRML is not thread-safe), only where they change.

API (no Qt here): ``start`` when the reader releases a point, ``poll`` from the GUI's timer until it
is no longer ``"running"`` (``poll`` writes the result into the scene), ``wait`` for a synchronous
caller. Drags coalesce: a drag while a computation runs supersedes it; the running result is thrown
away when it ends (never applied) and the latest points are computed next. A result is also thrown
away, and computed again, when the segmentation changed meanwhile (a Segment Editor edit).

The fast path needs the lobes in one shared layer on the CT's grid (``mrml_lobe_layer``), an
LPS-ordered CT and the points the lobes were made from (``_shown_points``); otherwise ``start``
runs the former full recompute (export, every voxel, import) at once, on the caller's thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass

import numpy as np

from ..ct.ct_image import Geometry
from ..lobes.fissures import lobe_changes, moved_fissures
from .mrml_lobe_layer import LPS_DIRECTION, LobeLayer, matrix_of

RUNNING, APPLIED, IDLE, SUPERSEDED, FULL = "running", "applied", "idle", "superseded", "full recompute"
# Each poll waits this long for the worker, the GIL released meanwhile. Slicer's embedded Python
# keeps the GIL on the GUI thread while Qt's event loop runs (Slicer 5.8-5.12 do not turn on
# PythonQt's thread support: no setEnableThreadSupport in their source), so a Python worker thread
# advances mainly while the GUI thread runs Python; this bounds the GUI's hold per poll.
POLL_WAIT_S = 0.02


def volume_geometry(volume) -> Geometry:
    """The core's geometry of an LPS-ordered volume node, from its IJK-to-RAS matrix (no voxel copy)."""
    m = matrix_of(volume.GetIJKToRASMatrix)
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    origin = LPS_DIRECTION @ m[:3, 3]
    return Geometry(tuple(int(d) for d in volume.GetImageData().GetDimensions()), tuple(float(s) for s in spacing),
                    tuple(float(v) for v in origin), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def _compute(layer: LobeLayer, geometry: Geometry, old_points: dict, new_points: dict):
    """Worker thread: the voxels to relabel (the lungs looked up in the layer voxel by voxel)."""
    return lobe_changes(layer.lungs(), geometry, old_points, new_points)


def _moved(before: dict, after: dict) -> list[str]:
    return sorted(moved_fissures(before, after))


@dataclass
class _Job:
    generation: int
    volume: object
    segmentation: object
    layer: LobeLayer
    key: tuple
    points: dict
    future: object


class LobeUpdates:
    """Owned by the MRML logic (``MRMLLobes.lobe_updates``): one worker thread, one job at a time."""

    def __init__(self, lobes_logic):
        self.logic = lobes_logic
        self._executor = None
        self._job: _Job | None = None
        self._request = None  # (volume, segmentation) of the latest drag
        self._generation = 0
        self.last_changed_voxels = 0
        self.last_moved: list[str] = []
        self.last_stale = 0  # results thrown away (superseded or the segmentation changed)

    def start(self, volume, segmentation) -> str:
        """A drag ended: compute the lobes for the scene's fissure points now. Returns ``running``
        (poll until done) or ``full recompute`` (done at once, the slow path)."""
        self._generation += 1
        self._request = (volume, segmentation)
        if self._job is not None:
            return RUNNING  # the running job's result will be thrown away; this one starts after it
        return self._launch(volume, segmentation)

    def _launch(self, volume, segmentation) -> str:
        logic = self.logic
        shown, points = getattr(logic, "_shown_points", None), logic.fissure_points()
        layer = LobeLayer.find(segmentation, volume, logic.lobe_codes(segmentation)) \
            if LobeLayer.lps_ordered(volume) else None
        if layer is None or not shown or set(shown) != set(points):
            self._request = None
            logic.recompute_lobes(volume, segmentation, in_place=True)
            self.last_moved = _moved(shown, points) if shown else []
            return FULL
        key = logic.segmentation_content_key(segmentation)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="DPOScoring-lobes")
        future = self._executor.submit(_compute, layer, volume_geometry(volume), shown, points)
        self._job = _Job(self._generation, volume, segmentation, layer, key, points, future)
        return RUNNING

    @property
    def running(self) -> bool:
        return self._job is not None

    def poll(self, wait_s: float = POLL_WAIT_S) -> str:
        """From the GUI thread: ``running``, ``idle`` (nothing to do), ``applied`` (the lobes in the
        segmentation follow the latest points). Waits up to ``wait_s`` for the worker (see
        ``POLL_WAIT_S``). An error of the computation is raised here."""
        job = self._job
        if job is None:
            return IDLE
        if wait_s > 0:
            wait_for([job.future], timeout=wait_s)
        if not job.future.done():
            return RUNNING
        self._job = None
        try:
            changes = job.future.result()
        except Exception:
            self._request = None
            raise
        logic = self.logic
        alive = logic.scene.GetNodeByID(job.segmentation.GetID()) is job.segmentation
        current = job.generation == self._generation and alive and \
            logic.segmentation_content_key(job.segmentation) == job.key
        if not current:
            self.last_stale += 1
            request, self._request = self._request, None
            if request is not None and alive and logic.scene.GetNodeByID(request[1].GetID()) is request[1]:
                return self._launch(*request)  # the latest points (or the edited segmentation) next
            return SUPERSEDED
        self._apply(job, changes)
        self._request = None
        return APPLIED

    def _apply(self, job: _Job, changes) -> None:
        logic = self.logic
        previous = logic._shown_points
        self.last_changed_voxels = job.layer.write(*changes)
        self.last_moved = _moved(previous, job.points)
        logic._shown_points = {name: np.asarray(p, dtype=float).copy() for name, p in job.points.items()}
        key = logic.segmentation_content_key(job.segmentation)
        cache_key = getattr(logic, "_lobe_cache_key", None)
        if cache_key is not None and cache_key[0] == job.key:  # the lobe cache follows without an export
            lobes = logic._lobe_cache[0].copy()
            kk, jj, ii, labels = changes
            lobes[kk, jj, ii] = labels
            logic._lobe_cache = (lobes, logic._lobe_cache[1])
            logic._lobe_cache_key = (key, *cache_key[1:])

    def wait(self) -> str:
        """Until the latest request is in the scene (synchronous callers, tests)."""
        state = RUNNING
        while state == RUNNING:
            if self._job is not None:
                wait_for([self._job.future])  # blocks until the thread is done
            state = self.poll(0)
        return state

    def forget(self) -> None:
        """Close Scene: a running result is never applied; nothing refers to the old scene."""
        self._generation += 1
        self._job = None
        self._request = None
