"""Loading CTs in every supported format, and a clear error for every bad input."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REAL_CROP, require_real

from DPOScoringLib.common.errors import DPOInputError
from DPOScoringLib.ct.ct_image import load_ct


def small_ct(spacing=(0.8, 0.8, 1.0), shape=(12, 40, 48), direction=None) -> sitk.Image:
    rng = np.random.default_rng(0)
    array = np.full(shape, -1000, dtype=np.int16)
    array[:, 8:32, :] = 40  # a body cut by the field of view (a crop): its size says nothing
    array[:, 12:28, 12:22] = -850
    array[:, 12:28, 26:36] = -850
    array += rng.normal(0, 5, shape).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-19.0, -16.0, 0.0))
    if direction is not None:
        image.SetDirection(direction)
    return image


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii", ".mha"])
def test_loads_file_formats(tmp_path, suffix):
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(small_ct(), str(path))
    ct = load_ct(path)
    assert ct.shape == (12, 40, 48) and ct.array.dtype == np.int16
    assert ct.spacing == pytest.approx((0.8, 0.8, 1.0))
    assert len(ct.sha256) == 64 and ct.warnings == []


def write_dicom_series(folder, image, series_uid, modality="CT", study_uid="1.2.826.0.1.3680043.2.1125.1"):
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        slice_image = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in (("0008|0060", modality), ("0020|000e", series_uid), ("0020|000d", study_uid),
                           ("0020|0032", "\\".join(f"{p:f}" for p in position)),
                           ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0020|0013", str(k + 1)),
                           ("0018|0050", f"{image.GetSpacing()[2]:f}"),
                           ("0028|1052", "0"), ("0028|1053", "1"),
                           ("0008|0018", f"{series_uid}.{k + 1}")):
            slice_image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid[-3:]}_{k:03d}.dcm"))
        writer.Execute(slice_image)


def rewrite_dicom_tag(folder, tag, value_of):
    """Set ``tag`` in every file of a series to ``value_of(k, path)`` (k: the file's rank by name)."""
    for k, path in enumerate(sorted(folder.iterdir())):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        image = reader.Execute()
        for key in reader.GetMetaDataKeys():
            image.SetMetaData(key, reader.GetMetaData(key))
        value = value_of(k, path)
        if value is not None:
            image.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(path))
        writer.Execute(image)


def test_dicom_folder_picks_the_series_with_most_slices(tmp_path):
    folder = tmp_path / "dicom"
    write_dicom_series(folder, small_ct(shape=(12, 40, 48)), "1.2.826.0.1.3680043.2.1125.101")
    write_dicom_series(folder, small_ct(shape=(5, 40, 48)), "1.2.826.0.1.3680043.2.1125.102")
    ct = load_ct(folder)
    assert ct.shape[0] == 12
    assert ct.dicom["series_instance_uid"] == "1.2.826.0.1.3680043.2.1125.101"
    assert ct.dicom["study_instance_uid"] == "1.2.826.0.1.3680043.2.1125.1"
    assert ct.provenance()["dicom"]["modality"] == "CT"
    chosen = load_ct(folder, series_uid="1.2.826.0.1.3680043.2.1125.102")
    assert chosen.shape[0] == 5
    with pytest.raises(DPOInputError, match="no series with SeriesInstanceUID 9.9"):
        load_ct(folder, series_uid="9.9")


def test_dicom_modality_not_ct_is_refused(tmp_path):
    folder = tmp_path / "mr"
    write_dicom_series(folder, small_ct(), "1.2.826.0.1.3680043.2.1125.201", modality="MR")
    with pytest.raises(DPOInputError, match="DICOM modality is MR, not CT"):
        load_ct(folder)


def test_folder_without_dicom(tmp_path):
    with pytest.raises(DPOInputError, match="contains no DICOM series"):
        load_ct(tmp_path)


def test_not_3d_is_refused(tmp_path):
    path = tmp_path / "slice.nrrd"
    sitk.WriteImage(small_ct()[:, :, 3], str(path))
    with pytest.raises(DPOInputError, match="is 2-D; a 3-D CT volume is needed"):
        load_ct(path)


def test_colour_image_is_refused(tmp_path):
    path = tmp_path / "rgb.mha"
    rgb = sitk.Compose([sitk.Cast(small_ct(), sitk.sitkInt16)] * 3)
    sitk.WriteImage(rgb, str(path))
    with pytest.raises(DPOInputError, match="3 values per voxel"):
        load_ct(path)


def test_missing_spacing_in_nrrd_header_is_refused(tmp_path):
    path = tmp_path / "nospacing.nrrd"
    data = np.full((4, 6, 6), -1000, dtype=np.int16).tobytes()
    header = "NRRD0004\ntype: short\ndimension: 3\nsizes: 6 6 4\nendian: little\nencoding: raw\n\n"
    path.write_bytes(header.encode() + data)
    with pytest.raises(DPOInputError, match="declares no voxel spacing"):
        load_ct(path)


def test_zero_spacing_in_nifti_is_refused(tmp_path):
    path = tmp_path / "zero.nii.gz"
    sitk.WriteImage(small_ct(), str(path))
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[76 + 12:76 + 16] = struct.pack("<f", 0.0)  # pixdim[3] = 0
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DPOInputError, match="voxel spacing"):
        load_ct(path)


def test_unrescaled_values_are_refused(tmp_path):
    path = tmp_path / "raw.nrrd"
    image = sitk.Cast(small_ct() + 1024, sitk.sitkUInt16)
    sitk.WriteImage(image, str(path))
    with pytest.raises(DPOInputError, match="look un-rescaled.*RescaleSlope"):
        load_ct(path)


def test_image_without_air_is_not_a_ct(tmp_path):
    path = tmp_path / "mr_like.nrrd"
    sitk.WriteImage(sitk.Cast(small_ct() * 0 + 300, sitk.sitkInt16), str(path))
    with pytest.raises(DPOInputError, match="does not look like a chest CT"):
        load_ct(path)


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "notes.nrrd"
    junk.write_text("this is not an image")
    with pytest.raises(DPOInputError, match="not an image this tool can read"):
        load_ct(junk)
    with pytest.raises(DPOInputError, match="no such file"):
        load_ct(tmp_path / "absent.nii.gz")


def test_thick_slices_warn(tmp_path):
    path = tmp_path / "thick.nrrd"
    sitk.WriteImage(small_ct(spacing=(0.8, 0.8, 2.5)), str(path))
    ct = load_ct(path)
    assert any("2.50 mm > 1.5 mm" in w and "POs < 4 mm may be missed" in w for w in ct.warnings)


def test_flipped_orientation_is_reordered_and_ijk_map_back(tmp_path):
    path = tmp_path / "flipped.nrrd"
    image = small_ct(direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
    sitk.WriteImage(image, str(path))
    ct = load_ct(path)
    assert np.allclose(ct.image.GetDirection(), np.eye(3).ravel())
    lps = ct.ijk_to_lps([3, 5, 2])
    assert np.allclose(image.TransformContinuousIndexToPhysicalPoint(ct.original.lps_to_ijk(lps)), lps)
    assert np.array_equal(ct.array[2, :, :], sitk.GetArrayFromImage(image)[2, ::-1, ::-1])


def test_real_crop_loads_with_thick_slice_warning():
    ct = load_ct(require_real(REAL_CROP))
    assert ct.shape == (64, 78, 57) and any("5.00 mm" in w for w in ct.warnings)


@pytest.mark.parametrize("make,phrase", [
    (lambda p: p.write_text("junk"), "not an image this tool can read"),
    (lambda p: sitk.WriteImage(sitk.Cast(small_ct() + 1024, sitk.sitkUInt16), str(p)), "un-rescaled"),
])
def test_cli_detect_bad_input_exits_2_without_traceback(tmp_path, make, phrase):
    path = tmp_path / "in.nrrd"
    make(path)
    command = [sys.executable, "-m", "DPOScoringLib", "detect", str(path), "--out", str(tmp_path / "c.json"),
               "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert result.returncode == 2
    assert phrase in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c.json").exists()


def test_input_checksum_matches_what_load_ct_records(tmp_path):
    """Batch resumes by comparing this checksum with the bundle's, for files and DICOM folders."""
    from DPOScoringLib.ct.ct_image import input_checksum

    folder = tmp_path / "dicom"
    write_dicom_series(folder, small_ct(shape=(12, 40, 48)), "1.2.826.0.1.3680043.2.1125.301")
    write_dicom_series(folder, small_ct(shape=(5, 40, 48)), "1.2.826.0.1.3680043.2.1125.302")
    assert input_checksum(folder) == load_ct(folder).sha256
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(small_ct(), str(path))
    assert input_checksum(path) == load_ct(path).sha256
    with pytest.raises(DPOInputError, match="no such file"):
        input_checksum(tmp_path / "absent.nrrd")


def test_plain_nifti_named_nii_gz_is_read_by_its_content(tmp_path):
    plain = tmp_path / "plain.nii"
    sitk.WriteImage(small_ct(), str(plain))
    misnamed = plain.rename(tmp_path / "misnamed.nii.gz")
    ct = load_ct(misnamed)
    assert ct.shape == (12, 40, 48)
    assert np.array_equal(ct.array, sitk.GetArrayFromImage(small_ct()))


def gap_series(tmp_path, remove=(5, 6), spacing=(0.8, 0.8, 1.0), thickness=None):
    folder = tmp_path / "gaps"
    write_dicom_series(folder, small_ct(spacing=spacing), "1.2.826.0.1.3680043.2.1125.401")
    files = sorted(folder.iterdir())
    for index in remove:
        files[index].unlink()
    if thickness is not None:
        rewrite_dicom_tag(folder, "0018|0050", lambda k, path: f"{thickness:f}")  # SliceThickness
    return folder


def test_dicom_series_with_missing_files_warns_and_keeps_true_positions(tmp_path, capfd):
    """Slices 5 and 6 of 12 (positions 5 and 6 mm) missing: a 3 mm step between 4 and 7 mm."""
    ct = load_ct(gap_series(tmp_path))
    assert ct.shape[0] == 10 and not ct.contiguous
    assert ct.spacing[2] == pytest.approx(1.0)  # the true step, not the reader's average 11/9 mm
    layout = ct.slices
    assert layout.positions_mm == pytest.approx([0, 1, 2, 3, 4, 7, 8, 9, 10, 11])
    assert layout.gaps == [{"after_slice": 4, "oriented_k": [4, 5], "from_mm": 4.0, "to_mm": 7.0, "gap_mm": 3.0,
                            "missing_slices": 2}]
    assert layout.runs() == [(0, 4), (5, 9)] and ct.contiguous_runs() == [(0, 4), (5, 9)]
    warning = next(w for w in ct.warnings if w.startswith("slice gaps"))
    assert "3.0 mm between slices at 4.0 and 7.0 mm (about 2 missing)" in warning and "dendriform" in warning
    provenance = ct.provenance()
    assert provenance["contiguous_slices"] is False and provenance["slices"]["gaps"][0]["gap_mm"] == 3.0
    assert "Non uniform sampling" not in capfd.readouterr().err  # ITK's raw text is replaced by the warning


def test_complete_dicom_series_is_contiguous(tmp_path):
    ct = load_ct(gap_series(tmp_path, remove=()))
    assert ct.contiguous and ct.slices.gaps == [] and ct.slices.non_uniform_steps_mm == []
    assert not any("slice" in w and "gap" in w for w in ct.warnings)
    assert ct.provenance()["contiguous_slices"] is True


def test_sequential_hrct_with_gaps_between_all_slices(tmp_path):
    """1 mm thick slices every 10 mm: uniform steps, but most of the lung is never imaged."""
    ct = load_ct(gap_series(tmp_path, remove=(), spacing=(0.8, 0.8, 10.0), thickness=1.0))
    assert not ct.contiguous and ct.slices.gaps_between_all_slices
    assert ct.slices.runs() == [(k, k) for k in range(12)]
    assert any("gaps between all slices: 1 mm thick slices every 10 mm" in w for w in ct.warnings)


def test_non_uniform_spacing_is_named(tmp_path):
    """Positions 0,1,2,...: one step of 1.3 mm (not a gap, not the usual step)."""
    folder = tmp_path / "nonuniform"
    image = small_ct()
    write_dicom_series(folder, image, "1.2.826.0.1.3680043.2.1125.402")

    def shifted(k, path):  # the upper half 0.3 mm higher: ImagePositionPatient (0020,0032)
        x, y, z = image.TransformIndexToPhysicalPoint((0, 0, k))
        return f"{x:f}\\{y:f}\\{z + 0.3:f}" if k >= 6 else None

    rewrite_dicom_tag(folder, "0020|0032", shifted)
    ct = load_ct(folder)
    assert ct.contiguous and ct.slices.non_uniform_steps_mm == pytest.approx([1.3])
    assert any("non-uniform slice spacing" in w and "1.30 mm" in w for w in ct.warnings)


def test_small_body_at_declared_spacing_warns(tmp_path):
    """A whole body 40 mm across: an image downsampled without updating its spacing. The same
    voxels labelled 5 mm (a 200 mm body) load without that warning."""
    array = np.full((10, 64, 64), -1000, dtype=np.int16)
    array[:, 12:52, 12:52] = 40
    array[:, 18:46, 16:30] = -850
    array[:, 18:46, 34:48] = -850
    for spacing, warned in (((1.0, 1.0, 1.0), True), ((5.0, 5.0, 5.0), False)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        path = tmp_path / f"body{spacing[0]:g}.nrrd"
        sitk.WriteImage(image, str(path))
        found = [w for w in load_ct(path).warnings if w.startswith("the body is only")]
        assert bool(found) == warned, found
    assert "40 x 40 mm" in load_ct(tmp_path / "body1.nrrd").warnings[0]


@pytest.mark.parametrize("agent,is_contrast", [("NONE", False), ("none", False), ("N/A", False), ("", False),
                                               ("No contrast", False), ("Iomeron 350", True), ("IV", True)])
def test_dicom_contrast_agent_none_is_not_contrast(tmp_path, agent, is_contrast):
    folder = tmp_path / "series"
    image = small_ct()
    write_dicom_series(folder, image, "1.2.826.0.1.3680043.2.1125.501")
    rewrite_dicom_tag(folder, "0018|0010", lambda k, path: agent)  # Contrast/Bolus Agent
    warnings = [w for w in load_ct(folder).warnings if w.startswith("contrast-enhanced")]
    assert bool(warnings) == is_contrast, warnings
    if is_contrast:
        assert f"DICOM contrast agent: {agent}" in warnings[0]


def test_slices_after_a_gap_are_placed_at_their_true_positions(tmp_path):
    """LPS of the oriented array and ijk of the file follow the DICOM positions across the gap
    (the reader's average 11/9 mm step would put slice 5 at 6.1 mm instead of 7 mm)."""
    ct = load_ct(gap_series(tmp_path))
    for k, z in ((0, 0.0), (4, 4.0), (5, 7.0), (9, 11.0), (4.5, 5.5)):
        assert ct.ijk_to_lps([0, 0, k])[2] == pytest.approx(z)
        assert ct.original.lps_to_ijk(ct.ijk_to_lps([3, 2, k])) == pytest.approx([3, 2, k])
    assert ct.original.ijk_to_lps([0, 0, 5])[2] == pytest.approx(7.0)
    assert ct.geometry.lps_to_ijk([0, 0, 8.0])[2] == pytest.approx(6.0)


def test_true_positions_also_when_the_oriented_array_reverses_the_slices(tmp_path):
    """Slice normal toward the feet (ImageOrientationPatient -1,0,0 / 0,1,0): the oriented array
    holds the slices in reverse; its LPS still follow the DICOM positions across the gap."""
    folder = tmp_path / "reversed"
    image = small_ct(direction=(-1, 0, 0, 0, 1, 0, 0, 0, -1))
    write_dicom_series(folder, image, "1.2.826.0.1.3680043.2.1125.403")
    rewrite_dicom_tag(folder, "0020|0037", lambda k, path: "-1\\0\\0\\0\\1\\0")
    files = sorted(folder.iterdir())
    for index in (2, 3):  # z = -2 and -3 mm missing
        files[index].unlink()
    ct = load_ct(folder)
    assert not ct.contiguous and ct.slices.gaps[0]["gap_mm"] == pytest.approx(3.0)
    truth = sorted(-float(k) for k in range(12) if k not in (2, 3))  # z of the remaining slices, S upward
    oriented_z = [ct.ijk_to_lps([0, 0, k])[2] for k in range(ct.shape[0])]
    assert oriented_z == pytest.approx(truth)
    assert ct.slices.gaps[0]["oriented_k"] == [7, 8]  # z -4 and -1 mm in the oriented array
    assert ct.contiguous_runs() == [(0, 7), (8, 9)]
