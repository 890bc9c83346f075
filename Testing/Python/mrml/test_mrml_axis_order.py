"""The lobe layer's view of a CT in any axis order (``mrml_lobe_layer.AxisOrder``), for all 48
signed permutations of LPS (right- and left-handed frames), anisotropic spacing so that a swapped
spacing would show, and a layer cropped on every side in each of the 48 orders of the same lattice.

Truths from outside the code under test: SimpleITK's ``DICOMOrient(image, "LPS")`` of the same
voxels and frame, and an explicit IJK-to-LPS mapping written here. Real MRML nodes (slicer-core).
Adapted from the second review's scratch check of the change (it found the code correct; the
repository's drag tests cover two orders with equal in-plane spacing)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is installed by the test setup (make test)")

import SimpleITK as sitk  # noqa: E402
import vtk  # noqa: E402
from vtk.util import numpy_support  # noqa: E402

from DPOScoringLib.mrml import mrml_lobe_drag  # noqa: E402
from DPOScoringLib.mrml.mrml_lobe_layer import LobeLayer, lps_grid_matrix, lps_order, placement  # noqa: E402

DIMS = (5, 6, 7)
SPACING = (0.7, 0.8, 2.5)
ORIGIN_LPS = np.array([10.3, -20.1, 33.7])
RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def signed_permutations():
    """Directions whose IJK axis c runs along LPS axis p[c] with sign s[c]."""
    for p in itertools.permutations(range(3)):
        for s in itertools.product((1, -1), repeat=3):
            direction = np.zeros((3, 3))
            for c in range(3):
                direction[p[c], c] = s[c]
            yield p, s, direction


FRAMES = list(signed_permutations())


def vtk_matrix(matrix: np.ndarray):
    result = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            result.SetElement(r, c, float(matrix[r, c]))
    return result


def explicit_lps(array: np.ndarray, ijk_to_lps: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The voxels in LPS-array order, by mapping every IJK index to LPS and sorting on a grid."""
    ii, jj, kk = np.meshgrid(*[np.arange(d) for d in DIMS], indexing="ij")
    position = (ijk_to_lps @ np.stack([ii.ravel(), jj.ravel(), kk.ravel(), np.ones(ii.size)]))[:3]
    step = np.abs(direction) @ np.array(SPACING)
    index = np.rint((position - position.min(axis=1)[:, None]) / step[:, None]).astype(int)
    result = np.zeros(tuple(int(index[a].max()) + 1 for a in (2, 1, 0)), dtype=array.dtype)
    result[index[2], index[1], index[0]] = array[kk.ravel(), jj.ravel(), ii.ravel()]
    return result


@pytest.mark.parametrize("frame", range(len(FRAMES)),
                         ids=[f"{p}{''.join('+' if v > 0 else '-' for v in s)}" for p, s, _ in FRAMES])
def test_every_signed_axis_order_is_seen_in_lps_order_with_its_own_spacing(frame):
    _, _, direction = FRAMES[frame]
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = direction @ np.diag(SPACING)
    ijk_to_lps[:3, 3] = ORIGIN_LPS
    array = np.arange(np.prod(DIMS), dtype=np.int32).reshape(DIMS[::-1])
    volume = slicer.vtkMRMLScalarVolumeNode()
    image = vtk.vtkImageData()
    image.SetDimensions(*DIMS)
    image.AllocateScalars(vtk.VTK_INT, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = array.ravel()
    volume.SetAndObserveImageData(image)
    volume.SetIJKToRASMatrix(vtk_matrix(RAS_FROM_LPS @ ijk_to_lps))

    reference = sitk.GetImageFromArray(array)
    reference.SetSpacing(SPACING)
    reference.SetOrigin(tuple(ORIGIN_LPS))
    reference.SetDirection(tuple(direction.ravel()))
    oriented = sitk.DICOMOrient(reference, "LPS")
    expected = sitk.GetArrayFromImage(oriented)
    assert np.array_equal(expected, explicit_lps(array, ijk_to_lps, direction))  # the two truths agree

    order = lps_order(volume)
    assert order is not None and np.array_equal(order.view(array), expected)
    assert order.lps_shape(DIMS) == expected.shape
    geometry = mrml_lobe_drag.volume_geometry(volume)
    assert tuple(geometry.size) == oriented.GetSize()
    assert np.allclose(geometry.spacing, oriented.GetSpacing()) and np.allclose(geometry.origin, oriented.GetOrigin())
    grid = np.eye(4)
    grid[:3, :3] = np.array(oriented.GetDirection()).reshape(3, 3) @ np.diag(oriented.GetSpacing())
    grid[:3, 3] = oriented.GetOrigin()
    assert np.allclose(RAS_FROM_LPS @ lps_grid_matrix(volume), grid)

    # a layer on the same lattice in each of the 48 orders, cropped by one voxel on every side
    lps_sizes = expected.shape[::-1]  # (L, P, S)
    for p, s, _ in FRAMES:
        layer_to_lps_index = np.eye(4)
        layer_to_lps_index[:3, :3] = 0.0
        for c in range(3):
            layer_to_lps_index[p[c], c] = s[c]
            layer_to_lps_index[p[c], 3] = 0 if s[c] > 0 else lps_sizes[p[c]] - 1
        extent = [v for c in range(3) for v in (1, lps_sizes[p[c]] - 2)]
        labelmap = slicer.vtkOrientedImageData()
        labelmap.SetExtent(*extent)
        labelmap.AllocateScalars(vtk.VTK_INT, 1)
        labelmap.SetImageToWorldMatrix(vtk_matrix(lps_grid_matrix(volume) @ layer_to_lps_index))
        li, lj, lk = np.meshgrid(*[np.arange(extent[2 * c], extent[2 * c + 1] + 1) for c in range(3)], indexing="ij")
        lps = np.rint(layer_to_lps_index @ np.stack([li.ravel(), lj.ravel(), lk.ravel(), np.ones(li.size)]))
        lps = lps[:3].astype(int)
        shape = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
        voxels = np.zeros(shape, dtype=np.int32)
        inside = (lk.ravel() - extent[4], lj.ravel() - extent[2], li.ravel() - extent[0])
        voxels[inside] = expected[lps[2], lps[1], lps[0]]
        numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())[:] = voxels.ravel()

        placed = placement(labelmap, volume)
        assert placed is not None, (frame, p, s)
        layer_order, offset = placed
        assert offset == (1, 1, 1), (frame, p, s)
        seen = layer_order.view(voxels)
        assert np.array_equal(seen, expected[1:1 + seen.shape[0], 1:1 + seen.shape[1], 1:1 + seen.shape[2]]), (p, s)
        layer = LobeLayer(None, labelmap, {}, {1: 1}, labelmap.GetExtent(), order.lps_shape(DIMS), layer_order, offset)
        layer.view()[0, 0, 0] = -5  # written through the view: lands on the layer voxel at LPS index offset
        raw = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(shape)
        k, j, i = np.argwhere(raw == -5)[0]
        written = np.rint(layer_to_lps_index @ np.array([i + extent[0], j + extent[2], k + extent[4], 1.0]))[:3]
        assert tuple(int(v) for v in written[::-1]) == offset, (frame, p, s)
