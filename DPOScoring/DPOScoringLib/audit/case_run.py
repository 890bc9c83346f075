"""One case through the whole pipeline (``dpo-score run``): lobes, detection, a reading with every
candidate pending, the scores, and the bundle with its report."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from ..common.progress import Progress, ensure_progress
from ..common.safe_files import check_output_folder
from ..ct.ct_image import load_ct
from ..ct.lung_mask import segment_lungs
from ..detection.candidates import DetectionParams
from ..detection.candidates_file import candidates_document, reading_from_candidates
from ..detection.pipeline import detect_on_ct
from ..lobes.lobe_pipeline import compute_lobes
from ..rules.policy import DEFAULT_POLICY, ScoringPolicy
from ..rules.reading import parse_reading
from ..rules.scoring import score_reading
from .bundle import expected_bundle_bytes, provenance_document, write_bundle
from .report import build_report


def run_case(ct_path: str | Path, out: str | Path, lobe_method: str = "fissures", lobe_source=None,
             weights_dir=None, reader: str = "", case_id: str | None = None,
             policy: ScoringPolicy = DEFAULT_POLICY, params: DetectionParams | None = None,
             overwrite: bool = False, decide=None, progress: Progress | None = None, dicom_out: bool = False) -> Path:
    """``decide``: optional callable(candidates document) -> {candidate id: status}, applied before
    scoring (the demo's simulated reader); each decision is logged in the provenance. ``dicom_out``:
    also ``lobes.dcm`` and ``findings.dcm`` (DICOM input only, checked before any work)."""
    progress = ensure_progress(progress)
    if dicom_out:
        from .dicom_export import require_dicom_input

        require_dicom_input(ct_path)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    case_id = case_id or Path(ct_path).name.split(".")[0]
    # an existing bundle or an unwritable --out is refused before minutes of work, not after
    check_output_folder(out, overwrite, occupied="already holds a bundle")
    progress.step(0.0, f"CT: loading {case_id} ({Path(ct_path).name})")
    ct = load_ct(ct_path)
    check_output_folder(out, overwrite, expected_bundle_bytes(ct.array.size), occupied="already holds a bundle")
    mask = segment_lungs(ct.array, ct.spacing, ct.image.GetOrigin()[0], progress.sub(0.02, 0.3, stage="lungs"))
    lobe_result = compute_lobes(ct, lobe_method, lobe_source, weights_dir, lungs=mask.labels,
                                progress=progress.sub(0.3, 0.5, stage=f"lobes ({lobe_method})"))
    run = detect_on_ct(ct, mask.labels, lobe_result.lobes, mask.airways, params=params,
                       sources={"ct": str(ct_path), "lobes": lobe_result.provenance},
                       progress=progress.sub(0.5, 0.8, stage="detection"))
    warnings = list(dict.fromkeys(run.warnings + mask.warnings + lobe_result.warnings))
    document = candidates_document(ct, run.result, warnings, run.sources, run.lung_volumes_ml)
    statuses = decide(document) if decide else {}
    reading = reading_from_candidates(document, statuses, reader=reader, case_id=case_id)
    reading["decisions"] = [{"time": started, "reader": reader, "id": key, "status": ["pending", value]}
                            for key, value in statuses.items()]
    scores = score_reading(parse_reading(reading), policy)
    parameters = {"detection": document["parameters"], "policy": policy.to_dict(),
                  "lobe_method": lobe_method, "lobes": lobe_result.provenance}
    provenance = provenance_document(ct, parameters, run.sources, lobe_result.provenance, reader,
                                     reading["decisions"], warnings, started)
    progress.step(0.85, "report: overview images, gallery and chart")
    page, figures = build_report(case_id, ct, mask.labels, scores, reading, warnings, provenance)
    extra = {"report.html": page.encode("utf-8"), "candidates.json": _json_bytes(document), **figures}
    if dicom_out:
        from .dicom_export import dicom_results

        progress.step(0.9, f"{case_id}: DICOM SEG and SR")
        files, provenance["dicom_outputs"] = dicom_results(ct, lobe_result.lobes, reading, scores,
                                                           lobe_result.provenance)
        extra.update(files)
    bundle = write_bundle(out, ct, lobe_result.lobes, reading, scores, provenance, overwrite, extra)
    progress.step(1.0, f"bundle: {case_id} written")
    return bundle


def _json_bytes(document) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")
