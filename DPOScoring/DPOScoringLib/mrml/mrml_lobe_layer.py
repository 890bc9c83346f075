"""The lobes where the segmentation node keeps them: one shared binary-labelmap layer (what Slicer
makes of a label map import, of a ``.seg.nrrd`` with one layer, and what the Segment Editor keeps
when overlap is not allowed), read and written in place.

Slicer stores segments that do not overlap in one ``vtkOrientedImageData`` ("layer") shared by the
segments, each segment a label value in it (``vtkSegment::GetLabelValue``). When all six lobes live
in one layer on the reference volume's voxel grid, the lobes are that layer's voxels, cropped to
its extent: reading them needs no export and a recompute writes only the voxels that change, then
tells Slicer what changed as Slicer's own ``slicer.util.arrayFromSegmentInternalBinaryLabelmap``
documents it (the layer's ``Modified()`` invalidates the derived representations through
``vtkSegmentation::OnSourceRepresentationModified``; each changed segment's ``Modified()`` makes the
2-D views redraw, ``vtkMRMLSegmentationsDisplayableManager2D`` listening to ``SegmentModified``).
Lobes in several layers (after ``SeparateSegmentLabelmap``, some Segment Editor operations, an
import of separate label maps) are merged into one by ``mrml_lobe_layer_merge``.

The layer is read and written as the core's LPS-oriented array whenever the volume's IJK axes are
LPS's up to order and sign (``AxisOrder``: an axial CT stored head or feet first, supine or prone,
a RAS-ordered NIfTI, a CT stored as sagittal or coronal slices): a numpy view of its voxels,
transposed into L, P, S order and reversed where an axis runs against it, no copy. The layer may
lie on the volume's own grid or on its LPS-ordered one (how the core's arrays are imported), or
on the same lattice in any other axis order. Any other arrangement (a layer on another lattice, a
volume with oblique axes, a left upper lobe still holding the lingula, a closed-surface source) is
not handled here: ``LobeLayer.find`` returns None and the caller takes the export/import path.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from ..common.anatomy import BY_CODE, lungs_from_lobes
from .mrml_lobe_points import lobe_digest

LPS_DIRECTION = np.diag([-1.0, -1.0, 1.0])  # an LPS-ordered volume's IJK axes in RAS
# a layer's voxels are the reference volume's when their IJK-to-RAS matrices agree this closely
MATRIX_TOLERANCE = 1e-4


class AxisOrder(NamedTuple):
    """How an image whose IJK axes are a signed permutation of LPS's is seen as the core's
    LPS-oriented array. Per LPS axis (x: left, y: posterior, z: superior): ``ijk``, which of the
    image's IJK axes runs along it, and ``against``, whether that axis runs toward right, anterior
    or inferior. ``view`` is a numpy view (transposed, reversed where against): no copy, writable."""

    ijk: tuple
    against: tuple

    @property
    def axes(self) -> tuple:
        """The transpose of a voxel array [k, j, i] into LPS-array order (S, P, L)."""
        return tuple(2 - self.ijk[2 - b] for b in range(3))

    @property
    def flips(self) -> tuple:
        """Per LPS-array axis (k, j, i): whether it is reversed."""
        return tuple(self.against[2 - b] for b in range(3))

    def view(self, voxels: np.ndarray) -> np.ndarray:
        """The voxel array [k, j, i] in LPS-array order (a view)."""
        return voxels.transpose(self.axes)[tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)]

    def lps_shape(self, dims) -> tuple:
        """The LPS-oriented array's shape (k, j, i) from the image's dimensions (i, j, k)."""
        return tuple(int(dims[self.ijk[a]]) for a in (2, 1, 0))


def lobe_labels(segmentation, codes: dict) -> dict | None:
    """Segment ID -> spec label 1-6 when ``codes`` (segment ID -> lobe code) are the six lobes of a
    segmentation whose source representation is a binary labelmap; else None."""
    # a left upper lobe "with the lingula" (``LUL+``: its terminology has no "upper division")
    # is the upper division when the lingula is a segment of its own, as lobe_array reads it
    labels = {segment_id: BY_CODE["LUL" if code == "LUL+" else code].label for segment_id, code in codes.items()}
    name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    if (segmentation.GetSegmentation().GetSourceRepresentationName() != name
            or sorted(labels.values()) != sorted(lobe.label for lobe in BY_CODE.values())):
        return None
    return labels


def lps_order(volume) -> AxisOrder | None:
    """The volume's ``AxisOrder`` when its IJK axes are LPS's up to order and sign (an axial CT
    stored head or feet first, supine or prone, a RAS-ordered NIfTI, a CT stored in sagittal or
    coronal slices); None when they are oblique (the caller then exports and reorients through
    SimpleITK)."""
    return axis_order(matrix_of(volume.GetIJKToRASMatrix))


def axis_order(matrix: np.ndarray) -> AxisOrder | None:
    """``AxisOrder`` of an IJK-to-RAS matrix, or None when its axes are not along L, P, S."""
    m = matrix[:3, :3]
    lengths = np.linalg.norm(m, axis=0)
    if not np.all(lengths > 0):
        return None  # a degenerate matrix (a zero spacing)
    direction = np.linalg.inv(LPS_DIRECTION) @ (m / lengths)  # IJK axes (columns) in LPS
    ijk = tuple(int(c) for c in np.argmax(np.abs(direction), axis=1))
    permutation = np.zeros((3, 3))
    permutation[(0, 1, 2), ijk] = 1.0
    if sorted(ijk) != [0, 1, 2] or not np.allclose(np.abs(direction), permutation, atol=MATRIX_TOLERANCE):
        return None
    return AxisOrder(ijk, tuple(bool(direction[a, ijk[a]] < 0) for a in range(3)))


def lps_grid_matrix(volume) -> np.ndarray | None:
    """IJK-to-RAS of the volume's voxels ordered as the core's LPS-oriented array (its axes
    permuted to L, P, S and reversed where they run against them), or None (``lps_order``)."""
    m = matrix_of(volume.GetIJKToRASMatrix)
    order = axis_order(m)
    if order is None:
        return None
    dims = volume.GetImageData().GetDimensions()
    first = np.zeros(3)  # the volume's IJK index of the LPS-ordered grid's first voxel
    lps = np.eye(4)
    for axis in range(3):
        column = order.ijk[axis]
        if order.against[axis]:
            first[column] = dims[column] - 1
        lps[:3, axis] = -m[:3, column] if order.against[axis] else m[:3, column]
    lps[:3, 3] = (m @ np.array([*first, 1.0]))[:3]
    return lps


def placement(labelmap, volume):
    """``(order, offset)`` when the labelmap's voxels are ``volume``'s voxels (the same lattice,
    its axes in any order and either way: a layer on the volume's own grid, or on its LPS-ordered
    grid as the core's arrays are imported), its extent inside the volume: the layer's
    ``AxisOrder`` and the LPS-array index (k, j, i) of its first voxel as ``LobeLayer.view`` shows
    it; else None."""
    if labelmap is None or labelmap.GetPointData().GetScalars() is None or volume.GetImageData() is None:
        return None
    reference = lps_grid_matrix(volume)
    matrix = matrix_of(labelmap.GetImageToWorldMatrix)
    order = axis_order(matrix)
    if reference is None or order is None:
        return None  # oblique axes
    steps = np.linalg.inv(reference)[:3, :3] @ matrix[:3, :3]  # the layer's IJK steps in LPS-grid voxels
    permutation = np.zeros((3, 3))
    permutation[(0, 1, 2), order.ijk] = 1.0
    if not np.allclose(np.abs(steps), permutation, atol=MATRIX_TOLERANCE):
        return None  # another spacing (or orientation)
    start = (np.linalg.inv(reference) @ matrix @ np.array([0.0, 0.0, 0.0, 1.0]))[:3]  # LPS index of IJK 0
    if not np.allclose(start, np.round(start), atol=MATRIX_TOLERANCE * 10):
        return None  # shifted by a part of a voxel
    extent = labelmap.GetExtent()
    offset, size = [], []
    for axis in (2, 1, 0):  # LPS-array order: S, P, L
        column = order.ijk[axis]
        low, high = extent[2 * column], extent[2 * column + 1]
        offset.append(int(round(start[axis])) + (-high if order.against[axis] else low))
        size.append(high - low + 1)
    shape = lps_order(volume).lps_shape(volume.GetImageData().GetDimensions())
    if any(o < 0 or o + n > d for o, n, d in zip(offset, size, shape)):
        return None
    return order, tuple(offset)


def matrix_of(get) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    get(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


class LobeLayer:
    """The shared layer holding the six lobes of ``segmentation`` on ``volume``'s voxels (in the
    volume's own order, its LPS order or any other, ``placement``)."""

    def __init__(self, segmentation, labelmap, segment_ids: dict, values: dict, extent, shape,
                 order: AxisOrder | None = None, offset=None):
        self.segmentation = segmentation
        self.labelmap = labelmap  # vtkOrientedImageData, kept alive while this object lives
        # its voxel array too: a numpy view in the worker thread never outlives the memory it reads,
        # even when an edit gives the layer new scalars meanwhile (that result is then thrown away)
        self.scalars = labelmap.GetPointData().GetScalars()
        self.extent = tuple(extent)
        self.segment_ids = segment_ids  # spec label 1-6 -> segment ID
        self.values = values  # spec label 1-6 -> label value in the layer
        self.shape = tuple(shape)  # the reference volume's LPS-oriented array's (k, j, i)
        # the layer is read and written as the core's LPS-oriented array: its axes transposed into
        # L, P, S order and reversed where they run against them (numpy views, no copy); offset:
        # (k, j, i) of the view's first voxel
        self.order = order if order is not None else AxisOrder((0, 1, 2), (False, False, False))
        self.offset = tuple(offset) if offset is not None else (extent[4], extent[2], extent[0])
        self.lookup = np.zeros(max(values.values()) + 1, dtype=np.uint8)  # layer value -> spec label
        for label, value in values.items():
            self.lookup[value] = label

    @classmethod
    def find(cls, segmentation, volume, codes: dict) -> LobeLayer | None:
        """The layer, when the six lobes (``codes``: segment ID -> lobe code) share one binary
        labelmap on ``volume``'s voxels (``placement``: its own grid or its LPS-ordered one, extent
        inside the volume); else None."""
        segments = segmentation.GetSegmentation()
        labels = lobe_labels(segmentation, codes)
        if labels is None:
            return None
        layers = {segments.GetLayerIndex(segment_id) for segment_id in codes}
        if len(layers) != 1:
            return None
        labelmap = segments.GetLayerDataObject(layers.pop())
        placed = placement(labelmap, volume)
        if placed is None:
            return None
        dims = volume.GetImageData().GetDimensions()
        ids = {label: segment_id for segment_id, label in labels.items()}
        values = {label: segments.GetSegment(segment_id).GetLabelValue() for label, segment_id in ids.items()}
        if len(set(values.values())) != len(values) or min(values.values()) < 1:
            return None
        return cls(segmentation, labelmap, ids, values, labelmap.GetExtent(), lps_order(volume).lps_shape(dims),
                   *placed)

    @staticmethod
    def axis_aligned(volume) -> bool:
        """The volume's IJK axes are LPS's up to order and sign (``lps_order``): its voxels can be
        viewed as the core's LPS-oriented array."""
        return lps_order(volume) is not None

    def view(self) -> np.ndarray:
        """The layer's voxels, [k, j, i] in LPS order, not copied (writing here writes the segmentation)."""
        extent = self.extent
        shape = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
        voxels = numpy_support.vtk_to_numpy(self.scalars).reshape(shape)
        return self.order.view(voxels)

    def digest(self, changes=None) -> str:
        """``mrml_lobe_points.lobe_digest`` of the lobes in this layer (after ``changes``, when
        given: ``kk, jj, ii, labels`` as ``write`` takes them). Reads only: safe in the worker."""
        return lobe_digest(self.view(), self.lookup, self.offset, self.shape, changes)

    def read(self) -> np.ndarray:
        """The lobes as spec labels 1-6 on the whole reference grid (0 elsewhere, and for voxels
        of other segments sharing the layer)."""
        view = self.view()
        lookup = self.lookup
        top = int(view.max()) if view.size else 0
        if top >= lookup.size:  # values of non-lobe segments above the lobes' ones
            lookup = np.concatenate([lookup, np.zeros(top + 1 - lookup.size, dtype=np.uint8)])
        lobes = np.zeros(self.shape, dtype=np.uint8)
        k, j, i = self.offset
        lobes[k:k + view.shape[0], j:j + view.shape[1], i:i + view.shape[2]] = lookup[view]
        return lobes

    def lungs(self) -> LayerLungs:
        """The lungs (1 right, 2 left) as the core's ``fissures.lobe_changes`` reads them, looked up
        in the layer voxel by voxel: no whole-volume array is made."""
        return LayerLungs(self.view(), self.offset, self.shape, lungs_from_lobes(self.lookup))

    def write(self, kk, jj, ii, labels) -> int:
        """Spec labels into the layer at (kk, jj, ii) (reference grid), only where they differ;
        Slicer is told which segments changed. Returns the number of voxels changed."""
        view = self.view()
        k, j, i = self.offset
        index = (np.asarray(kk) - k, np.asarray(jj) - j, np.asarray(ii) - i)
        inside = ((index[0] >= 0) & (index[0] < view.shape[0]) & (index[1] >= 0) & (index[1] < view.shape[1])
                  & (index[2] >= 0) & (index[2] < view.shape[2]))
        if not inside.all():
            raise ValueError("lobe voxels outside the lobes' layer: the caller must check the lungs")
        values = np.zeros(7, dtype=view.dtype)
        for label, value in self.values.items():
            values[label] = value
        new = values[np.asarray(labels, dtype=np.intp)]
        old = view[index]
        differs = old != new
        if not differs.any():
            return 0
        touched = {int(v) for v in np.unique(old[differs])} | {int(v) for v in np.unique(new[differs])}
        view[tuple(axis[differs] for axis in index)] = new[differs]
        self.labelmap.Modified()  # derived representations (closed surface) are recomputed on demand
        segments = self.segmentation.GetSegmentation()
        for label, value in self.values.items():
            if value in touched:
                segments.GetSegment(self.segment_ids[label]).Modified()  # the views redraw
        return int(differs.sum())


class LayerLungs:
    """Array-like lungs over the reference grid (``shape``, ``lungs[kk, jj, ii]``) read from a
    layer's voxels: 1 for the right lobes' label values, 2 for the left ones', 0 elsewhere."""

    def __init__(self, view: np.ndarray, offset, shape, sides: np.ndarray):
        self.view, self.offset, self.shape, self.sides = view, offset, tuple(shape), sides
        self.ndim = 3

    def __getitem__(self, index):
        kk, jj, ii = (np.asarray(axis) - start for axis, start in zip(index, self.offset))
        inside = ((kk >= 0) & (kk < self.view.shape[0]) & (jj >= 0) & (jj < self.view.shape[1])
                  & (ii >= 0) & (ii < self.view.shape[2]))
        values = np.zeros(kk.shape, dtype=np.intp)
        values[inside] = self.view[kk[inside], jj[inside], ii[inside]]
        result = np.zeros(kk.shape, dtype=np.uint8)
        known = values < self.sides.size
        result[known] = self.sides[values[known]]
        return result
