"""One surface evaluation for every lobe boundary (issue 13): ``fissures.height_map`` (thin-plate
spline on a ~3 mm grid, bilinear with scipy's map_coordinates) draws the lingula in
``split_lingula`` as in ``assign_lobes``. A tilted plane is reproduced exactly by both the spline
(it holds a linear term) and bilinear interpolation, so the truth is the plane itself."""

from __future__ import annotations

import numpy as np

from DPOScoringLib.ct.ct_image import Geometry
from DPOScoringLib.lobes.fissures import height_map
from DPOScoringLib.lobes.lingula_split import split_lingula

GEOMETRY = Geometry(size=(50, 40, 30), spacing=(0.8, 0.9, 1.5), origin=(-20.0, -10.0, -30.0),
                    direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
SHAPE = (30, 40, 50)  # (k, j, i)


def plane_z(x, y):
    return -5.0 + 0.15 * x - 0.1 * y


def plane_points():
    xs, ys = np.meshgrid([-20.0, 0.0, 19.0], [-10.0, 10.0, 25.0])
    return np.stack([xs.ravel(), ys.ravel(), plane_z(xs, ys).ravel()], axis=1)


def test_height_map_is_the_surface_in_slice_units_for_every_column():
    heights = height_map(plane_points(), GEOMETRY, SHAPE)
    j, i = np.mgrid[:SHAPE[1], :SHAPE[2]]
    x = GEOMETRY.origin[0] + i * GEOMETRY.spacing[0]
    y = GEOMETRY.origin[1] + j * GEOMETRY.spacing[1]
    expected = (plane_z(x, y) - GEOMETRY.origin[2]) / GEOMETRY.spacing[2]
    assert heights.shape == SHAPE[1:]
    assert np.allclose(heights, expected, atol=1e-3)


def test_split_lingula_takes_the_upper_lobe_below_the_surface():
    lobes = np.zeros(SHAPE, dtype=np.uint8)
    lobes[:, :, :25] = 4   # left upper lobe, lingula included
    lobes[:, :, 25:] = 6   # left lower lobe
    split, used = split_lingula(lobes, GEOMETRY, plane_points())
    k, j, i = np.mgrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    z = GEOMETRY.origin[2] + k * GEOMETRY.spacing[2]
    below = z < plane_z(GEOMETRY.origin[0] + i * GEOMETRY.spacing[0], GEOMETRY.origin[1] + j * GEOMETRY.spacing[1])
    expected = np.where((lobes == 4) & below, 5, lobes)
    near = np.abs(z - plane_z(GEOMETRY.origin[0] + i * GEOMETRY.spacing[0],
                              GEOMETRY.origin[1] + j * GEOMETRY.spacing[1])) < 1e-2
    assert np.array_equal(split[~near], expected[~near])  # voxels on the plane itself may go either way
    assert (split == 5).sum() > 1000 and (split == 6).sum() == (lobes == 6).sum()
    assert np.array_equal(used, plane_points())
