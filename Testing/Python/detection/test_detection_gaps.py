"""Dendriform needs branching over contiguous slices (spec section 3): across a slice gap of a
DICOM series it cannot be judged, and the candidate is shown as nodular with a warning."""

import numpy as np
import SimpleITK as sitk
from test_ct_loading import write_dicom_series

from DPOScoringLib.ct.ct_image import load_ct
from DPOScoringLib.detection.pipeline import detect_on_ct

SERIES_UID = "1.2.826.0.1.3680043.2.1125.471"


def branching_tree_ct() -> sitk.Image:
    """Lung at -850 HU with a calcified tree (900 HU, about 1.6 mm thick): a trunk over 18 slices
    and two side branches leaving it at 45 degrees."""
    hu = np.full((24, 48, 48), -850, dtype=np.int16)
    hu[:, :2] = hu[:, -2:] = 40  # a rim of soft tissue, so that there is something besides lung
    for k in range(3, 21):
        hu[k, 23:25, 23:25] = 900
    for t in range(9):
        hu[8 + t, 23:25, 24 + t:26 + t] = 900
        hu[12 + t, 23:25, 22 - t:24 - t] = 900
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((0.8, 0.8, 1.0))
    return image


def detect(folder):
    ct = load_ct(folder)
    lungs = np.zeros(ct.array.shape, dtype=np.uint8)
    lungs[:, 3:-3, 3:-3] = 1
    return ct, detect_on_ct(ct, lungs, None, np.zeros(ct.array.shape, dtype=bool), contrast="off")


def test_tree_on_contiguous_slices_is_dendriform(tmp_path):
    folder = tmp_path / "series"
    write_dicom_series(folder, branching_tree_ct(), SERIES_UID)
    ct, run = detect(folder)
    assert ct.contiguous
    assert [c.kind for c in run.result.candidates] == ["dendriform"]
    assert not any(w.startswith("slice gaps:") for w in run.warnings)


def test_tree_across_a_slice_gap_is_not_called_dendriform(tmp_path):
    folder = tmp_path / "series"
    write_dicom_series(folder, branching_tree_ct(), SERIES_UID)
    for name in sorted(folder.iterdir())[11:13]:  # two files missing in the middle of the trunk
        name.unlink()
    ct, run = detect(folder)
    assert not ct.contiguous
    assert "dendriform" not in [c.kind for c in run.result.candidates]
    warning = next(w for w in run.warnings if w.startswith("slice gaps:"))
    assert "cannot be judged" in warning and run.result.candidates[0].id in warning
