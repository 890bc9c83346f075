"""Lobe files read through SimpleITK array views keep each image alive while its view is read.

``sitk.GetArrayViewFromImage`` returns a view of the image's buffer that does not keep the image
alive: a view of a temporary image reads freed memory, which holds whatever was allocated there
next. That made ``test_lobes.py::test_import_totalsegmentator_folder`` fail only after other tests
(24 voxels of the first row read as right upper lobe from the allocator's bookkeeping). Whether
freed memory is reused depends on the allocator's history, so the test below makes it certain
with a fake (named as such): the view is a copy that is overwritten the moment its image is freed,
as reused memory would be.
"""

from __future__ import annotations

import weakref

import numpy as np
import pytest
import SimpleITK as sitk

from DPOScoringLib.lobes.lobe_files import TOTALSEGMENTATOR_FILES, read_lobe_source

GARBAGE = 77  # what "reused memory" reads as once the image is gone


@pytest.fixture
def views_die_with_their_image(monkeypatch):
    """Fake of the world: every array view turns to garbage when its image is freed."""
    def view(image):
        array = sitk.GetArrayFromImage(image)
        weakref.finalize(image, array.fill, GARBAGE)
        return array

    monkeypatch.setattr(sitk, "GetArrayViewFromImage", view)


def structures() -> dict[str, np.ndarray]:
    """One small box per TotalSegmentator lobe file, side by side along i (0 elsewhere)."""
    masks = {}
    for n, stem in enumerate(TOTALSEGMENTATOR_FILES):
        mask = np.zeros((6, 5, 20), dtype=np.uint8)
        mask[1:5, 1:4, 4 * n:4 * n + 3] = 1
        masks[stem] = mask
    return masks


def test_the_fake_turns_a_view_of_a_freed_image_to_garbage(views_die_with_their_image):
    view = sitk.GetArrayViewFromImage(sitk.GetImageFromArray(np.zeros((2, 2, 2), dtype=np.uint8)))
    assert (view == GARBAGE).all()


def test_totalsegmentator_folder_reads_each_file_while_it_is_alive(tmp_path, views_die_with_their_image):
    masks = structures()
    for stem, mask in masks.items():
        sitk.WriteImage(sitk.GetImageFromArray(mask), str(tmp_path / f"{stem}.nii.gz"))
    image, mapping, _ = read_lobe_source(tmp_path)
    combined = sitk.GetArrayFromImage(image)
    for value, code in mapping.items():
        stem = next(s for s, c in TOTALSEGMENTATOR_FILES.items() if c == code)
        assert np.array_equal(combined == value, masks[stem] == 1), code
    assert not (combined == GARBAGE).any()
