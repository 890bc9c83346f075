"""``contrast.lung_vessel_values`` after its speed-ups (the distance transform on both cores, tree
sizes counted over the labelled voxels only, one broadcast upsampling) returns exactly what the
plain version returned: that version is kept here as the reference (``np.repeat`` per axis, a
``bincount`` of the whole box, a single-threaded distance transform)."""

from __future__ import annotations

import cc3d
import edt
import numpy as np
import pytest
from conftest import SHARED_DATA, require_real

from DPOScoringLib.ct.contrast import VESSEL_DEPTH_MM, VESSEL_HU, VESSEL_TREE_HU, VESSEL_TREE_MM3, lung_vessel_values
from DPOScoringLib.ct.ct_image import load_ct
from DPOScoringLib.ct.lung_mask import segment_lungs
from DPOScoringLib.ct.voxel_boxes import bounding_box


def reference_vessel_values(hu, lung_labels, spacing_kji):
    voxel_mm3 = float(np.prod(spacing_kji))
    lungs = lung_labels > 0
    if not lungs.any():
        return np.zeros(0, dtype=hu.dtype)
    box = bounding_box(lungs)
    steps = [2 if float(v) < 2.5 else 1 for v in spacing_kji]
    coarse = lungs[tuple(slice(b.start, b.stop, n) for b, n in zip(box, steps))]
    depth = edt.edt(coarse, anisotropy=tuple(n * float(v) for n, v in zip(steps, spacing_kji)), black_border=True)
    inner = depth > VESSEL_DEPTH_MM
    for axis, n in enumerate(steps):
        inner = np.repeat(inner, n, axis=axis)
    local = hu[box]
    inner = inner[:local.shape[0], :local.shape[1], :local.shape[2]]
    trees = cc3d.connected_components(inner & (local >= VESSEL_TREE_HU), connectivity=26)
    sizes = np.bincount(trees.ravel())
    sizes[0] = 0
    vessel = sizes * voxel_mm3 >= VESSEL_TREE_MM3
    return local[vessel[trees] & (local >= VESSEL_HU)]


@pytest.mark.parametrize("spacing_kji", [(1.0, 0.7, 0.7), (5.0, 0.8, 0.8), (2.0, 3.0, 0.9)])
def test_vessel_values_identical_on_random_trees(spacing_kji):
    rng = np.random.default_rng(3)
    # odd sizes (the upsampled depth is cut to the box), lungs 45 mm wide
    shape = tuple(int(90 / v) | 1 for v in spacing_kji)
    lungs = np.zeros(shape, dtype=np.uint8)
    lungs[1:-1, 1:-1, 1:shape[2] // 2] = 1
    lungs[1:-1, 1:-1, shape[2] // 2 + 1:-1] = 2
    hu = rng.normal(-850, 60, shape)
    # blobs above -300 HU of every size: some are trees (>= 3,000 mm^3), most are not
    for _ in range(60):
        k, j, i = (rng.integers(0, n) for n in shape)
        r = np.maximum((rng.uniform(1, 12) / np.array(spacing_kji)).astype(int), 1)
        hu[max(k - r[0], 0):k + r[0], max(j - r[1], 0):j + r[1], max(i - r[2], 0):i + r[2]] = rng.normal(60, 80)
    hu = hu.astype(np.int16)
    got = lung_vessel_values(hu, lungs, spacing_kji)
    want = reference_vessel_values(hu, lungs, spacing_kji)
    assert want.size > 0 and np.array_equal(got, want)


def test_vessel_values_identical_without_trees_and_without_lungs():
    hu = np.full((10, 12, 14), -900, dtype=np.int16)
    lungs = np.zeros(hu.shape, dtype=np.uint8)
    assert lung_vessel_values(hu, lungs, (1.0, 1.0, 1.0)).size == 0
    lungs[1:9, 1:11, 1:13] = 1
    spacing = (1.0, 1.0, 1.0)
    assert np.array_equal(lung_vessel_values(hu, lungs, spacing), reference_vessel_values(hu, lungs, spacing))


@pytest.mark.parametrize("name", ["chest-ct-thorax-2mm.nii.gz", "chest-ct-lung-pet-ct-dx-a0001-5mm.nii.gz"])
def test_vessel_values_identical_on_real_ct(name):
    path = require_real(SHARED_DATA / name)
    ct = load_ct(path)
    lungs = segment_lungs(ct.array, ct.spacing, ct.image.GetOrigin()[0]).labels
    got = lung_vessel_values(ct.array, lungs, ct.spacing[::-1])
    want = reference_vessel_values(ct.array, lungs, ct.spacing[::-1])
    assert want.size >= 200 and np.array_equal(got, want)  # enough to judge contrast
