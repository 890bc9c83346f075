"""Export to DICOM from the module: the review on screen as ``lobes.dcm`` (Segmentation) and
``findings.dcm`` (TID 1500 SR) referencing the CT series it was loaded from.

Slicer's DICOM module marks a volume it loaded with the attribute ``DICOM.instanceUIDs`` (the SOP
instance UIDs of its slices, space-separated; DICOMScalarVolumePlugin.py, Slicer 5.8-5.12), and its
database gives each UID's file (``slicer.dicomDatabase.fileForInstance``). The widget passes that
function in, so this file needs no GUI (it imports nothing of Qt/CTK/DICOMLib) and runs headless.
The writing itself is ``dicom_export.export_review`` (highdicom).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..audit.dicom_export import DICOM_FILES
from ..common.errors import DPOInputError

INSTANCE_UIDS = "DICOM.instanceUIDs"  # set by Slicer's DICOMScalarVolumePlugin on load
WHAT = "export to DICOM"


def instance_uids(volume) -> list[str]:
    """The volume's DICOM SOP instance UIDs; empty when it was not loaded from DICOM."""
    return (volume.GetAttribute(INSTANCE_UIDS) or "").split() if volume is not None else []


def is_dicom_volume(volume) -> bool:
    return bool(instance_uids(volume))


def source_files(volume, file_for_instance) -> list[str]:
    """The CT's DICOM files, one per UID, via the DICOM database; one-line refusal otherwise."""
    uids = instance_uids(volume)
    name = volume.GetName() if volume is not None else "(none)"
    if not uids:
        raise DPOInputError(WHAT, f"the CT '{name}' was not loaded from Slicer's DICOM database (it has no "
                            f"{INSTANCE_UIDS}); a DICOM SEG and SR must reference the CT's DICOM UIDs")
    files = [str(file_for_instance(uid) or "") for uid in uids]
    missing = sum(1 for f in files if not f or not os.path.isfile(f))
    if missing:
        raise DPOInputError(WHAT, f"{missing} of the {len(uids)} DICOM files of '{name}' are not in Slicer's "
                            "DICOM database or no longer on disk; import the CT series again")
    return files


def require_highdicom_in_slicer() -> None:
    """highdicom (the ``dicom`` extra) is not among the packages the module installs: 0.28 needs
    Python >= 3.10, which Slicer 5.10 and 5.12 have (3.12) and 5.8 has not (3.9)."""
    try:
        import highdicom  # noqa: F401
    except ImportError:
        raise DPOInputError(WHAT, "needs the highdicom package in Slicer's Python (Slicer 5.10 or later): run "
                            "slicer.util.pip_install('highdicom>=0.28') in the Python console") from None


def export_review_dicom(mrml, volume, segmentation, markups, folder, file_for_instance, policy=None,
                        reader: str = "", lobe_method: str = "fissures") -> list[Path]:
    """``lobes.dcm`` and ``findings.dcm`` of the review into ``folder`` (created); refuses before
    writing anything when the CT is not from DICOM, the lobes or the review are missing, or either
    file exists already (never overwritten). The SR's scores are scored from the very reading it
    carries (the reading the results table shows), with the parameter node's policy."""
    from ..audit.dicom_export import export_review
    from ..rules.policy import DEFAULT_POLICY
    from ..rules.reading import parse_reading
    from ..rules.scoring import score_reading

    require_highdicom_in_slicer()
    files = source_files(volume, file_for_instance)
    if segmentation is None:
        raise DPOInputError(WHAT, "needs the lobes: compute or import them first")
    if markups is None:
        raise DPOInputError(WHAT, "needs a review: run Detect or open a review first")
    folder = Path(folder)
    for name in DICOM_FILES:
        if (folder / name).exists():
            raise DPOInputError(str(folder / name), "already exists; not overwritten (move it away first)")
    lobes, image = mrml.cached_lobe_array(segmentation, volume)
    reading = mrml.reading(markups, reader)
    scores = score_reading(parse_reading(reading), policy or DEFAULT_POLICY)
    # the SEG's algorithm: the method that made the lobes; the segments as they are now (edits included)
    provenance = {"method": lobe_method, "reviewed_in": "3D Slicer", "segmentation": segmentation.GetName()}
    return export_review(folder, lobes, image, reading, scores, files, lobe_provenance=provenance,
                         overwrite=False)
