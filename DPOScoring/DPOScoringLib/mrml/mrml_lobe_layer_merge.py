"""Lobes in several binary-labelmap layers (after ``SeparateSegmentLabelmap``, some Segment Editor
effects, an import of separate label maps) merged into one shared layer, so that a drag takes the
local path (``mrml_lobe_layer``), without holding the GUI.

Slicer's own ``vtkSegmentation::CollapseBinaryLabelmaps(false)`` would do it, voxel for voxel, but
in C++ on the GUI thread: 3.6 s on 512 x 512 x 400 with two lobes in layers of their own (measured
with slicer-core, benchmarks/lobe_drag_benchmark.py). Here the merge is split as the drag is:

* ``LayerMerge.prepare`` (GUI thread): each lobe's layer as a numpy view in the core's LPS order
  (``mrml_lobe_layer.placement``; its voxel array kept alive), only when every one lies on the
  reference volume's voxels, in whatever axis order (no voxel is resampled);
* ``merge`` (worker thread, numpy): one LPS-ordered array on the union of their boxes, each lobe's voxels
  (its label value in its own layer) written as its spec label 1-6; None when two lobes overlap
  (merging would drop voxels: the caller then recomputes every lobe voxel from the fissure points
  on ``lungs``, the lobes' union, and installs that instead);
* ``install`` (GUI thread): the array as a new ``vtkOrientedImageData`` on the volume's
  LPS-ordered grid (``lps_grid_matrix``: the volume's own grid for an LPS-ordered CT) given to the six lobe
  segments with their new label values, which is what Slicer's ``MergeSegmentLabelmaps`` does
  (``segment->SetLabelValue``, ``segment->AddRepresentation(name, sharedLabelmap)``). Other
  segments stay in their layers, untouched, as there.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from ..common.anatomy import lungs_from_lobes
from .mrml_lobe_layer import lobe_labels, lps_grid_matrix, lps_order, placement


class LayerMerge:
    def __init__(self, segmentation, volume, parts: list, lower, upper):
        self.segmentation, self.volume = segmentation, volume
        # (segment ID, spec label, its value in its layer, the layer's voxels [k, j, i] in LPS order,
        # their (k, j, i) offset in the LPS-oriented array, the voxel array kept alive)
        self.parts = parts
        # the union of the lobe layers' boxes in the LPS-oriented array, (k, j, i) first and last
        self.lower, self.upper = tuple(lower), tuple(upper)
        self.shape = lps_order(volume).lps_shape(volume.GetImageData().GetDimensions())

    @classmethod
    def prepare(cls, segmentation, volume, codes: dict) -> LayerMerge | None:
        """GUI thread: the merge of the six lobes' layers, or None (one layer already, a layer not
        on ``volume``'s voxels, not six lobes, a closed-surface source)."""
        labels = lobe_labels(segmentation, codes)
        if labels is None:
            return None
        segments = segmentation.GetSegmentation()
        name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
        if len({segments.GetLayerIndex(segment_id) for segment_id in codes}) < 2:
            return None
        parts, lower, upper = [], [None] * 3, [None] * 3
        for segment_id, label in labels.items():
            segment = segments.GetSegment(segment_id)
            labelmap = segment.GetRepresentation(name)
            placed = placement(labelmap, volume)
            if placed is None:
                return None
            order, offset = placed
            extent = labelmap.GetExtent()
            scalars = labelmap.GetPointData().GetScalars()
            shape = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
            view = order.view(numpy_support.vtk_to_numpy(scalars).reshape(shape))
            parts.append((segment_id, label, segment.GetLabelValue(), view, offset, scalars))
            for axis in range(3):
                low, high = offset[axis], offset[axis] + view.shape[axis] - 1
                lower[axis] = low if lower[axis] is None else min(lower[axis], low)
                upper[axis] = high if upper[axis] is None else max(upper[axis], high)
        return cls(segmentation, volume, parts, lower, upper)

    def merge(self) -> np.ndarray | None:
        """Worker thread (reads only): the six lobes as spec labels on the union box, [k, j, i] in
        LPS order; None when two lobes share a voxel."""
        low, high = self.lower, self.upper
        merged = np.zeros(tuple(h - lo + 1 for lo, h in zip(low, high)), dtype=np.uint8)
        for _segment_id, label, value, view, (k, j, i), _scalars in self.parts:
            k, j, i = k - low[0], j - low[1], i - low[2]
            region = merged[k:k + view.shape[0], j:j + view.shape[1], i:i + view.shape[2]]
            mask = view == value
            if np.any(region[mask]):
                return None
            region[mask] = label
        return merged

    def lungs(self) -> np.ndarray:
        """Worker thread (reads only): the lungs (1 right, 2 left) the lobes cover, on the whole
        reference grid, the LPS-oriented array [k, j, i] (overlapping lobes included)."""
        lungs = np.zeros(self.shape, dtype=np.uint8)
        for _segment_id, label, value, view, (k, j, i), _scalars in self.parts:
            region = lungs[k:k + view.shape[0], j:j + view.shape[1], i:i + view.shape[2]]
            region[view == value] = lungs_from_lobes(np.array([label], dtype=np.uint8))[0]
        return lungs

    def install(self, merged: np.ndarray, whole_grid: bool = False) -> None:
        """GUI thread: ``merged`` (LPS-ordered, on the union box, or with ``whole_grid`` on the
        reference volume's whole grid) becomes the six lobe segments' shared layer, on the volume's
        LPS-ordered grid (its IJK is the LPS-oriented array's (i, j, k))."""
        labelmap = slicer.vtkOrientedImageData()
        low, high = ((0, 0, 0), tuple(n - 1 for n in self.shape)) if whole_grid else (self.lower, self.upper)
        labelmap.SetExtent(low[2], high[2], low[1], high[1], low[0], high[0])
        grid = lps_grid_matrix(self.volume)
        matrix = vtk.vtkMatrix4x4()
        for row in range(4):
            for column in range(4):
                matrix.SetElement(row, column, float(grid[row, column]))
        labelmap.SetImageToWorldMatrix(matrix)
        scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(merged).ravel(), deep=1,
                                             array_type=vtk.VTK_UNSIGNED_CHAR)
        labelmap.GetPointData().SetScalars(scalars)
        segments = self.segmentation.GetSegmentation()
        name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
        for segment_id, label, *_ in self.parts:
            segment = segments.GetSegment(segment_id)
            segment.SetLabelValue(label)
            segment.AddRepresentation(name, labelmap)
        labelmap.Modified()
