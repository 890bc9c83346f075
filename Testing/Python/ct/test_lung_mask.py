"""The weight-free lung mask: right/left lungs, airways out, holes filled; phantom and real CT."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REAL_CROP, REAL_CT, require_real

from DPOScoringLib.ct.ct_image import load_ct
from DPOScoringLib.ct.lung_mask import segment_lungs


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_phantom_lungs_match_truth_and_exclude_airways(phantom_1mm):
    ct = load_ct(phantom_1mm.paths["ct"])
    mask = segment_lungs(ct.array, ct.spacing, ct.image.GetOrigin()[0])
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_1mm.paths["lungs"])))
    assert dice(mask.labels == 1, truth == 1) >= 0.98
    assert dice(mask.labels == 2, truth == 2) >= 0.98
    assert mask.airways.sum() > 0 and mask.carina_slice is not None
    assert not (mask.airways & (mask.labels > 0)).any()
    # holes filled: every finding away from the pleura lies inside its lung
    for finding in (f for f in phantom_1mm.truth["findings"] if f["gap_to_pleura_mm"] >= 3.0):
        i, j, k = np.round(ct.geometry.lps_to_ijk(finding["lps"])).astype(int)
        assert mask.labels[k, j, i] == (1 if finding["lung"] == "right" else 2), finding["id"]


def test_real_ct_lungs_are_plausible_and_left_is_plus_x():
    ct = load_ct(require_real(REAL_CT))
    mask = segment_lungs(ct.array, ct.spacing, ct.image.GetOrigin()[0])
    assert 1500 < mask.volumes_ml["right"] < 4500 and 1200 < mask.volumes_ml["left"] < 4000
    assert mask.volumes_ml["right"] > mask.volumes_ml["left"]  # as usual, and as in this patient
    columns = np.arange(ct.shape[2])
    x_right = ct.ijk_to_lps([columns[(mask.labels == 1).any(axis=(0, 1))].mean(), 0, 0])[0]
    x_left = ct.ijk_to_lps([columns[(mask.labels == 2).any(axis=(0, 1))].mean(), 0, 0])[0]
    assert x_left > 0 > x_right  # patient left is +x in LPS
    assert mask.carina_slice is not None and mask.airways.sum() * np.prod(ct.spacing) > 15000  # > 15 ml
    assert not (mask.airways & (mask.labels > 0)).any()
    assert not any("touch" in w for w in mask.warnings)


def test_real_crop_with_one_lung_is_the_right_lung():
    ct = load_ct(require_real(REAL_CROP))
    mask = segment_lungs(ct.array, ct.spacing, ct.image.GetOrigin()[0])
    assert mask.volumes_ml["right"] > 500 and mask.volumes_ml["left"] == 0
    assert any("only one lung" in w for w in mask.warnings)


def test_no_air_inside_body_raises():
    hu = np.full((6, 20, 20), 40, dtype=np.int16)
    hu[:, 0, :] = -1000
    with pytest.raises(ValueError, match="no lungs in the field of view"):
        segment_lungs(hu, (1.0, 1.0, 1.0))
