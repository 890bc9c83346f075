"""Where a library function replaced a hand-written one (issue 13), the result on a scene whose
answer is known by construction: scikit-image's clear_border (air connected to the slice edge,
holes of the lung) and ellipsoid (the airway margin)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import ellipsoid

from DPOScoringLib.ct import airways, lung_mask


def _disc(shape, centre, radius):
    j, i = np.ogrid[:shape[0], :shape[1]]
    return (j - centre[0]) ** 2 + (i - centre[1]) ** 2 <= radius ** 2


def test_body_in_slice_is_everything_but_the_air_touching_the_edge():
    hu = np.full((60, 60), -1000.0)                 # outside air, touching every edge
    body = _disc(hu.shape, (30, 30), 25)
    hu[body] = 40.0
    lung = _disc(hu.shape, (30, 24), 8)
    hu[lung] = -850.0                               # air inside the body: a lung, not outside air
    found = airways._body_in_slice(hu)
    assert np.array_equal(found, body)


def test_holes_filled_per_slice_are_the_enclosed_ones_only():
    mask = np.zeros((1, 40, 40), dtype=bool)
    mask[0, 5:35, 5:35] = True
    mask[0, 15:18, 15:18] = False                   # a 9-voxel hole (a vessel): filled
    mask[0, 20:23, 0:12] = False                    # a notch open to the slice edge: not a hole
    filled = lung_mask._fill_holes_per_slice(mask, max_hole_voxels=20, big_hole_voxels=100)
    expected = mask.copy()
    expected[0, 15:18, 15:18] = True
    assert np.array_equal(filled, expected)
    small_limit = lung_mask._fill_holes_per_slice(mask, max_hole_voxels=8, big_hole_voxels=100)
    assert np.array_equal(small_limit, mask)        # 9 voxels > 8: left open


def test_the_airway_margin_is_the_ellipsoid_of_its_radii():
    radii = (1, 3, 2)
    point = np.zeros((9, 11, 11), dtype=bool)
    point[4, 5, 5] = True
    grown = ndimage.binary_dilation(point, structure=ellipsoid(*radii))
    k, j, i = np.ogrid[:9, :11, :11]
    expected = ((k - 4) / 1) ** 2 + ((j - 5) / 3) ** 2 + ((i - 5) / 2) ** 2 <= 1.0
    assert np.array_equal(grown, expected)
