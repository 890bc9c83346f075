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
import of separate label maps) are merged into one by ``mrml_lobe_layer_merge``. The layer is
read and written as the core's LPS-oriented array whatever the sign of the volume's axes (an
axial CT stored feet first, prone or RAS-ordered: reversed numpy views). Any other arrangement
(a layer on another grid, a volume with permuted or oblique axes, a left upper lobe still
holding the lingula, a closed-surface source) is not handled here: ``LobeLayer.find`` returns
None and the caller takes the export/import path.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from ..common.anatomy import BY_CODE, lungs_from_lobes
from .mrml_lobe_points import lobe_digest

LPS_DIRECTION = np.diag([-1.0, -1.0, 1.0])  # an LPS-ordered volume's IJK axes in RAS
# a layer's voxels are the reference volume's when their IJK-to-RAS matrices agree this closely
MATRIX_TOLERANCE = 1e-4


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


def lps_flips(volume) -> tuple[bool, bool, bool] | None:
    """Per voxel-array axis (k, j, i): whether it runs against the core's LPS order, when the
    volume's IJK axes are LPS's up to their sign (an axial CT stored feet first, prone, or in a
    RAS-ordered NIfTI); None when they are permuted or oblique (the caller then exports and
    reorients through SimpleITK)."""
    return _flips(matrix_of(volume.GetIJKToRASMatrix))


def _flips(matrix: np.ndarray) -> tuple[bool, bool, bool] | None:
    m = matrix[:3, :3]
    direction = np.linalg.inv(LPS_DIRECTION) @ (m / np.linalg.norm(m, axis=0))  # IJK axes in LPS
    if not np.allclose(np.abs(direction), np.eye(3), atol=MATRIX_TOLERANCE):
        return None
    return tuple(bool(direction[axis, axis] < 0) for axis in (2, 1, 0))


def lps_grid_matrix(volume) -> np.ndarray | None:
    """IJK-to-RAS of the volume's voxels ordered as the core's LPS-oriented array (its axes
    reversed where they run against LPS), or None (``lps_flips``)."""
    m = matrix_of(volume.GetIJKToRASMatrix)
    flips = lps_flips(volume)
    if flips is None:
        return None
    dims = volume.GetImageData().GetDimensions()
    first = [dims[axis] - 1 if flips[2 - axis] else 0 for axis in range(3)]
    lps = np.eye(4)
    lps[:3, :3] = LPS_DIRECTION * np.linalg.norm(m[:3, :3], axis=0)
    lps[:3, 3] = (m @ np.array([*first, 1.0]))[:3]
    return lps


def placement(labelmap, volume):
    """``(flips, offset)`` when the labelmap's voxels are ``volume``'s voxels (the same lattice,
    each axis run either way: a layer on the volume's own grid, or on its LPS-ordered grid as the
    core's arrays are imported), its extent inside the volume: per array axis (k, j, i) whether
    the layer runs against LPS, and the LPS-array index (k, j, i) of the layer's first voxel as
    ``LobeLayer.view`` shows it; else None."""
    if labelmap is None or labelmap.GetPointData().GetScalars() is None or volume.GetImageData() is None:
        return None
    reference = lps_grid_matrix(volume)
    matrix = matrix_of(labelmap.GetImageToWorldMatrix)
    flips = _flips(matrix)
    if reference is None or flips is None or not np.allclose(np.abs(np.linalg.inv(reference)[:3, :3] @ matrix[:3, :3]),
                                                             np.eye(3), atol=MATRIX_TOLERANCE):
        return None  # another orientation or spacing
    start = (np.linalg.inv(reference) @ matrix @ np.array([0.0, 0.0, 0.0, 1.0]))[:3]  # LPS index of IJK 0
    if not np.allclose(start, np.round(start), atol=MATRIX_TOLERANCE * 10):
        return None  # shifted by a part of a voxel
    extent, dims = labelmap.GetExtent(), volume.GetImageData().GetDimensions()
    offset, size = [], []
    for axis in (2, 1, 0):
        low, high = extent[2 * axis], extent[2 * axis + 1]
        flip = flips[2 - axis]
        offset.append(int(round(start[axis])) + (-high if flip else low))
        size.append(high - low + 1)
    if any(o < 0 or o + n > d for o, n, d in zip(offset, size, dims[::-1])):
        return None
    return flips, tuple(offset)


def on_grid(labelmap, volume) -> bool:
    """The labelmap's voxels are ``volume``'s: the same IJK-to-RAS matrix, the extent inside it."""
    if labelmap is None or labelmap.GetPointData().GetScalars() is None or volume.GetImageData() is None:
        return False
    reference = matrix_of(volume.GetIJKToRASMatrix)
    if not np.allclose(matrix_of(labelmap.GetImageToWorldMatrix), reference, atol=MATRIX_TOLERANCE):
        return False
    extent, dims = labelmap.GetExtent(), volume.GetImageData().GetDimensions()
    return not any(extent[2 * a] < 0 or extent[2 * a + 1] >= dims[a] for a in range(3))


def matrix_of(get) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    get(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


class LobeLayer:
    """The shared layer holding the six lobes of ``segmentation`` on ``volume``'s grid."""

    def __init__(self, segmentation, labelmap, segment_ids: dict, values: dict, extent, shape,
                 flips=(False, False, False), offset=None):
        self.segmentation = segmentation
        self.labelmap = labelmap  # vtkOrientedImageData, kept alive while this object lives
        # its voxel array too: a numpy view in the worker thread never outlives the memory it reads,
        # even when an edit gives the layer new scalars meanwhile (that result is then thrown away)
        self.scalars = labelmap.GetPointData().GetScalars()
        self.extent = tuple(extent)
        self.segment_ids = segment_ids  # spec label 1-6 -> segment ID
        self.values = values  # spec label 1-6 -> label value in the layer
        self.shape = tuple(shape)  # the reference volume's (k, j, i)
        # the layer is read and written as the core's LPS-oriented array: axes that run against
        # LPS are viewed reversed (numpy views, no copy); offset: (k, j, i) of the view's first voxel
        self.flips = tuple(bool(f) for f in flips)
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
        extent, dims = labelmap.GetExtent(), volume.GetImageData().GetDimensions()
        ids = {label: segment_id for segment_id, label in labels.items()}
        values = {label: segments.GetSegment(segment_id).GetLabelValue() for label, segment_id in ids.items()}
        if len(set(values.values())) != len(values) or min(values.values()) < 1:
            return None
        return cls(segmentation, labelmap, ids, values, extent, dims[::-1], *placed)

    @staticmethod
    def lps_ordered(volume) -> bool:
        """The volume's IJK axes run toward patient left, posterior, superior: its voxel array is
        the core's LPS-oriented array (``ct_image.orient_lps`` leaves it as it is)."""
        return lps_flips(volume) == (False, False, False)

    def view(self) -> np.ndarray:
        """The layer's voxels, [k, j, i] in LPS order, not copied (writing here writes the segmentation)."""
        extent = self.extent
        shape = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
        voxels = numpy_support.vtk_to_numpy(self.scalars).reshape(shape)
        return voxels[tuple(slice(None, None, -1) if flip else slice(None) for flip in self.flips)]

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
