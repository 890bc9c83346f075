"""The case bundle: one folder per case from which an auditor can re-derive every number.

``lobes.seg.nrrd`` and ``lobes.nrrd`` (values 1-6), ``candidates.mrk.json`` (Slicer markups, each
control point's description holding the candidate's record and status), ``findings.csv``,
``reading.json`` (the engine's input), ``scores.json`` (its output) and ``provenance.json``
(software version, every parameter, input checksums, DICOM UIDs, lobe method, reader, time stamps
and the decision log). The bundle is written into a temporary sibling folder and renamed into
place, so it is complete or absent; an existing bundle is never replaced silently.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import platform
import shutil
from pathlib import Path

import numpy as np

from .. import __version__
from ..common.errors import DPOInputError, DPOOutputError
from ..common.safe_files import apply_file_mode, expected_label_map_bytes, write_failure
from ..lobes.lobe_files import lobe_volumes_ml, write_label_map, write_segmentation

BUNDLE_FILES = ("lobes.seg.nrrd", "lobes.nrrd", "candidates.mrk.json", "findings.csv", "reading.json",
                "scores.json", "provenance.json")
MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
                  "Schema/markups-schema-v1.0.4.json#")
FINDING_COLUMNS = ("id", "status", "kind", "lobe", "lung", "zone", "short_axis_mm", "long_axis_mm", "volume_mm3",
                   "peak_hu", "mean_hu", "distance_to_pleura_mm", "source", "x_lps", "y_lps", "z_lps")


def expected_bundle_bytes(voxels: int) -> int:
    """A generous size of a bundle for a CT of ``voxels`` voxels: two compressed label maps, the
    report and its figures (the demo's bundle, 12.4 M voxels, is 0.8 MB)."""
    return 2 * expected_label_map_bytes(voxels) + (4 << 20)


def markups_document(findings: list[dict], name: str = "DPO candidates") -> dict:
    """Slicer's markups JSON (LPS), one locked control point per finding."""
    points = [{"id": str(number), "label": f["id"], "description": json.dumps(f), "associatedNodeID": "",
               "position": [float(v) for v in f["lps"]], "orientation": [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],
               "selected": f.get("status") == "pending", "locked": True,
               "visibility": f.get("status") != "rejected", "positionStatus": "defined"}
              for number, f in enumerate(findings, start=1)]
    return {"@schema": MARKUPS_SCHEMA, "markups": [{
        "type": "Fiducial", "name": name, "coordinateSystem": "LPS", "coordinateUnits": "mm", "locked": True,
        "labelFormat": "%N-%d", "controlPoints": points, "measurements": []}]}


def findings_csv(findings: list[dict]) -> str:
    stream = io.StringIO()
    writer = csv.writer(stream)
    writer.writerow(FINDING_COLUMNS)
    for finding in findings:
        x, y, z = finding.get("lps") or ("", "", "")
        row = {**finding, "x_lps": x, "y_lps": y, "z_lps": z}
        writer.writerow([row.get(column, "") for column in FINDING_COLUMNS])
    return stream.getvalue()


def provenance_document(ct, parameters: dict, sources: dict, lobe_provenance: dict, reader: str,
                        decisions: list, warnings: list, started: str) -> dict:
    return {
        "schema": "dpo-provenance/1",
        "software": {"name": "DPOScoring", "version": __version__, "python": platform.python_version(),
                     "platform": platform.platform()},
        "input": ct.provenance(),
        "sources": sources,
        "parameters": parameters,
        "lobes": lobe_provenance,
        "reader": reader,
        "started": started,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "warnings": warnings,
        "decisions": decisions,
    }


def write_bundle(folder: str | Path, ct, lobes: np.ndarray, reading: dict, scores: dict, provenance: dict,
                 overwrite: bool = False, extra_files: dict[str, bytes] | None = None) -> Path:
    """Writes the bundle atomically (temporary sibling folder, then rename). A failure while
    writing (a full disk) removes the temporary folder and raises ``DPOOutputError``: the bundle
    is complete or absent, and an existing one is untouched."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DPOOutputError(str(folder), "is a file; a folder is expected for the bundle")
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise DPOInputError(str(folder), "already holds a bundle; not overwritten (use --force to replace it)")
    partial = folder.with_name(f".{folder.name}.partial")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir()
        _write_contents(partial, ct, lobes, reading, scores, provenance, extra_files or {})
    except (OSError, RuntimeError) as error:  # SimpleITK reports a failed write as RuntimeError
        shutil.rmtree(partial, ignore_errors=True)
        raise write_failure(folder, error) from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if folder.exists():
        old = folder.with_name(f".{folder.name}.replaced")
        folder.rename(old)
        partial.rename(folder)
        shutil.rmtree(old)
    else:
        partial.rename(folder)
    return folder


def _write_contents(partial: Path, ct, lobes: np.ndarray, reading: dict, scores: dict, provenance: dict,
                    extra_files: dict[str, bytes]) -> None:
    write_segmentation(partial / "lobes.seg.nrrd", lobes, ct.image)
    write_label_map(partial / "lobes.nrrd", lobes, ct.image)
    findings = reading["findings"]
    text = {
        "candidates.mrk.json": json.dumps(markups_document(findings), indent=2),
        "findings.csv": findings_csv(findings),
        "reading.json": json.dumps(reading, indent=2),
        "scores.json": json.dumps({**scores, "lobe_volumes_ml": lobe_volumes_ml(lobes, ct.spacing)}, indent=2),
        "provenance.json": json.dumps(provenance, indent=2),
    }
    for name, content in text.items():
        (partial / name).write_text(content + ("\n" if not content.endswith("\n") else ""), encoding="utf-8")
    for name, content in extra_files.items():
        target = (partial / name).resolve()
        if partial.resolve() not in target.parents:
            raise ValueError(f"bundle file name {name!r} leaves the bundle folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    for path in partial.rglob("*"):
        if path.is_file():
            apply_file_mode(path)  # one policy (the user's umask) whatever wrote the file
