"""Lobe label maps and Slicer segmentations on disk: reading any supported source, mapping it to
the spec's six lobes, and writing the label map (values 1-6) and a ``.seg.nrrd`` with six named,
coloured segments carrying standard terminology codes.

Sources: lungmask LTRCLobes label maps (1 LUL with lingula, 2 LLL, 3 RUL, 4 RML, 5 RLL),
TotalSegmentator's ``total`` task (10 LUL, 11 LLL, 12 RUL, 13 RML, 14 RLL) or its per-structure
files (``lung_upper_lobe_left.nii.gz`` ...), our own label maps (1-6), and ``.seg.nrrd`` files
whose segment names are recognisable. A left upper lobe without a separate lingula is split by
``lingula_split``. Anything that cannot be mapped is reported by name.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..common.anatomy import LOBES
from ..common.errors import DPOInputError
from ..ct.label_maps import read_image_file

PROVENANCE_SCHEMA = "dpo-lobe-provenance/1"  # how the lobes were made (lobes --provenance-out)

LUNGMASK_LTRC = {1: "LUL+", 2: "LLL", 3: "RUL", 4: "RML", 5: "RLL"}
TOTALSEGMENTATOR_TOTAL = {10: "LUL+", 11: "LLL", 12: "RUL", 13: "RML", 14: "RLL"}
OWN_LABELS = {lobe.label: lobe.code for lobe in LOBES}
TOTALSEGMENTATOR_FILES = {"lung_upper_lobe_left": "LUL+", "lung_lower_lobe_left": "LLL",
                          "lung_upper_lobe_right": "RUL", "lung_middle_lobe_right": "RML",
                          "lung_lower_lobe_right": "RLL"}
CODE_LABEL = {lobe.code: lobe.label for lobe in LOBES} | {"LUL+": 4}

# SNOMED CT codes as in Slicer's DICOM master terminology; the lingula has no entry there, so it
# carries a private (99DPO) code rather than a guessed one.
TERMINOLOGY = {
    "RUL": ("45653009", "Upper lobe of lung", "24028007", "Right"),
    "RML": ("72481006", "Middle lobe of right lung", None, None),
    "RLL": ("90572001", "Lower lobe of lung", "24028007", "Right"),
    "LUL": ("45653009", "Upper lobe of lung", "7771000", "Left"),
    "LING": ("LINGULA", "Lingula of left lung", None, None),
    "LLL": ("90572001", "Lower lobe of lung", "7771000", "Left"),
}


def _words(name: str) -> set[str]:
    return set(re.findall(r"[a-z]+", name.lower().replace("_", " ")))


def lobe_code_for_name(name: str) -> str | None:
    """Our lobe code for a segment or file name, ``LUL+`` for a left upper lobe that may include
    the lingula, or None when the name is not recognisable."""
    words = _words(name)
    compact = re.sub(r"[^a-z]", "", name.lower())
    if compact in {"rul", "rml", "rll", "lul", "ling", "lll", "lingula"}:
        return {"lingula": "LING"}.get(compact, compact.upper())
    if "lingula" in words or "lingular" in words:
        return "LING"
    right = bool(words & {"right", "dexter", "r"})
    left = bool(words & {"left", "sinister", "l"})
    if right == left:
        return None
    if words & {"upper", "superior"}:
        return "RUL" if right else ("LUL" if "division" in words or "without" in words else "LUL+")
    if words & {"middle"}:
        return "RML" if right else None
    if words & {"lower", "inferior"}:
        return "RLL" if right else "LLL"
    return None


def _segment_table(path: Path) -> list[dict]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    keys = set(reader.GetMetaDataKeys())
    segments = []
    index = 0
    while f"Segment{index}_Name" in keys:
        def get(field, i=index):
            key = f"Segment{i}_{field}"
            return reader.GetMetaData(key) if key in keys else ""
        segments.append({"name": get("Name"), "label": int(get("LabelValue") or index + 1),
                         "layer": int(get("Layer") or 0)})
        index += 1
    return segments


def read_lobe_source(path: str | Path, numbering: str = "auto") -> tuple[sitk.Image, dict[int, str], str]:
    """(label image, value -> code or ``LUL+``, description of the source). Values 1-5 without
    6 are read as lungmask's numbering unless ``numbering="dpo"``. Raises a ``DPOInputError``
    naming every segment or value that cannot be mapped."""
    path = Path(path)
    if path.is_dir():
        return _read_totalsegmentator_folder(path)
    if not path.is_file():
        raise DPOInputError(str(path), "no such file")
    if path.name.endswith(".seg.nrrd"):
        segments = _segment_table(path)
        if not segments:
            raise DPOInputError(str(path), "holds no segments")
        if len({s["layer"] for s in segments}) > 1:
            raise DPOInputError(str(path), "has overlapping segments in several layers; merge them first")
        mapping, unmapped = {}, []
        for segment in segments:
            code = lobe_code_for_name(segment["name"])
            if code is None:
                unmapped.append(segment["name"])
            else:
                mapping[segment["label"]] = code
        if unmapped:
            names = ", ".join(map(repr, unmapped))
            raise DPOInputError(str(path), f"segments not recognised as lobes: {names} "
                                "(name them e.g. 'right upper lobe' or 'lingula')")
        return read_image_file(path, str(path)), mapping, "Slicer segmentation (segment names)"
    image = read_image_file(path, str(path))
    values = set(np.unique(sitk.GetArrayViewFromImage(image)).astype(int).tolist()) - {0}
    if values and values <= set(TOTALSEGMENTATOR_TOTAL):
        return image, {v: TOTALSEGMENTATOR_TOTAL[v] for v in values}, "TotalSegmentator total task (10-14)"
    if values and values <= set(OWN_LABELS) and (numbering == "dpo" or 6 in values):
        return image, {v: OWN_LABELS[v] for v in values}, "DPOScoring label map (1-6)"
    if values and values <= set(LUNGMASK_LTRC):
        return image, {v: LUNGMASK_LTRC[v] for v in values}, "lungmask LTRCLobes label map (1-5)"
    raise DPOInputError(str(path), f"label values {sorted(values)[:10]} match no known lobe numbering "
                        "(1-6 DPOScoring, 1-5 lungmask LTRCLobes, 10-14 TotalSegmentator)")


def _read_totalsegmentator_folder(folder: Path):
    found = {}
    for stem, code in TOTALSEGMENTATOR_FILES.items():
        for suffix in (".nii.gz", ".nii", ".nrrd"):
            if (folder / f"{stem}{suffix}").is_file():
                found[code] = folder / f"{stem}{suffix}"
    if not found:
        raise DPOInputError(str(folder), "holds none of TotalSegmentator's lobe files "
                            f"({', '.join(s + '.nii.gz' for s in TOTALSEGMENTATOR_FILES)})")
    first = next(iter(found.values()))
    reference = read_image_file(first, str(first))
    combined = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.uint8)
    mapping = {}
    for value, (code, file) in enumerate(sorted(found.items()), start=1):
        structure = read_image_file(file, str(file))  # held while its view is read: a view does not keep
        combined[sitk.GetArrayViewFromImage(structure) > 0] = value  # its image alive (freed memory read)
        mapping[value] = code
    image = sitk.GetImageFromArray(combined)
    image.CopyInformation(reference)
    return image, mapping, "TotalSegmentator per-structure files"


def to_spec_labels(array: np.ndarray, mapping: dict[int, str]) -> tuple[np.ndarray, bool]:
    """(uint8 array with the spec's values, whether the left upper lobe still holds the lingula)."""
    lookup = np.zeros(max(mapping) + 1 if mapping else 1, dtype=np.uint8)
    for value, code in mapping.items():
        lookup[value] = CODE_LABEL[code]
    clipped = np.where(array <= len(lookup) - 1, array, 0).astype(np.intp)
    needs_split = "LUL+" in mapping.values() and "LING" not in mapping.values()
    return lookup[clipped], needs_split


def write_label_map(path: str | Path, lobes: np.ndarray, reference: sitk.Image) -> Path:
    image = sitk.GetImageFromArray(lobes.astype(np.uint8))
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(path), useCompression=True)
    return Path(path)


def terminology_tag(code: str) -> str:
    value, meaning, modifier, modifier_meaning = TERMINOLOGY[code]
    scheme = "99DPO" if code == "LING" else "SCT"
    modifier_part = f"SCT^{modifier}^{modifier_meaning}" if modifier else "^^"
    return ("Segmentation category and type - DICOM master list~SCT^123037004^Anatomical Structure~"
            f"{scheme}^{value}^{meaning}~{modifier_part}~Anatomic codes - DICOM master list~^^~^^|")


def write_segmentation(path: str | Path, lobes: np.ndarray, reference: sitk.Image) -> Path:
    """A Slicer ``.seg.nrrd``: one layer, six segments named and coloured, with terminology."""
    image = sitk.GetImageFromArray(lobes.astype(np.uint8))
    image.CopyInformation(reference)
    for index, lobe in enumerate(LOBES):
        prefix = f"Segment{index}_"
        present = np.argwhere(lobes == lobe.label)
        if present.size == 0:
            extent = "0 -1 0 -1 0 -1"
        else:
            low, high = present.min(axis=0)[::-1], present.max(axis=0)[::-1]
            extent = " ".join(f"{lo} {hi}" for lo, hi in zip(low, high))
        for key, value in (("ID", f"Segment_{lobe.code}"), ("Name", lobe.name), ("NameAutoGenerated", "0"),
                           ("Color", " ".join(f"{c:.4f}" for c in lobe.color)), ("ColorAutoGenerated", "0"),
                           ("LabelValue", str(lobe.label)), ("Layer", "0"), ("Extent", extent),
                           ("Tags", f"TerminologyEntry:{terminology_tag(lobe.code)}")):
            image.SetMetaData(prefix + key, value)
    image.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    image.SetMetaData("Segmentation_ContainedRepresentationNames", "Binary labelmap|")
    image.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")
    sitk.WriteImage(image, str(path), useCompression=True)
    return Path(path)
