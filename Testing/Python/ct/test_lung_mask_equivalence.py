"""The lung mask's fast paths give the same pixels as plain reference implementations.

The body's hull (row by row), the hole filling (all slices labelled in one image) and the
upsampling (one broadcast copy) were rewritten for speed; each is checked here against an
independent, slow version: scikit-image's ``convex_hull_image``, a per-slice loop over
``scipy.ndimage.label``, ``np.repeat``. Whole masks before/after a change are compared on the
real CTs and phantom variants by ``benchmarks/lung_mask_regression.py`` (Docs/detection.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REAL_CT, require_real
from scipy import ndimage
from skimage.morphology import convex_hull_image

from DPOScoringLib.ct.body_mask import body_component, inside_hull
from DPOScoringLib.ct.ct_image import load_ct
from DPOScoringLib.ct.lung_mask import _fill_holes_per_slice, _upsample


def reference_hulls(body: np.ndarray) -> np.ndarray:
    hull = np.zeros(body.shape, dtype=bool)
    for k in range(body.shape[0]):
        if body[k].sum() >= 3:
            hull[k] = convex_hull_image(body[k])
    return hull


def reference_fill(mask: np.ndarray, max_hole: int, big_hole: int) -> np.ndarray:
    """Slice by slice from the base: holes (background not touching the slice border) up to
    ``max_hole`` pixels are filled, unless >= ``big_hole`` and >= 30 % of it lies over
    non-lung in the (filled) slice below."""
    filled = mask.copy()
    for k in range(mask.shape[0]):
        labels, n = ndimage.label(~mask[k])
        border = set(labels[0]) | set(labels[-1]) | set(labels[:, 0]) | set(labels[:, -1])
        for label in range(1, n + 1):
            hole = labels == label
            size = int(hole.sum())
            if label in border or size > max_hole:
                continue
            if size >= big_hole and k > 0 and (hole & ~filled[k - 1]).sum() >= 0.3 * size:
                continue
            filled[k] |= hole
    return filled


def random_blobs(rng, shape, smooth):
    return ndimage.gaussian_filter(rng.random(shape), smooth) > rng.uniform(0.47, 0.53)


@pytest.mark.parametrize("seed", range(4))
def test_hull_row_by_row_equals_scikit_image(seed):
    rng = np.random.default_rng(seed)
    body = rng.random((30, 48, 61)) < rng.uniform(0.002, 0.03)
    body[::5, rng.integers(0, 48), :] = True  # rows along the grid: edges of the hull with a_c = 0
    body[1::7, :, rng.integers(0, 61)] = True  # and columns
    body[2] = False
    body[3, 10, 10] = body[3, 10, 11] = True  # two pixels: below the 3 a hull needs
    body[4] = False
    body[4, 20, 20] = True  # one pixel: a diamond
    body[4, 21, 21] = body[4, 22, 22] = True
    np.testing.assert_array_equal(inside_hull(body), reference_hulls(body))


def test_hull_row_by_row_equals_scikit_image_on_a_real_body():
    ct = load_ct(require_real(REAL_CT))
    body = body_component(ct.array[::6, ::2, ::2])  # every 6th slice of the real thorax, at the hull's grid
    hull = inside_hull(body)
    assert hull.sum() > body.sum() > 0
    np.testing.assert_array_equal(hull, reference_hulls(body))


@pytest.mark.parametrize("seed", range(6))
def test_holes_filled_in_one_image_equal_a_slice_by_slice_loop(seed):
    rng = np.random.default_rng(seed)
    mask = random_blobs(rng, (10, 50, 64), 1.5)
    mask[3:7, 10:40, 10:50] = True
    mask[4:6, 20:32, 20:38] = False  # a big hole over an open one below, and over lung
    mask[6, 20:30, 22:40] = False
    mask[5, 12:14, 12:14] = False  # a small hole: always filled
    max_hole, big_hole = int(rng.integers(20, 400)), int(rng.integers(5, 120))
    expected = reference_fill(mask, max_hole, big_hole)
    assert (expected != mask).any()  # the case fills something
    np.testing.assert_array_equal(_fill_holes_per_slice(mask, max_hole, big_hole), expected)


def test_upsample_equals_repeat():
    coarse = np.random.default_rng(0).integers(0, 9, (5, 6, 7), dtype=np.uint8)
    expected = np.repeat(np.repeat(np.repeat(coarse, 2, axis=0), 1, axis=1), 2, axis=2)[:9, :6, :13]
    np.testing.assert_array_equal(_upsample(coarse, (2, 1, 2), (9, 6, 13)), expected)
