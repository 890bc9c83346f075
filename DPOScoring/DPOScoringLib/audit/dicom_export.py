"""DICOM results of a case: ``lobes.dcm`` (Segmentation) and ``findings.dcm`` (TID 1500 SR), both
referencing the input CT series (study, series, frame of reference and SOP instance UIDs).

Only for a DICOM series input: the objects must reference the CT's UIDs, which NRRD/NIfTI/MHA
files do not have. ``require_dicom_input`` says so in one line before any work starts.
``dicom_results`` builds both objects in memory (``dpo-score run --dicom-out`` puts them into the
bundle); ``export_bundle`` writes them for a finished bundle (the Slicer module, or later).
Needs the optional ``dicom`` extra (highdicom on pydicom).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..common.errors import DPOInputError

DICOM_FILES = ("lobes.dcm", "findings.dcm")
INSTALL_HINT = "pip install 'dpo-scoring[dicom]' (highdicom)"


def require_highdicom(option: str) -> None:
    try:
        import highdicom  # noqa: F401
    except ImportError:
        raise DPOInputError(option, f"needs the highdicom package: {INSTALL_HINT}") from None


def require_dicom_input(ct_path: str | Path, option: str = "--dicom-out") -> None:
    """Raises a one-line ``DPOInputError`` unless ``ct_path`` is a folder holding a DICOM series."""
    require_highdicom(option)
    path = Path(ct_path)
    if not path.is_dir():
        raise DPOInputError(option, f"needs a DICOM series folder as input, and {path} is a file: a DICOM "
                            "SEG and SR must reference the CT's DICOM UIDs, which this file does not have")
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
    if not series:
        raise DPOInputError(option, f"needs a DICOM series folder as input, and {path} holds no DICOM series")
    from .dicom_seg import read_source_series, series_files

    files = {uid: series_files(path, uid) for uid in series}
    chosen = max(files, key=lambda uid: (len(files[uid]), uid))  # the series load_ct reads
    read_source_series(files[chosen], chosen)  # headers only: one regular grid, else say so now


def _bytes(dataset) -> bytes:
    stream = io.BytesIO()
    dataset.save_as(stream, enforce_file_format=True)
    return stream.getvalue()


def build_datasets(series, lobes: np.ndarray, reference: sitk.Image, reading: dict, scores: dict,
                   lobe_provenance: dict) -> dict:
    """{"lobes.dcm": Segmentation, "findings.dcm": ComprehensiveSR} on a source series
    (``dicom_seg.read_source_series``); ``lobes`` indexed [k, j, i] like ``reference``."""
    from .dicom_seg import build_lobe_segmentation, lobes_on_series
    from .dicom_sr import build_findings_report

    labels = lobes_on_series(lobes, reference, series)
    seg = build_lobe_segmentation(series, labels, lobe_provenance, reading.get("reader", ""))
    sr = build_findings_report(series, reading, scores, extra_evidence=[seg])
    return {"lobes.dcm": seg, "findings.dcm": sr}


def dicom_datasets(ct, lobes: np.ndarray, reading: dict, scores: dict, lobe_provenance: dict) -> dict:
    """Both objects for a CT loaded from a DICOM folder by ``load_ct`` (its files, checked by checksum)."""
    from .dicom_seg import read_source_series, series_files

    require_highdicom("--dicom-out")
    uid = (ct.dicom or {}).get("series_instance_uid")
    if not uid:
        raise DPOInputError(ct.source, "was not read from a DICOM series; lobes.dcm and findings.dcm "
                            "need the CT's DICOM UIDs")
    series = read_source_series(series_files(ct.source, uid), uid, ct.sha256)
    return build_datasets(series, lobes, ct.image, reading, scores, lobe_provenance)


def uid_summary(datasets: dict) -> dict:
    """What the provenance records of the DICOM outputs."""
    return {name: {"sop_class_uid": str(ds.SOPClassUID), "sop_instance_uid": str(ds.SOPInstanceUID),
                   "series_instance_uid": str(ds.SeriesInstanceUID),
                   "study_instance_uid": str(ds.StudyInstanceUID)} for name, ds in datasets.items()}


def dicom_results(ct, lobes: np.ndarray, reading: dict, scores: dict, lobe_provenance: dict) -> tuple[dict, dict]:
    """({file name: bytes}, UID summary) ready for the bundle."""
    datasets = dicom_datasets(ct, lobes, reading, scores, lobe_provenance)
    return {name: _bytes(ds) for name, ds in datasets.items()}, uid_summary(datasets)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DPOInputError(str(path), f"cannot be read as JSON ({error})") from None


def export_bundle(bundle: str | Path, out: str | Path | None = None, series_folder: str | Path | None = None,
                  overwrite: bool = False) -> list[Path]:
    """Writes ``lobes.dcm`` and ``findings.dcm`` for a finished bundle into ``out`` (default: the
    bundle). ``series_folder``: where the CT series is now (default: the input recorded in the
    provenance); its checksum must equal the recorded one. Nothing is overwritten unless asked."""
    from ..common.safe_files import refuse_existing
    from ..ct.ct_image import sha256_of_files
    from .dicom_seg import read_source_series, series_files

    require_highdicom("export to DICOM")
    bundle = Path(bundle)
    provenance = _read_json(bundle / "provenance.json")
    recorded = provenance.get("input", {})
    folder = Path(series_folder or recorded.get("source", ""))
    uid = recorded.get("dicom", {}).get("series_instance_uid")
    if not uid:
        raise DPOInputError(str(bundle), "was made from a non-DICOM CT; lobes.dcm and findings.dcm need the "
                            "CT's DICOM UIDs")
    out = Path(out) if out else bundle
    for name in DICOM_FILES:
        refuse_existing(out / name, overwrite)
    if not folder.is_dir():
        raise DPOInputError(str(folder), "is not a folder; give the CT's DICOM series folder")
    files = series_files(folder, uid)
    if sha256_of_files(files) != recorded.get("sha256"):
        raise DPOInputError(str(folder), "does not hold the series this bundle was made from (checksum differs)")
    lobe_image = sitk.ReadImage(str(bundle / "lobes.nrrd"))
    datasets = build_datasets(read_source_series(files, uid), sitk.GetArrayFromImage(lobe_image), lobe_image,
                              _read_json(bundle / "reading.json"), _read_json(bundle / "scores.json"),
                              provenance.get("lobes", {}))
    return write_files(out, datasets, overwrite)


def write_files(out: str | Path, datasets: dict, overwrite: bool = False) -> list[Path]:
    """Both files written atomically into ``out``, after both are encoded; never over an existing
    file unless ``overwrite``."""
    from ..common.safe_files import atomic_write_bytes, refuse_existing

    out = Path(out)
    for name in datasets:
        refuse_existing(out / name, overwrite)
    encoded = {name: _bytes(ds) for name, ds in datasets.items()}
    out.mkdir(parents=True, exist_ok=True)
    return [atomic_write_bytes(out / name, data, overwrite) for name, data in encoded.items()]


def export_review(out: str | Path, lobes: np.ndarray, reference: sitk.Image, reading: dict, scores: dict,
                  source_files, lobe_provenance: dict | None = None, overwrite: bool = False) -> list[Path]:
    """For the Slicer module: ``lobes.dcm`` and ``findings.dcm`` of the review on screen, from the
    CT's own DICOM files (e.g. ``slicer.dicomDatabase.fileForInstance`` of each UID in the volume
    node's ``DICOM.instanceUIDs``). ``lobes`` is indexed [k, j, i] like ``reference`` (for the
    module: ``logic.cached_lobe_array(segmentation, volume)``, both LPS-oriented)."""
    from .dicom_seg import read_source_series

    require_highdicom("export to DICOM")
    files = [str(f) for f in source_files if f]
    if not files:
        raise DPOInputError("export to DICOM", "the CT was not loaded from DICOM (no source files); "
                            "a DICOM SEG and SR must reference the CT's DICOM UIDs")
    series = read_source_series(files)
    datasets = build_datasets(series, lobes, reference, reading, scores,
                              lobe_provenance or {"method": "Slicer review (segments as edited)"})
    return write_files(out, datasets, overwrite)
