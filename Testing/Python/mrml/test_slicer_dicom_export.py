"""Export to DICOM from the module (issue 16, point 4), headless over the real MRML library
(slicer-core): the module logic's ``exportDicom`` (``mrml_dicom``) writes ``lobes.dcm`` and
``findings.dcm`` for a CT that Slicer's own volume storage node read from a DICOM series, and refuses
a CT that was not loaded from DICOM with a one-line ``DPOInputError``, writing nothing.

Two things Slicer's DICOM module would give cannot run here and are stood in for, named as such:
* ``DICOM.instanceUIDs``: set on the volume the way DICOMScalarVolumePlugin.py does it (Slicer
  5.8-5.12: the slices' SOP instance UIDs in slice order, space-separated);
* ``FakeDICOMDatabase.fileForInstance``: a FAKE of ``slicer.dicomDatabase.fileForInstance``
  (ctkDICOMDatabase), a dict from the UIDs this test wrote to their files.

The truths come from outside the code under test: the series' UIDs and files from the writer in
``test_dicom_export``, the lobe map from the pipeline's own lobes of the phantom (the array put into
the segmentation node), the reported findings from the statuses decided here.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core is installed by the test setup (make test)")
hd = pytest.importorskip("highdicom", reason="the 'dicom' extra (highdicom) is not installed")

from test_dicom_export import _groups, write_ct_series  # noqa: E402

from DPOScoringLib.common.errors import DPOInputError  # noqa: E402
from DPOScoringLib.detection.candidates_file import candidates_document  # noqa: E402
from DPOScoringLib.mrml.mrml_dicom import INSTANCE_UIDS  # noqa: E402
from DPOScoringLib.mrml.mrml_logic import create_headless_scene  # noqa: E402
from DPOScoringLib.mrml.mrml_module_logic import ModuleLogic  # noqa: E402


class FakeDICOMDatabase:
    """FAKE of ``slicer.dicomDatabase`` (ctkDICOMDatabase): only ``fileForInstance`` (UID -> file,
    "" when the UID is not in the database, as CTK returns an empty QString)."""

    def __init__(self, files_by_uid: dict):
        self.files_by_uid = dict(files_by_uid)

    def fileForInstance(self, uid: str) -> str:
        return str(self.files_by_uid.get(uid, ""))


def parameter_node(volume):
    """The parameter node's fields (DPOScoringParameterNode), as in test_slicer_module_flow."""
    return types.SimpleNamespace(inputVolume=volume, readerId="reader-3", reviewFolder=None, lobeMethod="fissures",
                                 lobeImportPath=None, lungmaskWeights=None, lobeSegmentation=None, candidates=None,
                                 candidatesTable=None, resultsTable=None, def1="default", def2="default",
                                 dendriformNodules="exclude")


@pytest.fixture(scope="module")
def dicom_review(phantom_1mm, tmp_path_factory):
    """The phantom CT written as a DICOM series, read by Slicer's volume storage node, marked as
    DICOMScalarVolumePlugin marks it; the pipeline's lobes as a segmentation node; the detection's
    candidates decided: the first three confirmed, the next two rejected, the rest left pending."""
    root = tmp_path_factory.mktemp("slicer_dicom")
    series = write_ct_series(sitk.ReadImage(str(phantom_1mm.paths["ct"])), root / "series")
    logic = ModuleLogic(create_headless_scene())
    volume = logic.mrml.load_volume(series["files"][0], "CT from DICOM")
    volume.SetAttribute(INSTANCE_UIDS, " ".join(series["sop"]))  # as DICOMScalarVolumePlugin.py
    node = parameter_node(volume)
    lobes = phantom_1mm.lobe_result.lobes
    node.lobeSegmentation = logic.mrml.lobes_to_segmentation(lobes, logic.mrml.volume_to_image(volume), volume)
    run = phantom_1mm.run
    document = json.loads(json.dumps(candidates_document(run.ct, run.result, run.warnings, run.sources,
                                                         run.lung_volumes_ml)))  # as read from candidates.json
    node.candidates = logic.mrml.candidates_to_markups(document)
    count = node.candidates.GetNumberOfControlPoints()
    assert count > 6
    for index in range(5):
        logic.decide(node, index, "reader-3", status="confirmed" if index < 3 else "rejected")
    database = FakeDICOMDatabase(dict(zip(series["sop"], series["files"])))
    return types.SimpleNamespace(logic=logic, node=node, series=series, lobes=lobes, database=database,
                                 root=root, count=count)


def test_export_writes_a_seg_and_sr_of_the_review_referencing_the_loaded_series(dicom_review):
    r = dicom_review
    assert r.logic.canExportDicom(r.node)
    folder = r.logic.exportDicom(r.node, r.root / "review", r.database.fileForInstance)
    assert folder == str(r.root / "review" / "dicom")
    import pydicom

    seg = hd.seg.segread(r.root / "review" / "dicom" / "lobes.dcm")
    sr = hd.sr.srread(r.root / "review" / "dicom" / "findings.dcm")
    series = r.series
    for k in (10, len(series["files"]) // 2, len(series["files"]) - 30):
        pixels = seg.get_pixels_by_source_instance([series["sop"][k]], combine_segments=True)[0]
        assert np.array_equal(pixels, r.lobes[k]), f"slice {k}"
    header = pydicom.dcmread(r.root / "review" / "dicom" / "lobes.dcm", stop_before_pixels=True)
    assert header.StudyInstanceUID == series["study"] and header.FrameOfReferenceUID == series["frame_of_reference"]
    referenced = header.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == series["series"]
    assert {i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence} == set(series["sop"])
    assert sr.StudyInstanceUID == series["study"]
    assert len(_groups(sr)) == r.count - 2  # confirmed and pending findings are reported, rejected ones not
    assert sorted(p.name for p in (r.root / "review" / "dicom").iterdir()) == ["findings.dcm", "lobes.dcm"]


def test_a_second_export_into_the_same_folder_overwrites_nothing(dicom_review):
    r = dicom_review
    folder = r.root / "again" / "dicom"
    r.logic.exportDicom(r.node, r.root / "again", r.database.fileForInstance)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(DPOInputError, match="already exists") as error:
        r.logic.exportDicom(r.node, r.root / "again", r.database.fileForInstance)
    assert "\n" not in str(error.value)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_ct_not_loaded_from_dicom_is_refused_in_one_line_and_nothing_is_written(dicom_review, phantom_1mm):
    r = dicom_review
    nrrd = r.logic.mrml.load_volume(phantom_1mm.paths["ct"], "CT from NRRD")
    node = parameter_node(nrrd)
    node.lobeSegmentation, node.candidates = r.node.lobeSegmentation, r.node.candidates
    assert not r.logic.canExportDicom(node)
    with pytest.raises(DPOInputError, match="not loaded from Slicer's DICOM database") as error:
        r.logic.exportDicom(node, r.root / "nrrd", r.database.fileForInstance)
    assert "\n" not in str(error.value) and "CT from NRRD" in str(error.value)
    assert not (r.root / "nrrd").exists()


def test_files_missing_from_the_database_are_refused_before_writing(dicom_review):
    r = dicom_review
    partial = FakeDICOMDatabase({uid: f for uid, f in list(r.database.files_by_uid.items())[1:]})
    with pytest.raises(DPOInputError, match="1 of the .* DICOM files") as error:
        r.logic.exportDicom(r.node, r.root / "partial", partial.fileForInstance)
    assert "\n" not in str(error.value)
    assert not (r.root / "partial").exists()


def test_export_is_offered_only_with_lobes_and_a_review(dicom_review):
    r = dicom_review
    no_lobes = parameter_node(r.node.inputVolume)
    no_lobes.candidates = r.node.candidates
    no_review = parameter_node(r.node.inputVolume)
    no_review.lobeSegmentation = r.node.lobeSegmentation
    assert not r.logic.canExportDicom(no_lobes) and not r.logic.canExportDicom(no_review)
    with pytest.raises(DPOInputError, match="needs the lobes"):
        r.logic.exportDicom(no_lobes, r.root / "no-lobes", r.database.fileForInstance)
    assert not (r.root / "no-lobes").exists()


def test_without_highdicom_the_export_says_how_to_install_it_and_writes_nothing(dicom_review, monkeypatch):
    import sys

    r = dicom_review
    monkeypatch.setitem(sys.modules, "highdicom", None)  # as a Slicer without the package: import fails
    with pytest.raises(DPOInputError, match=r"highdicom.*pip_install\('highdicom>=0.28'\)") as error:
        r.logic.exportDicom(r.node, r.root / "no-highdicom", r.database.fileForInstance)
    assert "\n" not in str(error.value) and not (r.root / "no-highdicom").exists()
