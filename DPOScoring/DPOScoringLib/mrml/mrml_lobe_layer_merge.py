"""Lobes in several binary-labelmap layers (after ``SeparateSegmentLabelmap``, some Segment Editor
effects, an import of separate label maps) merged into one shared layer, so that a drag takes the
local path (``mrml_lobe_layer``), without holding the GUI.

Slicer's own ``vtkSegmentation::CollapseBinaryLabelmaps(false)`` would do it, voxel for voxel, but
in C++ on the GUI thread: 3.6 s on 512 x 512 x 400 with two lobes in layers of their own (measured
with slicer-core, benchmarks/lobe_drag_benchmark.py). Here the merge is split as the drag is:

* ``LayerMerge.prepare`` (GUI thread): each lobe's layer as a numpy view (its voxel array kept
  alive), only when every one is on the reference volume's grid (no voxel is resampled);
* ``merge`` (worker thread, numpy): one array on the union of their extents, each lobe's voxels
  (its label value in its own layer) written as its spec label 1-6; None when two lobes overlap
  (merging would drop voxels: the caller then recomputes every lobe voxel from the fissure points
  on ``lungs``, the lobes' union, and installs that instead);
* ``install`` (GUI thread): the array as a new ``vtkOrientedImageData`` given to the six lobe
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
from .mrml_lobe_layer import lobe_labels, on_grid


class LayerMerge:
    def __init__(self, segmentation, volume, parts: list, extent):
        self.segmentation, self.volume = segmentation, volume
        # (segment ID, spec label, its value in its layer, the layer's voxels [k, j, i], their (k, j, i)
        # offset, the voxel array kept alive)
        self.parts = parts
        self.extent = extent  # the union of the lobe layers' extents (i0, i1, j0, j1, k0, k1)

    @classmethod
    def prepare(cls, segmentation, volume, codes: dict) -> LayerMerge | None:
        """GUI thread: the merge of the six lobes' layers, or None (one layer already, a layer not
        on ``volume``'s grid, not six lobes, a closed-surface source)."""
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
            if not on_grid(labelmap, volume):
                return None
            extent = labelmap.GetExtent()
            scalars = labelmap.GetPointData().GetScalars()
            shape = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
            view = numpy_support.vtk_to_numpy(scalars).reshape(shape)
            parts.append((segment_id, label, segment.GetLabelValue(), view, (extent[4], extent[2], extent[0]), scalars))
            for axis in range(3):
                low, high = extent[2 * axis], extent[2 * axis + 1]
                lower[axis] = low if lower[axis] is None else min(lower[axis], low)
                upper[axis] = high if upper[axis] is None else max(upper[axis], high)
        return cls(segmentation, volume, parts, (lower[0], upper[0], lower[1], upper[1], lower[2], upper[2]))

    def merge(self) -> np.ndarray | None:
        """Worker thread (reads only): the six lobes as spec labels on the union extent, [k, j, i];
        None when two lobes share a voxel."""
        e = self.extent
        merged = np.zeros((e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1), dtype=np.uint8)
        for _segment_id, label, value, view, (k, j, i), _scalars in self.parts:
            region = merged[k - e[4]:k - e[4] + view.shape[0], j - e[2]:j - e[2] + view.shape[1],
                            i - e[0]:i - e[0] + view.shape[2]]
            mask = view == value
            if np.any(region[mask]):
                return None
            region[mask] = label
        return merged

    def lungs(self) -> np.ndarray:
        """Worker thread (reads only): the lungs (1 right, 2 left) the lobes cover, on the whole
        reference grid [k, j, i] (overlapping lobes included)."""
        dims = self.volume.GetImageData().GetDimensions()
        lungs = np.zeros(dims[::-1], dtype=np.uint8)
        for _segment_id, label, value, view, (k, j, i), _scalars in self.parts:
            region = lungs[k:k + view.shape[0], j:j + view.shape[1], i:i + view.shape[2]]
            region[view == value] = lungs_from_lobes(np.array([label], dtype=np.uint8))[0]
        return lungs

    def install(self, merged: np.ndarray, whole_grid: bool = False) -> None:
        """GUI thread: ``merged`` (on the union extent, or with ``whole_grid`` on the reference
        volume's whole grid) becomes the six lobe segments' shared layer."""
        labelmap = slicer.vtkOrientedImageData()
        if whole_grid:
            dims = self.volume.GetImageData().GetDimensions()
            labelmap.SetExtent(0, dims[0] - 1, 0, dims[1] - 1, 0, dims[2] - 1)
        else:
            labelmap.SetExtent(*self.extent)
        matrix = vtk.vtkMatrix4x4()
        self.volume.GetIJKToRASMatrix(matrix)
        labelmap.SetImageToWorldMatrix(matrix)
        scalars = numpy_support.numpy_to_vtk(merged.ravel(), deep=1, array_type=vtk.VTK_UNSIGNED_CHAR)
        labelmap.GetPointData().SetScalars(scalars)
        segments = self.segmentation.GetSegmentation()
        name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
        for segment_id, label, *_ in self.parts:
            segment = segments.GetSegment(segment_id)
            segment.SetLabelValue(label)
            segment.AddRepresentation(name, labelmap)
        labelmap.Modified()
