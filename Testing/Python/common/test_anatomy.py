"""The one home of the lobe anatomy: lungs from lobes, lobe at a point, lobe and lung volumes.
Expected values are written out by hand from the spec's label values (1-3 right, 4-6 left)."""

from __future__ import annotations

import numpy as np

from DPOScoringLib.common.anatomy import lobe_at, lobe_volumes_ml, lung_volumes_ml, lungs_from_lobes


def test_lungs_from_lobes_maps_right_and_left_lobes_to_their_lungs():
    lobes = np.array([[[0, 1, 2, 3, 4, 5, 6]]], dtype=np.uint8)
    lungs = lungs_from_lobes(lobes)
    assert lungs.dtype == np.uint8 and lungs.shape == lobes.shape
    assert lungs.ravel().tolist() == [0, 1, 1, 1, 2, 2, 2]
    # any integer label map (SimpleITK hands out int16/int32 arrays too)
    assert lungs_from_lobes(lobes.astype(np.int32)).ravel().tolist() == [0, 1, 1, 1, 2, 2, 2]


def test_volumes_in_ml_by_code_and_side():
    lobes = np.zeros((10, 10, 10), dtype=np.uint8)
    lobes[:5] = 1        # 500 voxels RUL
    lobes[5:, :2] = 5    # 100 voxels lingula
    spacing = (2.0, 1.0, 0.5)  # 1 mm3 per voxel
    assert lobe_volumes_ml(lobes, spacing) == {"RUL": 0.5, "RML": 0.0, "RLL": 0.0, "LUL": 0.0,
                                               "LING": 0.1, "LLL": 0.0}
    assert lung_volumes_ml(lungs_from_lobes(lobes), spacing) == {"right": 0.5, "left": 0.1}


def test_lobe_at_takes_the_voxel_or_the_nearest_lobe_within_the_radius():
    lobes = np.zeros((20, 20, 20), dtype=np.uint8)
    lobes[:, :, :8] = 3
    lobes[:, :, 15:] = 6
    spacing = np.array([1.0, 1.0, 1.0])
    assert lobe_at(lobes, (10, 10, 2), spacing) == "RLL"
    assert lobe_at(lobes, (10, 10, 9.8), spacing) == "RLL"  # background: 3 columns of RLL within 5 mm, 1 of LLL
    assert lobe_at(lobes, (10, 10, 13), spacing) == "LLL"  # background: only LLL within 5 mm
    assert lobe_at(lobes, (10, 10, 11), spacing, radius_mm=1.0) == "unassigned"
    assert lobe_at(None, (0, 0, 0), spacing) == "unassigned"
