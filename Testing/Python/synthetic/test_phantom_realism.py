"""The test data itself (issue 9): the realistic phantom variants hold what they claim, checked
on the written images against the phantom's own truth, never against a detector."""

from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from DPOScoringLib.synthetic.phantom import PhantomSpec


def read(paths):
    ct = sitk.ReadImage(str(paths["ct"]))
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(paths["lungs"])))
    truth = json.loads(paths["truth"].read_text(encoding="utf-8"))
    return ct, sitk.GetArrayFromImage(ct).astype(np.float32), lungs, truth


def voxel_of(ct, lps):
    return tuple(np.round(ct.TransformPhysicalPointToContinuousIndex([float(v) for v in lps])).astype(int)[::-1])


def test_defaults_keep_the_quick_phantom():
    spec = PhantomSpec()
    assert spec.placement == "legacy" and spec.fibrosis == 0 and spec.outside_air == "ideal"
    assert spec.padding_hu is None and not spec.table and spec.posture == "supine" and spec.crop is None
    preset = PhantomSpec.fibrosis_preset((0.8, 0.8, 2.0), seed=3)
    assert preset.placement == "paper" and preset.fibrosis > 0 and preset.table and preset.ribs_touch_lung


def test_fibrosis_variant_anatomy_and_scanner(phantom_variant):
    ct, hu, lungs, truth = read(phantom_variant("supine-fibrosis"))
    spacing = np.array(ct.GetSpacing())
    in_plane = np.zeros((1, 3, 3), bool)
    in_plane[0] = True
    # ribs lie on the lung: dense bone in the one-voxel shell around the lungs
    shell = ndimage.binary_dilation(lungs > 0, in_plane) & (lungs == 0)
    assert (shell & (hu >= 500)).sum() > 500
    # the lungs are fused at an anterior junction line thinner than 2 mm
    near_right = ndimage.binary_dilation(lungs == 1, in_plane, iterations=int(np.ceil(2.0 / spacing[0])))
    assert (near_right & (lungs == 2)).any()
    # outside air: rows in front of the body, inside the scan circle
    x = ct.GetOrigin()[0] + np.arange(hu.shape[2]) * spacing[0]
    y = ct.GetOrigin()[1] + np.arange(hu.shape[1]) * spacing[1]
    centre = truth["scanner"]["scan_circle"]["centre_xy"]
    radius = truth["scanner"]["scan_circle"]["radius_mm"]
    circle = (x[None, :] - centre[0]) ** 2 + (y[:, None] - centre[1]) ** 2 < (radius - 2) ** 2
    front = circle & (y[:, None] < -truth["spec"]["body_mm"][1] - 4)
    air = hu[:, front]
    assert -1000 < float(air.mean()) < -950 and 35 < float(air.std()) < 75
    beyond = (x[None, :] - centre[0]) ** 2 + (y[:, None] - centre[1]) ** 2 > (radius + 1) ** 2
    assert beyond.any() and (hu[:, beyond] == truth["scanner"]["padding_hu"]).all()
    # a table behind the body: in the middle slice, every column near the midline meets its shell
    behind = y > truth["spec"]["body_mm"][1] + 2
    middle = hu[hu.shape[0] // 2][behind][:, np.abs(x) < 50]
    assert (middle >= 0).any(axis=0).mean() > 0.95 and (middle < -800).any(axis=0).mean() > 0.95
    # subpleural basal fibrosis: dense lung at the bases, much less at the apices (vessels only)
    n = hu.shape[0]
    base = (hu[: n // 4][lungs[: n // 4] > 0] > -500).mean()
    apex = (hu[int(0.8 * n):][lungs[int(0.8 * n):] > 0] > -500).mean()
    assert base > 0.1 and base > 4 * apex, (base, apex)
    # honeycomb cysts: air inside, 3-10 mm, thick walls
    cysts = truth["honeycomb_cysts"]
    assert len(cysts) >= 20
    assert all(3.0 <= c["diameter_mm"] <= 10.0 and 1.0 <= c["wall_mm"] <= 2.0 for c in cysts)
    assert np.median([hu[voxel_of(ct, c["lps"])] for c in cysts]) < -700


def test_healthy_lung_has_a_dependent_gradient(phantom_variant):
    ct, hu, lungs, truth = read(phantom_variant("healthy-padding-3024"))
    k = int(0.7 * hu.shape[0])
    rows = np.nonzero((lungs[k] == 1).any(axis=1))[0]
    anterior = hu[k][rows[: len(rows) // 4]][lungs[k][rows[: len(rows) // 4]] == 1]
    posterior = hu[k][rows[-len(rows) // 4:]][lungs[k][rows[-len(rows) // 4:]] == 1]
    assert -880 < anterior.mean() < posterior.mean() - 15 < -815  # supine: posterior is dependent
    assert (hu == -3024).sum() > 0


def test_paper_placement_of_pos(phantom_variant):
    truth = read(phantom_variant("supine-fibrosis"))[3]
    pos = [f for f in truth["findings"] if f["kind"] == "nodular"]
    assert all("peak_hu" in f for f in truth["findings"])
    abutting = [f for f in pos if f["placement"] == "abutting"]
    assert all(f["gap_to_pleura_mm"] == 0.0 for f in abutting)
    assert 0.3 <= len(abutting) / len(pos) <= 0.5
    lower = sum(f["lobe"] in ("RLL", "LLL") for f in pos) / len(pos)
    assert lower > 0.5  # basal predominance, as in the paper (59 % lower lobes)
    cysts = [np.array(c["lps"]) for c in truth["honeycomb_cysts"]]
    for f in pos:
        if f["beside_cyst"]:
            distance = min(np.linalg.norm(np.array(f["lps"]) - c) for c in cysts)
            assert distance < f["diameter_mm"] / 2 + 5.0 + 2.0 + 0.3
    clusters = {}
    for f in pos:
        if f["cluster"]:
            clusters.setdefault(f["cluster"], []).append(np.array(f["lps"]))
    assert clusters and all(len(m) >= 2 for m in clusters.values())
    for f in pos:
        if "cluster_gap_mm" in f:
            assert 1.0 <= f["cluster_gap_mm"] <= 2.5


def test_prone_variant_header_is_truthful(phantom_variant):
    ct, hu, lungs, truth = read(phantom_variant("prone"))
    assert np.allclose(ct.GetDirection(), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    for f in (f for f in truth["findings"] if f["kind"] == "large_calcified"):
        assert hu[voxel_of(ct, f["lps"])] > 250, f["id"]  # the truth's LPS points at the nodule
    right = np.argwhere(lungs == 1)[:, 2].mean()
    left = np.argwhere(lungs == 2)[:, 2].mean()
    assert right > left  # turned over: the right lung is on the image's right (higher column)
    spine_rows = np.argwhere(hu[hu.shape[0] // 2] > 200)[:, 0]
    assert np.median(spine_rows) < hu.shape[1] / 2  # the back (spine) is up, the table below


def test_crop_variant_cuts_one_lung_at_the_border(phantom_variant):
    ct, hu, lungs, truth = read(phantom_variant("crop-right"))
    assert (lungs == 1).sum() > 0 and (lungs == 2).sum() == 0
    assert (lungs[:, :, 0] == 1).any()  # cut at the image border
    assert truth["scanner"]["crop_x_mm"][1] - truth["scanner"]["crop_x_mm"][0] < 0.8 * truth["spec"]["fov_mm"][0]
    centre_x = ct.TransformContinuousIndexToPhysicalPoint([hu.shape[2] / 2, 0, 0])[0]
    assert centre_x > -60  # off-centre patient: the image centre is not far to the right of the isocentre


def test_no_lung_variant(phantom_variant):
    ct, hu, lungs, truth = read(phantom_variant("no-lungs"))
    assert lungs.sum() == 0 and truth["findings"] == [] and truth["gas_inside_body_ml"] > 50
    assert (hu == -3024).sum() > 0
