"""DICOM results of a case (issue 16): ``lobes.dcm`` (SEG) and ``findings.dcm`` (SR TID 1500) from a
DICOM CT series that the test writes itself from the phantom, read back with highdicom/pydicom and
checked against the bundle's own files; validated with Debian's ``dciodvfy`` when it is installed.

The truth of each check comes from outside the code under test: the lobe map from the bundle's
``lobes.nrrd`` resampled onto the written slices by SimpleITK, the values from ``reading.json`` and
``scores.json``, the UIDs from the files this test wrote, the geometry from the DICOM standard's
image-plane formula.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REAL_CT, require_real
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from DPOScoringLib.common.anatomy import LOBES
from DPOScoringLib.lobes.lobe_files import TERMINOLOGY

hd = pytest.importorskip("highdicom", reason="the 'dicom' extra (highdicom) is not installed")

PATIENT = {"PatientName": "Test^Phantom", "PatientID": "DPO-TEST-1", "PatientBirthDate": "19500101",
           "PatientSex": "O"}


def write_ct_series(image: sitk.Image, folder: str | Path, description: str = "test CT") -> dict:
    """Test helper, not product code: writes ``image`` (HU) as a CT Image Storage series with pydicom,
    one file per slice with the CT Image IOD's mandatory attributes; returns the UIDs and the files
    in slice order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    array = sitk.GetArrayFromImage(image)
    array = np.clip(np.rint(array), -1024, 3071).astype(np.int16)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    orientation = [float(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    now = _dt.datetime(2026, 1, 2, 10, 30, 0)
    files, sop_uids = [], []
    for k in range(array.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"ct-{k:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        for key, value in PATIENT.items():
            setattr(ds, key, value)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = now.strftime("%H%M%S")
        ds.ReferringPhysicianName, ds.StudyID, ds.AccessionNumber = "", "1", ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = "CT", 1, k + 1, 1
        ds.SeriesDescription = description
        ds.Manufacturer, ds.PositionReferenceIndicator, ds.PatientPosition = "test", "", "HFS"
        ds.BodyPartExamined = "CHEST"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [float(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
        ds.ImageOrientationPatient = orientation
        ds.PixelSpacing = [float(image.GetSpacing()[1]), float(image.GetSpacing()[0])]
        ds.SliceThickness = float(image.GetSpacing()[2])
        ds.KVP = 120
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = array.shape[1], array.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.PixelData = array[k].tobytes()
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
        sop_uids.append(ds.SOPInstanceUID)
    return {"study": study, "series": series, "frame_of_reference": frame, "files": files, "sop": sop_uids}


def dpo_score(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "DPOScoringLib", *map(str, args)], capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout)


def slice_geometry(dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """(position, row direction, column direction, row spacing, column spacing) of a slice."""
    orientation = np.array(dataset.ImageOrientationPatient, dtype=float)
    return (np.array(dataset.ImagePositionPatient, dtype=float), orientation[:3], orientation[3:],
            float(dataset.PixelSpacing[0]), float(dataset.PixelSpacing[1]))


@pytest.fixture(scope="module")
def dicom_case(tmp_path_factory):
    """A phantom written as a DICOM series whose rows run posterior to anterior (so the product's
    LPS re-orientation must be undone for the SEG), run through ``run_case(dicom_out=True)`` with a
    simulated reader who confirms two thirds of the true findings, leaves the others pending and
    rejects the rest."""
    from DPOScoringLib.audit.case_run import run_case
    from DPOScoringLib.synthetic.phantom import PhantomSpec, generate_phantom, matches_truth

    root = tmp_path_factory.mktemp("dicom_case")
    phantom = generate_phantom(PhantomSpec(fov_mm=(220.0, 180.0, 160.0), spacing=(0.8, 0.8, 2.0), seed=5))
    written_grid = sitk.Flip(phantom.ct, [False, True, False])  # same voxels, direction (1,0,0,0,-1,0,0,0,1)
    series = write_ct_series(written_grid, root / "series")
    truth = phantom.truth["findings"]

    def reader(document):
        statuses = {}
        for number, candidate in enumerate(document["candidates"]):
            if not any(matches_truth(f, candidate["lps"]) for f in truth):
                statuses[candidate["id"]] = "rejected"
            elif number % 3:  # every third true finding is left pending
                statuses[candidate["id"]] = "confirmed"
        if "rejected" not in statuses.values():
            statuses[document["candidates"][-1]["id"]] = "rejected"
        return statuses

    bundle = run_case(root / "series", root / "bundle", reader="reader-7", case_id="dicom-phantom", decide=reader,
                      dicom_out=True)
    return {"bundle": bundle, "series": series, "grid": written_grid, "root": root,
            "reading": json.loads((bundle / "reading.json").read_text(encoding="utf-8")),
            "scores": json.loads((bundle / "scores.json").read_text(encoding="utf-8")),
            "provenance": json.loads((bundle / "provenance.json").read_text(encoding="utf-8"))}


def test_seg_voxels_equal_the_lobe_map(dicom_case):
    seg = hd.seg.segread(dicom_case["bundle"] / "lobes.dcm")
    lobe_map = sitk.ReadImage(str(dicom_case["bundle"] / "lobes.nrrd"))
    # the truth: the bundle's label map put on the written slices' grid by SimpleITK (a permutation of
    # the same voxels, so nearest-neighbour resampling is exact)
    expected = sitk.GetArrayFromImage(sitk.Resample(lobe_map, dicom_case["grid"], sitk.Transform(),
                                                    sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))
    assert set(np.unique(expected)) == set(range(7))
    series = dicom_case["series"]
    for k in range(0, len(series["sop"]), 1):
        try:
            pixels = seg.get_pixels_by_source_instance([series["sop"][k]], combine_segments=True)[0]
        except (KeyError, ValueError):  # no frame refers to this slice: it holds no lobe voxel
            pixels = np.zeros_like(expected[k])
        assert np.array_equal(pixels, expected[k]), f"slice {k}"


def test_seg_segments_carry_the_seg_nrrd_codes_and_the_method(dicom_case):
    seg = hd.seg.segread(dicom_case["bundle"] / "lobes.dcm")
    assert seg.SegmentationType == "BINARY" and len(seg.SegmentSequence) == 6
    for lobe, item in zip(LOBES, seg.SegmentSequence):
        value, meaning, modifier, _ = TERMINOLOGY[lobe.code]
        assert item.SegmentNumber == lobe.label and item.SegmentLabel == lobe.name
        category = item.SegmentedPropertyCategoryCodeSequence[0]
        assert (category.CodeValue, category.CodingSchemeDesignator) == ("123037004", "SCT")
        kind = item.SegmentedPropertyTypeCodeSequence[0]
        scheme = "99DPO" if lobe.code == "LING" else "SCT"
        assert (kind.CodeValue, kind.CodingSchemeDesignator, kind.CodeMeaning) == (value, scheme, meaning)
        modifiers = kind.get("SegmentedPropertyTypeModifierCodeSequence", [])
        assert [m.CodeValue for m in modifiers] == ([modifier] if modifier else [])
        assert item.SegmentAlgorithmType == "AUTOMATIC"
        algorithm = item.SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmName == "DPOScoring lobes (fissures)" and algorithm.AlgorithmVersion
        assert "method=fissures" in algorithm.AlgorithmParameters
    lingula = seg.SegmentSequence[4]
    assert "99DPO" in lingula.SegmentDescription and "no code" in lingula.SegmentDescription
    assert [s.CodingSchemeDesignator for s in seg.CodingSchemeIdentificationSequence] == ["99DPO"]
    assert str(seg.ContentCreatorName) == "reader-7^"


def _groups(sr):
    groups = {}
    for group in sr.content.get_planar_roi_measurement_groups():
        groups[group.tracking_identifier.split(" ", 1)[1]] = group
    return groups


def _value(group, name: str, derivation: str | None = None) -> float:
    matches = [m for m in group.get_measurements() if m.name.meaning == name
               and (derivation is None or (m.derivation is not None and m.derivation.meaning == derivation))]
    assert len(matches) == 1, name
    return float(matches[0].value)


def _case_group(sr):
    groups = [g for g in sr.content.get_image_measurement_groups() if g.tracking_identifier == "DPO scores"]
    assert len(groups) == 1
    return groups[0]


def _site(site) -> tuple[str, str | None]:
    """(anatomy code value, laterality code value or None) of a FindingSite read back."""
    return site.value.value, (site.laterality.value if site.laterality is not None else None)


def _evaluation(group, name: str):
    matches = [e for e in group.get_qualitative_evaluations() if e.name.meaning == name]
    return matches[0].value if matches else None


def test_every_sr_measurement_equals_the_bundle_value(dicom_case):
    sr = hd.sr.srread(dicom_case["bundle"] / "findings.dcm")
    reading, scores = dicom_case["reading"], dicom_case["scores"]
    reported = {f["id"]: f for f in reading["findings"] if f["status"] in ("confirmed", "pending")}
    statuses = {f["status"] for f in reported.values()}
    assert statuses == {"confirmed", "pending"}, "the fixture should give both kinds of finding"
    assert any(f["status"] == "rejected" for f in reading["findings"])
    groups = _groups(sr)
    assert set(groups) == set(reported)  # rejected findings are left out
    datasets = {ds.SOPInstanceUID: ds for ds in map(_read_header, dicom_case["series"]["files"])}
    kinds = {"nodular": "PO-NODULAR", "dendriform": "PO-DENDRIFORM", "large_calcified": "CALCIFIED-NODULE",
             "granuloma": "GRANULOMA"}
    for key, finding in reported.items():
        group = groups[key]
        assert _value(group, "Short axis") == pytest.approx(finding["short_axis_mm"], abs=1e-9)
        assert _value(group, "Long axis") == pytest.approx(finding["long_axis_mm"], abs=1e-9)
        assert _value(group, "Volume") == pytest.approx(finding["volume_mm3"], abs=1e-9)
        assert _value(group, "Attenuation Coefficient", "Maximum") == pytest.approx(finding["peak_hu"], abs=1e-9)
        assert _value(group, "Attenuation Coefficient", "Mean") == pytest.approx(finding["mean_hu"], abs=1e-9)
        assert group.finding_type.value == kinds[finding["kind"]]
        assert _evaluation(group, "Reader decision").value == finding["status"].upper()
        assert _evaluation(group, "Zone within the lobe").value == f"ZONE-{finding['zone'].upper()}"
        value, _, modifier, _ = TERMINOLOGY[finding["lobe"]]
        site = group.finding_sites[0]
        assert _site(site) == (value, modifier)
        # where: a point on the slice nearest to the finding (DICOM image plane formula, SCOORD
        # pixel centres at +0.5)
        region = group.roi
        source = region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID  # SELECTED FROM IMAGE
        position, row_dir, col_dir, row_spacing, column_spacing = slice_geometry(datasets[source])
        column, row = region.value[0]
        lps = position + (column - 0.5) * column_spacing * row_dir + (row - 0.5) * row_spacing * col_dir
        offset = np.asarray(finding["lps"]) - lps
        normal = np.cross(row_dir, col_dir)
        assert abs(offset @ normal) <= float(datasets[source].SliceThickness) / 2 + 1e-6
        assert np.linalg.norm(offset - (offset @ normal) * normal) < 1e-3
    case = _case_group(sr)
    nnpol = {}
    for measurement in case.get_measurements():
        if measurement.name.value == "NNPOL":
            nnpol[_site(measurement.finding_sites[0])] = float(measurement.value)
    expected = {(TERMINOLOGY[code][0], TERMINOLOGY[code][2]): float(count) for code, count in scores["nnpol"].items()}
    assert nnpol == expected
    assert scores["total"] > 0, "the simulated reader confirmed findings; the scores should count them"
    for name, key in (("Number of nodular POs in the right lung", "right_total"),
                      ("Number of nodular POs in the left lung", "left_total"),
                      ("Number of nodular POs in both lungs", "total"),
                      ("Number of lobes with dendriform ossification", "ldo"),
                      ("ILD extent (sum of the six lobes' extents, 0-18)", "ild_extent")):
        assert _value(case, name) == scores[key], name
    if scores["ans"] is None:
        assert not [m for m in case.get_measurements() if m.name.meaning == "Average nodule score"]
    else:
        assert _value(case, "Average nodule score") == pytest.approx(scores["ans"], rel=1e-9)
    assert not [m for m in case.get_measurements() if m.name.meaning == "Coarseness score"] \
        if scores["coarseness_score"] is None else _value(case, "Coarseness score") == scores["coarseness_score"]
    yes_no = {True: "373066001", False: "373067005"}
    assert _evaluation(case, "DPO definition 1 met").value == yes_no[scores["dpo_def1"]]
    assert _evaluation(case, "DPO definition 2 met").value == yes_no[scores["dpo_def2"]]
    assert _evaluation(case, "Every finding decided by the reader").value == yes_no[scores["complete"]]
    assert _evaluation(case, "Variant of DPO definition 1 applied").value == f"DEF1-{scores['policy']['def1'].upper()}"
    assert _evaluation(case, "Variant of DPO definition 2 applied").value == f"DEF2-{scores['policy']['def2'].upper()}"
    dendriform_nodules = scores["policy"]["dendriform_nodules"].upper()
    assert _evaluation(case, "Nodular POs in a dendriform lobe").value == f"DENDNOD-{dendriform_nodules}"
    person = sr.content.get_observer_contexts(observer_type=hd.sr.CodedConcept("121006", "DCM", "Person"))
    assert person and str(person[0].observer_identifying_attributes.name) == "reader-7^"


def _read_header(path):
    import pydicom

    return pydicom.dcmread(path, stop_before_pixels=True)


def test_all_uids_reference_the_input_series(dicom_case):
    import pydicom

    series = dicom_case["series"]
    seg = pydicom.dcmread(dicom_case["bundle"] / "lobes.dcm")
    sr = pydicom.dcmread(dicom_case["bundle"] / "findings.dcm")
    for ds in (seg, sr):
        assert ds.StudyInstanceUID == series["study"] and ds.PatientID == "DPO-TEST-1"
        assert ds.SeriesInstanceUID != series["series"]
    assert seg.FrameOfReferenceUID == series["frame_of_reference"]
    referenced = seg.ReferencedSeriesSequence
    assert len(referenced) == 1 and referenced[0].SeriesInstanceUID == series["series"]
    assert {i.ReferencedSOPInstanceUID for i in referenced[0].ReferencedInstanceSequence} == set(series["sop"])
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert source.ReferencedSOPInstanceUID in series["sop"]
    evidence = {s.SeriesInstanceUID: {i.ReferencedSOPInstanceUID for i in s.ReferencedSOPSequence}
                for study in sr.CurrentRequestedProcedureEvidenceSequence
                for s in study.ReferencedSeriesSequence}
    assert evidence[series["series"]] == set(series["sop"])
    assert evidence[seg.SeriesInstanceUID] == {seg.SOPInstanceUID}  # the SR names the SEG it goes with
    recorded = dicom_case["provenance"]["dicom_outputs"]
    assert recorded["lobes.dcm"]["sop_instance_uid"] == seg.SOPInstanceUID
    assert recorded["findings.dcm"]["sop_instance_uid"] == sr.SOPInstanceUID
    assert dicom_case["provenance"]["input"]["dicom"]["series_instance_uid"] == series["series"]


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy (Debian package dicom3tools) is not installed; `make test` installs it")
def test_independent_validator_reports_no_errors(dicom_case):
    for name in ("lobes.dcm", "findings.dcm"):
        result = subprocess.run(["dciodvfy", str(dicom_case["bundle"] / name)], capture_output=True, text=True,
                                encoding="utf-8")
        lines = (result.stdout + result.stderr).splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        assert not errors, f"{name}: {errors}"
        # the only warnings allowed: the validator does not know our declared private coding scheme
        others = [line for line in lines if line.startswith("Warning") and "99DPO" not in line]
        assert not others, f"{name}: {others}"


def test_every_code_value_fits_a_plain_code_value(dicom_case):
    """Codes longer than 16 characters would go into Long Code Value, which older viewers ignore."""
    import pydicom

    for name in ("lobes.dcm", "findings.dcm"):
        dataset = pydicom.dcmread(dicom_case["bundle"] / name)
        longer = [e.value for e in dataset.iterall() if e.keyword == "LongCodeValue"]
        assert not longer, f"{name}: {longer}"
        private = {e.value for e in dataset.iterall() if e.keyword == "CodeValue"}
        assert private and all(len(value) <= 16 for value in private)


def test_export_of_a_finished_bundle_writes_the_same_content(dicom_case, tmp_path):
    """What the Slicer module calls: the files for an existing bundle, written to a folder."""
    from DPOScoringLib.audit.dicom_export import export_bundle
    from DPOScoringLib.common.errors import DPOInputError

    written = export_bundle(dicom_case["bundle"], tmp_path / "export")
    assert [p.name for p in written] == ["lobes.dcm", "findings.dcm"]
    first, again = (hd.seg.segread(folder / "lobes.dcm") for folder in (dicom_case["bundle"], tmp_path / "export"))
    assert np.array_equal(first.pixel_array, again.pixel_array)
    assert again.SOPInstanceUID != first.SOPInstanceUID
    values = [sorted(float(m.value) for g in hd.sr.srread(folder / "findings.dcm").content
                     .get_planar_roi_measurement_groups() for m in g.get_measurements())
              for folder in (dicom_case["bundle"], tmp_path / "export")]
    assert values[0] == values[1] and values[0]
    with pytest.raises(DPOInputError, match="already exists"):
        export_bundle(dicom_case["bundle"], tmp_path / "export")


def test_export_review_from_files_in_any_order_and_the_ct_own_grid(dicom_case, tmp_path):
    """The Slicer path: the CT's files as a DICOM database lists them (any order) and the lobe map
    on the volume's own grid (here the written grid, rows posterior to anterior)."""
    from DPOScoringLib.audit.dicom_export import export_review
    from DPOScoringLib.common.errors import DPOInputError

    grid = dicom_case["grid"]
    lobe_map = sitk.ReadImage(str(dicom_case["bundle"] / "lobes.nrrd"))
    on_grid = sitk.Resample(lobe_map, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    expected = sitk.GetArrayFromImage(on_grid)
    files = list(dicom_case["series"]["files"])
    shuffled = [files[i] for i in np.random.default_rng(0).permutation(len(files))]
    export_review(tmp_path, expected, grid, dicom_case["reading"], dicom_case["scores"], shuffled)
    seg = hd.seg.segread(tmp_path / "lobes.dcm")
    for k in (5, len(files) // 2, len(files) - 6):
        pixels = seg.get_pixels_by_source_instance([dicom_case["series"]["sop"][k]], combine_segments=True)[0]
        assert np.array_equal(pixels, expected[k]), f"slice {k}"
    assert len(_groups(hd.sr.srread(tmp_path / "findings.dcm"))) == len(_groups(
        hd.sr.srread(dicom_case["bundle"] / "findings.dcm")))
    with pytest.raises(DPOInputError, match="is not the DICOM series"):  # a lobe map on another grid
        export_review(tmp_path / "other", expected[:, :, 1:], grid, dicom_case["reading"],
                      dicom_case["scores"], shuffled)
    with pytest.raises(DPOInputError, match="not loaded from DICOM"):
        export_review(tmp_path / "none", expected, grid, dicom_case["reading"], dicom_case["scores"], [])
    assert not (tmp_path / "other").exists() and not (tmp_path / "none").exists()


def test_sr_reports_findings_without_position_or_lobe_and_the_policy_used(dicom_case, tmp_path):
    """A hand-written reading: a confirmed granuloma without a position (no image region: a TID 1501
    group), a pending finding in no lobe (no finding site), a rejected one (left out); ANS and CS
    undefined (left out); a non-default policy."""
    from DPOScoringLib.audit.dicom_seg import read_source_series
    from DPOScoringLib.audit.dicom_sr import build_findings_report

    series = read_source_series(dicom_case["series"]["files"])
    lps = [float(v) for v in dicom_case["grid"].TransformIndexToPhysicalPoint((100, 80, 20))]
    reading = {"reader": "", "findings": [
        {"id": "g1", "status": "confirmed", "kind": "granuloma", "lobe": "RLL", "short_axis_mm": 6.5},
        {"id": "u1", "status": "pending", "kind": "nodular", "lobe": "unassigned", "lps": lps},
        {"id": "r1", "status": "rejected", "kind": "nodular", "lobe": "RUL", "lps": lps}]}
    scores = {"nnpol": dict.fromkeys(TERMINOLOGY, 0), "right_total": 0, "left_total": 0, "total": 0, "ldo": 6,
              "ans": None, "coarseness_score": None, "ild_extent": 4, "dpo_def1": False, "dpo_def2": False,
              "complete": False, "policy": {"def1": "total", "def2": "each-lung", "dendriform_nodules": "count"}}
    build_findings_report(series, reading, scores).save_as(tmp_path / "sr.dcm")
    sr = hd.sr.srread(tmp_path / "sr.dcm")
    planar = _groups(sr)
    assert set(planar) == {"u1"} and not planar["u1"].finding_sites
    assert planar["u1"].roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID \
        == dicom_case["series"]["sop"][20]
    without_position = [g for g in sr.content.get_image_measurement_groups() if g.tracking_identifier == "finding g1"]
    assert len(without_position) == 1
    assert _value(without_position[0], "Short axis") == 6.5
    assert _site(without_position[0].finding_sites[0]) == ("90572001", "24028007")
    case = _case_group(sr)
    names = {m.name.meaning for m in case.get_measurements()}
    assert "Average nodule score" not in names and "Coarseness score" not in names
    assert _value(case, "Number of lobes with dendriform ossification") == 6
    assert _evaluation(case, "Variant of DPO definition 2 applied").value == "DEF2-EACH-LUNG"
    assert _evaluation(case, "Nodular POs in a dendriform lobe").value == "DENDNOD-COUNT"
    assert sr.CompletionFlag == "PARTIAL" and not sr.content.get_observer_contexts(
        observer_type=hd.sr.CodedConcept("121006", "DCM", "Person"))


def test_cli_refuses_an_irregular_series_before_any_work(dicom_case, tmp_path):
    folder = tmp_path / "gap"
    shutil.copytree(dicom_case["root"] / "series", folder)
    (folder / "ct-0030.dcm").unlink()  # one slice missing: the slices are no longer evenly spaced
    result = dpo_score("run", folder, "--out", tmp_path / "bundle", "--dicom-out", "--quiet", timeout=120)
    assert result.returncode == 2 and "evenly spaced" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "bundle").exists()


def test_cli_refuses_dicom_out_for_a_non_dicom_input_before_any_work(tmp_path):
    ct = tmp_path / "ct.nrrd"
    image = sitk.Image(8, 8, 8, sitk.sitkInt16)
    sitk.WriteImage(image, str(ct))
    out = tmp_path / "bundle"
    result = dpo_score("run", ct, "--out", out, "--dicom-out", "--quiet", timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--dicom-out" in lines[0] and "DICOM series folder" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_batch_passes_dicom_out_through(dicom_case, tmp_path):
    manifest = tmp_path / "cases.csv"
    manifest.write_text(f"case_id,path\ncase-a,{dicom_case['root'] / 'series'}\n")
    result = dpo_score("batch", manifest, "--out", tmp_path / "out", "--dicom-out", "--reader", "reader-9")
    assert result.returncode == 0, result.stderr
    bundle = tmp_path / "out" / "case-a"
    seg = hd.seg.segread(bundle / "lobes.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == dicom_case["series"]["series"]
    assert _case_group(hd.sr.srread(bundle / "findings.dcm"))


@pytest.mark.real_ct
def test_real_ct_slices_as_dicom_round_trip(tmp_path):
    """60 slices (120 mm) of the real thorax CT written as a DICOM series, `dpo-score run --dicom-out`:
    the SEG holds the bundle's lobes on the real geometry and both files pass the validator."""
    image = sitk.ReadImage(str(require_real(REAL_CT)))[:, :, 40:100]
    series = write_ct_series(image, tmp_path / "series", "real thorax CT, slices 40-99")
    result = dpo_score("run", tmp_path / "series", "--out", tmp_path / "bundle", "--dicom-out", "--quiet")
    assert result.returncode == 0, result.stderr
    bundle = tmp_path / "bundle"
    expected = sitk.GetArrayFromImage(sitk.Resample(sitk.ReadImage(str(bundle / "lobes.nrrd")), image,
                                                    sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))
    assert set(np.unique(expected)) == set(range(7))
    seg = hd.seg.segread(bundle / "lobes.dcm")
    for k in range(0, len(series["sop"]), 7):
        try:
            pixels = seg.get_pixels_by_source_instance([series["sop"][k]], combine_segments=True)[0]
        except (KeyError, ValueError):
            pixels = np.zeros_like(expected[k])
        assert np.array_equal(pixels, expected[k]), f"slice {k}"
    reading = json.loads((bundle / "reading.json").read_text(encoding="utf-8"))
    groups = _groups(hd.sr.srread(bundle / "findings.dcm"))
    assert set(groups) == {f["id"] for f in reading["findings"] if f["status"] != "rejected"}
    if shutil.which("dciodvfy"):
        for name in ("lobes.dcm", "findings.dcm"):
            run = subprocess.run(["dciodvfy", str(bundle / name)], capture_output=True, text=True, encoding="utf-8")
            assert not [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
