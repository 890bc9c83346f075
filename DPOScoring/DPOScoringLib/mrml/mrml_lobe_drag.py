"""The lobes follow a dragged fissure point without blocking the GUI: the voxels to relabel are
computed in a worker thread (numpy and scipy release the GIL for most of it), then written into
the segmentation on the caller's thread (MRML is not thread-safe), only where they change.

API (no Qt here): ``start`` when the reader releases a point, ``poll`` from the GUI's timer until it
is no longer ``"running"`` (``poll`` writes the result into the scene; ``progress`` says what the
worker does), ``wait`` for a synchronous caller, ``cancel``. Drags coalesce: a drag while a
computation runs supersedes it; the running result is thrown away when it ends (never applied;
a full recompute is cancelled at its next step) and the latest points are computed next. A
result is also thrown away, and computed again, when the segmentation changed meanwhile (a
Segment Editor edit).

Paths (``last_path``), all computed in the worker:

* ``local``: the lobes in one shared layer on the CT's voxels (``mrml_lobe_layer``; lobes in several
  layers are first merged into one in the worker, voxels unchanged: ``mrml_lobe_layer_merge``), a
  CT whose axes are LPS's up to their order and sign (a prone, feet-first, RAS-ordered CT, or one
  stored as sagittal or coronal slices, is read through transposed and reversed numpy views), the
  layer on the CT's own grid or on its LPS-ordered one, and the points the lobes were made from: only
  the voxels a moved surface swept are looked at. Those points are the logic's own
  (``_shown_points``, this session, for the segmentation they were applied to) or, after a scene
  reload or a module reload, the ones stored on the segmentation node (``mrml_lobe_points``),
  trusted only once the worker found the lobes' digest unchanged (or marked ``edited`` under the
  module's watch: trusted as in the session).
* ``full``: the same layer, but no points known to describe the lobes (none stored, or the
  segmentation was changed after they were stored while the module did not watch): every lobe
  voxel is recomputed from the scene's points in the worker (with progress, cancellable), and
  written where it changes. Also when lobes
  in several layers overlap (they are not merged): every lobe voxel from the points on the lobes'
  union, in the worker, installed as the six segments' new shared layer.
* ``full import``: no shared layer on the CT's voxels possible (lobes on another grid, a left upper
  lobe still holding the lingula, a CT with oblique axes, i.e. not along L, P, S): the lobes are
  exported on the GUI thread, computed in the worker and imported back on the GUI thread (the export
  and the import hold the GUI; for a CT whose axes are along L, P, S the result is one shared layer
  on its LPS-ordered grid, so the next drag is local; an oblique CT takes this path every time).

After a write, the points and the new lobes' digest are stored on the segmentation node.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field

import numpy as np

from ..common.anatomy import lungs_from_lobes
from ..common.errors import DPOCancelled
from ..common.progress import Progress
from ..ct.ct_image import Geometry
from ..lobes.fissures import assign_lobes, lobe_changes, moved_fissures, update_lobes
from .mrml_lobe_layer import LPS_DIRECTION, LobeLayer, lps_grid_matrix, lps_order
from .mrml_lobe_layer_merge import LayerMerge
from .mrml_lobe_points import forget_points, stored_points

RUNNING, APPLIED, IDLE, SUPERSEDED, CANCELLED = "running", "applied", "idle", "superseded", "cancelled"
LOCAL, FULL, FULL_IMPORT = "local", "full", "full import"
# Each poll waits this long for the worker, the GIL released meanwhile. Slicer's embedded Python
# keeps the GIL on the GUI thread while Qt's event loop runs (Slicer 5.8-5.12 do not turn on
# PythonQt's thread support: no setEnableThreadSupport in their source), so a Python worker thread
# advances mainly while the GUI thread runs Python; this bounds the GUI's hold per poll.
POLL_WAIT_S = 0.02


def volume_geometry(volume) -> Geometry:
    """The core's geometry of a volume node whose axes are LPS's up to their order and sign
    (``mrml_lobe_layer.lps_order``), from its IJK-to-RAS matrix (no voxel copy): the grid of the
    LPS-oriented array (sizes and spacings per L, P, S axis; its first voxel the volume's last
    along each reversed axis)."""
    m = lps_grid_matrix(volume)
    shape = lps_order(volume).lps_shape(volume.GetImageData().GetDimensions())
    return Geometry(tuple(shape[::-1]),
                    tuple(float(s) for s in np.linalg.norm(m[:3, :3], axis=0)),
                    tuple(float(v) for v in LPS_DIRECTION @ m[:3, 3]), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def _compute(layer: LobeLayer, geometry: Geometry, old_points: dict, new_points: dict):
    """Worker thread: the voxels to relabel (the lungs looked up in the layer voxel by voxel)."""
    return lobe_changes(layer.lungs(), geometry, old_points, new_points)


def _recompute_all(layer: LobeLayer, geometry: Geometry, points: dict, progress: Progress):
    """Worker thread: every lobe voxel from ``points`` (the lungs are the lobes' union), as changes."""
    lobes = layer.read()
    progress.step(0.05, "recomputing every lobe voxel from the fissure points")
    new = assign_lobes(lungs_from_lobes(lobes), geometry, points, progress.sub(0.05, 0.95))
    kk, jj, ii = np.nonzero(new != lobes)
    return kk, jj, ii, new[kk, jj, ii]


def _layer_job(layer: LobeLayer, geometry: Geometry, old_points, new_points: dict, expected_digest,
               progress: Progress):
    """Worker thread, one shared layer: ``(path, changes, digest of the lobes after them)``. Points
    read from the node (``expected_digest`` given) are used only when the lobes still match them."""
    if old_points is not None and expected_digest is not None and layer.digest() != expected_digest:
        progress.step(0.0, "the lobes were changed after their fissure points were stored")
        old_points = None
    if old_points is not None:
        path, changes = LOCAL, _compute(layer, geometry, old_points, new_points)
    else:
        path, changes = FULL, _recompute_all(layer, geometry, new_points, progress)
    return path, changes, layer.digest(changes)


def _array_job(current: np.ndarray, geometry: Geometry, old_points, new_points: dict, progress: Progress):
    """Worker thread, no shared layer: ``(path, lobes)`` from the exported lobes ``current``."""
    lungs = lungs_from_lobes(current)
    if old_points is not None:
        return FULL_IMPORT, update_lobes(current, lungs, geometry, old_points, new_points)[0]
    progress.step(0.05, "recomputing every lobe voxel from the fissure points")
    return FULL_IMPORT, assign_lobes(lungs, geometry, new_points, progress.sub(0.05, 0.95))


def _overlap_job(merging: LayerMerge, geometry: Geometry, points: dict, progress: Progress):
    """Worker thread, lobes in several layers that overlap: every lobe voxel from ``points``."""
    progress.step(0.05, "the lobes overlap: recomputing every lobe voxel from the fissure points")
    return assign_lobes(merging.lungs(), geometry, points, progress.sub(0.05, 0.95))


def _moved(before, after: dict) -> list[str]:
    return sorted(moved_fissures(before, after)) if before else []


@dataclass
class _Job:
    generation: int
    volume: object
    segmentation: object
    layer: LobeLayer | None
    key: tuple
    points: dict
    before: dict | None  # the points the lobes were (said to be) made from, for "moved by the reader"
    future: object
    cancel: threading.Event
    image: object = field(default=None)  # the CT image (full import only)
    merge: LayerMerge | None = field(default=None)  # the lobes' layers being merged (no points computed yet)
    overlap: bool = False  # the lobes (several layers, overlapping) recomputed on the whole grid


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
        self.last_path: str | None = None  # LOCAL, FULL or FULL_IMPORT: how the last result was computed
        self.merged = 0  # times the lobes' layers were merged into one
        self.progress: tuple[float, str] | None = None  # the worker's (fraction, message), None when idle

    def start(self, volume, segmentation) -> str:
        """A drag ended: compute the lobes for the scene's fissure points. Returns ``running`` (poll
        until it is not); the GUI thread does only what MRML needs (see the module's docstring)."""
        self._generation += 1
        self._request = (volume, segmentation)
        if self._job is not None:
            self._job.cancel.set()  # a full recompute stops at its next step; its result is not used
            return RUNNING  # the running job's result will be thrown away; this one starts after it
        return self._launch(volume, segmentation)

    def _report(self, fraction: float, message: str) -> None:
        job = self._job
        if job is not None and job.cancel.is_set():
            return  # a cancelled job winding down reports nothing: the panel keeps saying "cancelled"
        self.progress = (fraction, message)  # from the worker: one assignment, read by the GUI's poll

    def _points_before(self, segmentation, points: dict):
        """``(points the lobes were made from, digest to check or None)``: the logic's own, else
        the node's stored ones (to be checked), else ``(None, None)``."""
        shown = getattr(self.logic, "_shown_points", None)
        owner = getattr(self.logic, "_shown_for", None)  # the segmentation they were applied to, if known
        if shown and set(shown) == set(points) and (owner is None or owner is segmentation):
            return shown, None
        stored = stored_points(segmentation)
        if stored is not None and set(stored[0]) == set(points):
            return stored
        return None, None

    def _launch(self, volume, segmentation, merge: bool = True) -> str:
        logic = self.logic
        points = logic.fissure_points()
        codes = logic.lobe_codes(segmentation)
        layer = LobeLayer.find(segmentation, volume, codes)  # None unless the axes are along L, P, S
        merging = LayerMerge.prepare(segmentation, volume, codes) \
            if layer is None and merge and LobeLayer.axis_aligned(volume) else None
        before, digest = self._points_before(segmentation, points)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="DPOScoring-lobes")
        cancel = threading.Event()
        progress = Progress(self._report, cancel)
        self.progress = (0.0, "updating the lobes")
        image = None
        if merging is not None:  # first the lobes into one layer (in the worker), then the drag
            self.progress = (0.0, "merging the lobes' layers into one")
            future = self._executor.submit(merging.merge)
        elif layer is not None:
            future = self._executor.submit(_layer_job, layer, volume_geometry(volume), before, points, digest,
                                           progress)
        else:  # the lobes read through Slicer's export here (MRML), computed there, imported on apply
            ct = logic.checked_ct(volume)
            current = logic.lobe_array(segmentation, volume)
            image = ct.image
            trusted = before if digest is None else None  # a stored digest cannot be checked without a layer
            future = self._executor.submit(_array_job, current, ct.geometry, trusted, points, progress)
        key = logic.segmentation_content_key(segmentation)
        self._job = _Job(self._generation, volume, segmentation, layer, key, points, before, future, cancel, image,
                         merging)
        return RUNNING

    @property
    def running(self) -> bool:
        return self._job is not None

    def cancel(self) -> None:
        """The reader cancelled: a full recompute stops at its next step, nothing is applied."""
        self._request = None
        if self._job is not None:
            self._generation += 1
            self._job.cancel.set()
            self.progress = None

    def poll(self, wait_s: float = POLL_WAIT_S) -> str:
        """From the GUI thread: ``running``, ``idle`` (nothing to do), ``applied`` (the lobes in the
        segmentation follow the latest points), ``cancelled``. Waits up to ``wait_s`` for the worker
        (see ``POLL_WAIT_S``). An error of the computation is raised here."""
        job = self._job
        if job is None:
            return IDLE
        if wait_s > 0:
            wait_for([job.future], timeout=wait_s)
        if not job.future.done():
            return RUNNING
        self._job = None
        self.progress = None
        try:
            result = job.future.result()
        except DPOCancelled:
            result = None
        except Exception:
            self._request = None
            raise
        logic = self.logic
        alive = logic.scene.GetNodeByID(job.segmentation.GetID()) is job.segmentation
        if job.merge is not None and not job.overlap:
            return self._merged(job, result, alive)
        current = result is not None and job.generation == self._generation and alive and \
            logic.segmentation_content_key(job.segmentation) == job.key
        if not current:
            self.last_stale += 1
            request, self._request = self._request, None
            if request is not None and alive and logic.scene.GetNodeByID(request[1].GetID()) is request[1]:
                return self._launch(*request)  # the latest points (or the edited segmentation) next
            return CANCELLED if result is None or job.cancel.is_set() else SUPERSEDED
        if job.overlap:
            self._apply_overlap(job, result)
        elif job.layer is not None:
            self._apply(job, *result)
        else:
            self._apply_import(job, *result)
        self._request = None
        return APPLIED

    def _merged(self, job: _Job, merged, alive: bool) -> str:
        """The layers' merge is in: installed unless the segmentation changed meanwhile, then the
        latest drag is computed (on the merged layer; or, when lobes overlap, by the import path)."""
        request, self._request = self._request, None
        if request is None or not alive or self.logic.scene.GetNodeByID(request[1].GetID()) is not request[1]:
            return CANCELLED if request is None else SUPERSEDED
        if self.logic.segmentation_content_key(job.segmentation) != job.key:
            self.last_stale += 1
            return self._launch(*request)  # edited meanwhile: prepared again
        if merged is None:  # lobes overlap: not merged, every lobe voxel recomputed instead
            volume, segmentation = request
            if segmentation is not job.segmentation:
                return self._launch(*request)
            points = self.logic.fissure_points()
            cancel = threading.Event()
            self.progress = (0.0, "the lobes overlap: recomputing every lobe voxel")
            future = self._executor.submit(_overlap_job, job.merge, volume_geometry(volume), points,
                                           Progress(self._report, cancel))
            before, _ = self._points_before(segmentation, points)
            self._job = _Job(self._generation, volume, segmentation, None, job.key, points, before, future, cancel,
                             None, job.merge, overlap=True)
            return RUNNING
        job.merge.install(merged)
        self.merged += 1
        return self._launch(*request)

    def _remember(self, job: _Job, path: str) -> None:
        self.last_path = path
        self.last_moved = _moved(job.before, job.points)
        self.logic._shown_points = {name: np.asarray(p, dtype=float).copy() for name, p in job.points.items()}
        self.logic._shown_for = job.segmentation

    def _apply(self, job: _Job, path: str, changes, digest: str) -> None:
        logic = self.logic
        self.last_changed_voxels = job.layer.write(*changes)
        self._remember(job, path)
        self.logic.keep_lobe_points(job.segmentation, job.points, digest)  # saved with the scene
        key = logic.segmentation_content_key(job.segmentation)
        cache_key = getattr(logic, "_lobe_cache_key", None)
        if cache_key is not None and cache_key[0] == job.key:  # the lobe cache follows without an export
            lobes = logic._lobe_cache[0].copy()
            kk, jj, ii, labels = changes
            lobes[kk, jj, ii] = labels
            logic._lobe_cache = (lobes, logic._lobe_cache[1])
            logic._lobe_cache_key = (key, *cache_key[1:])

    def _apply_overlap(self, job: _Job, lobes: np.ndarray) -> None:
        job.merge.install(lobes, whole_grid=True)
        self.merged += 1
        self.last_changed_voxels = int(np.count_nonzero(lobes))  # every lobe voxel written
        self._remember(job, FULL)
        layer = LobeLayer.find(job.segmentation, job.volume, self.logic.lobe_codes(job.segmentation))
        if layer is not None:
            self.logic.keep_lobe_points(job.segmentation, job.points, layer.digest())
        else:
            forget_points(job.segmentation)  # the points stored before describe other lobes

    def _apply_import(self, job: _Job, path: str, lobes: np.ndarray) -> None:
        logic = self.logic
        logic.lobes_to_segmentation(lobes, job.image, job.volume, job.segmentation)
        self.last_changed_voxels = int(np.count_nonzero(lobes))  # every voxel imported
        self._remember(job, path)
        layer = LobeLayer.find(job.segmentation, job.volume, logic.lobe_codes(job.segmentation))
        if layer is not None:
            self.logic.keep_lobe_points(job.segmentation, job.points, layer.digest())
        else:
            forget_points(job.segmentation)

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
        self.cancel()
        self._generation += 1
        self._job = None
        self._request = None
        self.progress = None
