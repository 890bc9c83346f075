"""Bad CT inputs (issue 12, point 1): each is refused with exit 2, one line naming the file and
the problem, no traceback, and nothing written anywhere (see bad_input_harness.py).

The damaged files are made here from a small valid CT by the operations that damage real files
(cutting a download short, renaming, writing a wrong spacing), never by the code under test.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct

import numpy as np
import pytest
import SimpleITK as sitk
from bad_input_harness import refused, refused_subprocess
from test_ct_loading import small_ct, write_dicom_series


def save(image, path, compress=False):
    sitk.WriteImage(image, str(path), useCompression=compress)
    return path


def cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def float_ct(value_at_centre):
    array = sitk.GetArrayFromImage(small_ct()).astype(np.float32)
    array[6, 20, 24] = value_at_centre
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.8, 1.0))
    return image


def with_spacing(spacing, shape=(12, 40, 48)):
    return small_ct(spacing=spacing, shape=shape)


def make_truncated_nii_gz(folder):
    return cut_in_half(save(small_ct(), folder / "ct.nii.gz"))


def make_truncated_nii(folder):
    return cut_in_half(save(small_ct(), folder / "ct.nii"))


def make_truncated_nrrd(folder):
    return cut_in_half(save(small_ct(), folder / "ct.nrrd", compress=True))


def make_truncated_raw_nrrd(folder):
    return cut_in_half(save(small_ct(), folder / "ct.nrrd"))


def make_truncated_mha(folder):
    return cut_in_half(save(small_ct(), folder / "ct.mha", compress=True))


def make_truncated_detached_nhdr(folder):
    path = save(small_ct(), folder / "ct.nhdr")
    cut_in_half(folder / "ct.raw")
    return path


def make_missing_detached_data(folder):
    path = save(small_ct(), folder / "ct.mhd")
    next(p for p in folder.iterdir() if p.suffix in (".raw", ".zraw")).unlink()
    return path


def make_png_renamed(folder):
    path = folder / "ct.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((10, 10), np.uint8)), str(folder / "x.png"))
    (folder / "x.png").rename(path)
    return path


def make_gzip_named_nii(folder):
    save(small_ct(), folder / "real.nii.gz").rename(folder / "ct.nii")
    return folder / "ct.nii"


def make_gzip_of_text(folder):
    path = folder / "ct.nii.gz"
    path.write_bytes(gzip.compress(b"not an image at all\n" * 30))
    return path


def make_empty(folder):
    path = folder / "ct.nrrd"
    path.write_bytes(b"")
    return path


def make_text(folder):
    path = folder / "ct.nrrd"
    path.write_text("patient list, not an image\n")
    return path


def make_single_dicom_file(folder):
    series = folder / "series"
    write_dicom_series(series, small_ct(shape=(3, 40, 48)), "1.2.826.0.1.3680043.2.1125.901")
    single = sorted(series.iterdir())[0]
    shutil.move(str(single), folder / "slice.dcm")
    shutil.rmtree(series)
    return folder / "slice.dcm"


def make_huge_spacing(folder):
    return save(with_spacing((500.0, 500.0, 1000.0)), folder / "ct.nrrd")


def make_tiny_spacing(folder):
    return save(with_spacing((0.001, 0.001, 0.001)), folder / "ct.nii.gz")


def make_thick_slab(folder):
    return save(with_spacing((0.8, 0.8, 20.0)), folder / "ct.mha")


def make_field_of_view_too_large(folder):
    return save(with_spacing((1.0, 1.0, 2.0), shape=(3, 20, 1100)), folder / "ct.nrrd")


def make_zero_spacing_nifti(folder):
    path = save(small_ct(), folder / "ct.nii.gz")
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[76 + 12:76 + 16] = struct.pack("<f", 0.0)  # pixdim[3] = 0
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


def make_nan_voxel(folder):
    return save(float_ct(np.nan), folder / "ct.nrrd")


def make_inf_voxel(folder):
    return save(float_ct(np.inf), folder / "ct.mha")


def make_two_d(folder):
    return save(small_ct()[:, :, 3], folder / "ct.nrrd")


def make_colour(folder):
    return save(sitk.Compose([sitk.Cast(small_ct(), sitk.sitkInt16)] * 3), folder / "ct.mha")


def make_unrescaled(folder):
    return save(sitk.Cast(small_ct() + 1024, sitk.sitkUInt16), folder / "ct.nrrd")


def make_no_air(folder):
    return save(sitk.Cast(small_ct() * 0 + 300, sitk.sitkInt16), folder / "ct.nrrd")


def make_no_spacing_nrrd(folder):
    path = folder / "ct.nrrd"
    data = np.full((4, 6, 6), -1000, dtype=np.int16).tobytes()
    header = "NRRD0004\ntype: short\ndimension: 3\nsizes: 6 6 4\nendian: little\nencoding: raw\n\n"
    path.write_bytes(header.encode() + data)
    return path


def make_mr_series(folder):
    write_dicom_series(folder / "mr", small_ct(), "1.2.826.0.1.3680043.2.1125.902", modality="MR")
    return folder / "mr"


def make_series_with_a_cut_file(folder):
    series = folder / "series"
    write_dicom_series(series, small_ct(), "1.2.826.0.1.3680043.2.1125.904")
    cut = sorted(series.iterdir())[5]
    cut.write_bytes(cut.read_bytes()[:-1000])  # a copy interrupted in the pixel data
    return series


def make_empty_folder(folder):
    (folder / "empty").mkdir()
    return folder / "empty"


def make_absent(folder):
    return folder / "absent.nii.gz"


CASES = [
    # (name, maker, phrases the one line must hold besides the file's name)
    ("truncated .nii.gz (download cut short)", make_truncated_nii_gz, ["is truncated"]),
    ("truncated .nii", make_truncated_nii, ["is truncated", "header declares"]),
    ("truncated gzip NRRD", make_truncated_nrrd, ["is truncated"]),
    ("truncated raw NRRD", make_truncated_raw_nrrd, ["is truncated", "header declares"]),
    ("truncated compressed MHA", make_truncated_mha, ["is truncated"]),
    ("detached NRRD with cut data file", make_truncated_detached_nhdr, ["is truncated"]),
    ("MHD whose data file is missing", make_missing_detached_data, ["data file", "does not exist"]),
    ("PNG renamed .nii.gz", make_png_renamed, ["is a PNG picture, not a CT volume"]),
    ("gzip NIfTI named .nii", make_gzip_named_nii, ["gzip-compressed NIfTI named without .gz", "rename"]),
    ("gzip of text named .nii.gz", make_gzip_of_text, ["holds no NIfTI image"]),
    ("empty file", make_empty, ["is empty"]),
    ("text named .nrrd", make_text, ["not an image this tool can read"]),
    ("one DICOM file instead of the folder", make_single_dicom_file, ["single DICOM file", "folder"]),
    ("spacing 500x500x1000 mm", make_huge_spacing, ["in-plane voxel spacing 500 x 500 mm", "outside 0.1-10 mm"]),
    ("spacing 0.001 mm", make_tiny_spacing, ["in-plane voxel spacing 0.001 x 0.001 mm"]),
    ("slices 20 mm apart", make_thick_slab, ["slice spacing 20 mm is outside 0.1-15 mm"]),
    ("field of view 1100 mm", make_field_of_view_too_large, ["field of view 1100", "larger than any human body"]),
    ("zero spacing in NIfTI", make_zero_spacing_nifti, ["voxel spacing"]),
    ("a NaN voxel", make_nan_voxel, ["1 voxel(s) that are not numbers", "ijk (24, 20, 6)"]),
    ("an infinite voxel", make_inf_voxel, ["not numbers (NaN or infinite)"]),
    ("2-D image", make_two_d, ["is 2-D"]),
    ("colour image", make_colour, ["3 values per voxel"]),
    ("un-rescaled values", make_unrescaled, ["un-rescaled", "RescaleSlope"]),
    ("no air at all", make_no_air, ["does not look like a chest CT"]),
    ("NRRD without spacing", make_no_spacing_nrrd, ["declares no voxel spacing"]),
    ("DICOM series of an MR", make_mr_series, ["DICOM modality is MR, not CT"]),
    ("DICOM series with a file cut short", make_series_with_a_cut_file,
     ["904_005.dcm cannot be read (cut short or damaged)"]),
    ("folder without DICOM", make_empty_folder, ["contains no DICOM series"]),
    ("missing file", make_absent, ["no such file"]),
]


@pytest.mark.parametrize("name,make,phrases", CASES, ids=[c[0] for c in CASES])
def test_bad_ct_is_refused_by_detect(tmp_path, monkeypatch, name, make, phrases):
    sandbox = tmp_path / "case"
    sandbox.mkdir()
    ct = make(sandbox)
    line = refused(sandbox, ["detect", ct, "--out", sandbox / "c.json", "--quiet"], phrases, monkeypatch)
    assert str(ct) in line, f"the message must name the file: {line}"


@pytest.mark.parametrize("command", ["run", "lobes"])
def test_truncated_ct_is_refused_by_run_and_lobes(tmp_path, monkeypatch, command):
    sandbox = tmp_path / "case"
    sandbox.mkdir()
    ct = make_truncated_nii_gz(sandbox)
    out = sandbox / ("bundle" if command == "run" else "lobes.nrrd")
    refused(sandbox, [command, ct, "--out", out, "--quiet"], [str(ct), "is truncated"], monkeypatch)


def test_dicom_series_with_two_slices_at_one_position_is_refused(tmp_path, monkeypatch):
    sandbox = tmp_path / "case"
    series = sandbox / "series"
    write_dicom_series(series, small_ct(), "1.2.826.0.1.3680043.2.1125.903")
    files = sorted(series.iterdir())
    # a second acquisition of slice 4 filed into the same series (a different SOP instance)
    shutil.copy(files[4], series / "zz_duplicate.dcm")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(series / "zz_duplicate.dcm"))
    image = reader.Execute()
    for key in reader.GetMetaDataKeys():
        image.SetMetaData(key, reader.GetMetaData(key))
    image.SetMetaData("0008|0018", "1.2.826.0.1.3680043.2.1125.903.99")
    image.SetMetaData("0020|0013", "99")
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(series / "zz_duplicate.dcm"))
    writer.Execute(image)
    refused(sandbox, ["detect", series, "--out", sandbox / "c.json", "--quiet"],
            [str(series), "at the same position"], monkeypatch)


@pytest.mark.parametrize("make,phrases", [
    (make_truncated_nii_gz, ["is truncated"]),
    (make_png_renamed, ["is a PNG picture"]),
    (make_huge_spacing, ["in-plane voxel spacing"]),
])
def test_refusals_through_the_real_entry_point(tmp_path, make, phrases):
    """The same refusals in a new process: what a user's shell sees."""
    sandbox = tmp_path / "case"
    sandbox.mkdir()
    ct = make(sandbox)
    refused_subprocess(sandbox, ["run", ct, "--out", sandbox / "bundle"], [str(ct), *phrases])


def test_harness_sees_a_file_left_behind(tmp_path, monkeypatch):
    """The harness itself: a refusal that leaves a file is caught (its truth is the file system)."""
    sandbox = tmp_path / "case"
    sandbox.mkdir()
    ct = make_absent(sandbox)
    from DPOScoringLib.cli import main as cli

    original = cli._cmd_detect

    def leaves_a_file(args):
        (sandbox / "c.json.part").write_text("half")
        return original(args)

    monkeypatch.setattr(cli, "_cmd_detect", leaves_a_file)  # main() builds its parser after this
    with pytest.raises(AssertionError, match="files changed by a refused command"):
        refused(sandbox, ["detect", ct, "--out", sandbox / "c.json", "--quiet"], ["no such file"], monkeypatch)
    assert os.path.exists(sandbox / "c.json.part")
