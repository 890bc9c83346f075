"""Coded concepts of the DICOM exports (``lobes.dcm``, ``findings.dcm``).

Standard codes where DICOM or SNOMED CT has one (lobes, lateralities, measurement names, units,
yes/no); the rest - the lingula, the kinds of finding, the DPO scores and the policy - carry the
project's private coding scheme ``99DPO`` (a ``99`` prefix marks a private scheme in DICOM
PS3.16), declared in each object's Coding Scheme Identification Sequence. Needs pydicom only.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from ..lobes.lobe_files import TERMINOLOGY

PRIVATE_SCHEME = "99DPO"
PRIVATE_SCHEME_NAME = "DPOScoring private codes"
PRIVATE_SCHEME_DOC = "https://github.com/dposcoring/SlicerDPOScoring/blob/main/Docs/formats.md"


def private(value: str, meaning: str) -> Code:
    return Code(value, PRIVATE_SCHEME, meaning)


# The category of the .seg.nrrd (Slicer's DICOM master list) so both files carry the same codes.
ANATOMICAL_STRUCTURE = Code("123037004", "SCT", "Anatomical Structure")
RIGHT = Code("24028007", "SCT", "Right")
LEFT = Code("7771000", "SCT", "Left")
LATERALITY = {"24028007": RIGHT, "7771000": LEFT}

LINGULA_DESCRIPTION = ("Lingula of the left lung (the spec's sixth lobe). The DICOM/SNOMED CT anatomic "
                       "master list has no code for it, so it carries the private code 99DPO LINGULA; "
                       "the left upper lobe segment (LUL) is the upper division without the lingula.")


def lobe_type(code: str) -> tuple[Code, Code | None]:
    """(segmented property type, laterality modifier or None) of a lobe, the .seg.nrrd's codes."""
    value, meaning, modifier, _ = TERMINOLOGY[code]
    scheme = PRIVATE_SCHEME if code == "LING" else "SCT"
    return Code(value, scheme, meaning), (LATERALITY[modifier] if modifier else None)


# --- SR: measurement names, derivations, units --------------------------------------------------
SHORT_AXIS = Code("103340004", "SCT", "Short axis")
LONG_AXIS = Code("103339001", "SCT", "Long axis")
VOLUME = Code("118565006", "SCT", "Volume")
ATTENUATION = Code("112031", "DCM", "Attenuation Coefficient")
MAXIMUM = Code("56851009", "SCT", "Maximum")
MEAN = Code("373098007", "SCT", "Mean")
MM = Code("mm", "UCUM", "mm")
MM3 = Code("mm3", "UCUM", "cubic millimeter")
HU = Code("[hnsf'U]", "UCUM", "Hounsfield unit")
NO_UNITS = Code("1", "UCUM", "no units")
YES = Code("373066001", "SCT", "Yes")
NO = Code("373067005", "SCT", "No")
CT_CHEST = Code("24627-2", "LN", "CT Chest")

FINDING_KINDS = {
    "nodular": private("PO-NODULAR", "Nodular pulmonary ossification"),
    "dendriform": private("PO-DENDRIFORM", "Dendriform pulmonary ossification"),
    "large_calcified": private("CALCIFIED-NODULE", "Calcified nodule, short axis >= 5 mm"),
    "granuloma": private("GRANULOMA", "Calcified granuloma"),
}
ZONE = private("ZONE", "Zone within the lobe")
ZONES = {"pleural": private("ZONE-PLEURAL", "Pleural zone"),
         "cortical": private("ZONE-CORTICAL", "Cortical zone"),
         "medullary": private("ZONE-MEDULLARY", "Medullary zone")}
STATUS = private("STATUS", "Reader decision")
STATUSES = {"confirmed": private("CONFIRMED", "Confirmed by the reader"),
            "pending": private("PENDING", "Pending, not yet decided by the reader")}

DPO_SCORING = private("DPO-SCORING", "Diffuse pulmonary ossification scoring")
NNPOL = private("NNPOL", "Number of nodular POs in the lobe")
RIGHT_TOTAL = private("NNPO-RIGHT", "Number of nodular POs in the right lung")
LEFT_TOTAL = private("NNPO-LEFT", "Number of nodular POs in the left lung")
TOTAL = private("NNPO-TOTAL", "Number of nodular POs in both lungs")
LDO = private("LDO", "Number of lobes with dendriform ossification")
ANS = private("ANS", "Average nodule score")
CS = private("CS", "Coarseness score")
ILD_EXTENT = private("ILD-EXTENT", "ILD extent (sum of the six lobes' extents, 0-18)")
DEF1 = private("DPO-DEF1", "DPO definition 1 met")
DEF2 = private("DPO-DEF2", "DPO definition 2 met")
COMPLETE = private("READING-COMPLETE", "Every finding decided by the reader")
POLICY_NAMES = {"def1": private("POLICY-DEF1", "Variant of DPO definition 1 applied"),
                "def2": private("POLICY-DEF2", "Variant of DPO definition 2 applied"),
                "dendriform_nodules": private("POLICY-DENDNOD", "Nodular POs in a dendriform lobe")}
# code values stay within the 16 characters of a DICOM Code Value (SH)
POLICY_VALUES = {
    ("def1", "default"): private("DEF1-DEFAULT", "R >= 1, L >= 1 and R + L >= 10"),
    ("def1", "total"): private("DEF1-TOTAL", "R + L >= 10"),
    ("def2", "default"): private("DEF2-DEFAULT", "A lobe with NNPOL >= 5, R >= 1 and L >= 1"),
    ("def2", "lobe"): private("DEF2-LOBE", "A lobe with NNPOL >= 5"),
    ("def2", "each-lung"): private("DEF2-EACH-LUNG", "A right and a left lobe with NNPOL >= 5"),
    ("dendriform_nodules", "exclude"): private("DENDNOD-EXCLUDE", "Not counted (a dendriform lobe counts 0)"),
    ("dendriform_nodules", "count"): private("DENDNOD-COUNT", "Counted"),
}


def policy_value(key: str, variant: str) -> Code:
    return POLICY_VALUES[key, variant]


def coding_scheme_identification() -> list[Dataset]:
    """The Coding Scheme Identification Sequence item declaring ``99DPO``."""
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = PRIVATE_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = "DPOScoring contributors"
    return [item]
