"""The ``dpo-candidates/1`` file: detected candidates with the input's checksum, parameters and
warnings, so an auditor can reproduce the list."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..common.errors import DPOInputError
from ..common.safe_files import atomic_write_json
from ..rules.reading import load_json_file

if TYPE_CHECKING:  # detection needs scipy & co, which Slicer installs only on first use
    from ..ct.ct_image import CTVolume
    from .candidates import DetectionResult

CANDIDATES_SCHEMA = "dpo-candidates/1"
REQUIRED_KEYS = ("id", "lps", "ijk", "lung", "lobe", "kind", "short_axis_mm", "long_axis_mm",
                 "volume_mm3", "peak_hu", "mean_hu", "zone", "status")


def candidates_document(ct: CTVolume, result: DetectionResult, warnings: list[str], sources: dict,
                        lung_volumes_ml: dict | None = None) -> dict:
    return {
        "schema": CANDIDATES_SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "engine": {"name": "DPOScoring", "version": __version__},
        "input": ct.provenance(),
        "sources": sources,
        "parameters": {**result.parameters, "contrast_mode": result.contrast},
        "warnings": list(warnings),
        "lung_volumes_ml": lung_volumes_ml or {},
        "detection_seconds": round(result.seconds, 3),
        "structures_examined": result.structures_examined,
        "candidates": [c.to_dict() for c in result.candidates],
        "excluded": result.excluded,
    }


def write_candidates(path: str | Path, document: dict, overwrite: bool = False) -> Path:
    return atomic_write_json(path, document, overwrite=overwrite)


def load_candidates(path: str | Path) -> dict:
    document = load_json_file(path, "candidates file")
    if not isinstance(document, dict) or document.get("schema") != CANDIDATES_SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise DPOInputError(f"{path}: schema", f"{found!r} is not {CANDIDATES_SCHEMA!r}")
    if not isinstance(document.get("candidates"), list):
        raise DPOInputError(f"{path}: candidates", "must be a list")
    for index, candidate in enumerate(document["candidates"]):
        missing = [key for key in REQUIRED_KEYS if key not in candidate]
        if missing:
            raise DPOInputError(f"{path}: candidates[{index}]", f"lacks {', '.join(missing)}")
    return document


_CARRIED = ("lps", "ijk", "lung", "short_axis_mm", "long_axis_mm", "volume_mm3", "peak_hu", "mean_hu",
            "confidence", "distance_to_pleura_mm", "slices")


def reading_from_candidates(document: dict, statuses: dict[str, str] | None = None,
                            reader: str = "", case_id: str = "") -> dict:
    """A ``dpo-reading/1`` document holding every candidate as a finding, with the status the
    reader gave it (``statuses`` by candidate id; pending otherwise)."""
    statuses = statuses or {}
    findings = []
    for candidate in document["candidates"]:
        finding = {"id": candidate["id"], "lobe": candidate["lobe"], "kind": candidate["kind"],
                   "status": statuses.get(candidate["id"], candidate.get("status", "pending")),
                   "zone": candidate.get("zone"), "source": candidate.get("source", "detected")}
        finding.update({key: candidate[key] for key in _CARRIED if candidate.get(key) is not None})
        findings.append(finding)
    return {"schema": "dpo-reading/1", "case_id": case_id, "reader": reader,
            "ct": {"source": document["input"]["source"], "sha256": document["input"]["sha256"]},
            "findings": findings, "lobes": {}}
