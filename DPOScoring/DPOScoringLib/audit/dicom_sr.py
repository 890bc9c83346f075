"""The findings and scores as a DICOM Comprehensive SR, TID 1500 Measurement Report (``findings.dcm``).

One TID 1410 planar-ROI group per confirmed or pending finding: a POINT on the CT slice nearest to
the finding's centre, the kind of finding, the lobe, short and long axis, volume, peak and mean HU,
zone and the reader's decision. One TID 1501 group for the case: NNPOL per lobe, right, left and
total counts, LDO, ANS, CS, ILD extent, DPO definitions 1 and 2 with the policy applied, and
whether every finding is decided. The reader is the person observer, DPOScoring the device
observer. The content tree is documented in Docs/formats.md. Built with highdicom.
"""

from __future__ import annotations

import numpy as np

from .. import __version__
from ..common.anatomy import BY_CODE
from . import dicom_codes as dc
from .dicom_seg import MANUFACTURER, MODEL, SourceSeries, person_name

REPORTED_STATUSES = ("confirmed", "pending")


def slice_point(series: SourceSeries, lps) -> tuple[int, float, float]:
    """(index of the slice nearest to ``lps``, column, row) as SCOORD image coordinates of that
    slice: the top-left corner of the top-left pixel is (0, 0), its centre (0.5, 0.5)."""
    point = np.asarray(lps, dtype=float)
    first = series.datasets[0]
    orientation = np.array(first.ImageOrientationPatient, dtype=float)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in series.datasets])
    index = int(np.argmin(np.abs((point - positions) @ normal)))
    dataset = series.datasets[index]
    offset = point - positions[index]
    row_spacing, column_spacing = (float(v) for v in dataset.PixelSpacing)
    return index, float(offset @ row_dir / column_spacing + 0.5), float(offset @ col_dir / row_spacing + 0.5)


def _site(lobe_code: str):
    import highdicom as hd

    if lobe_code not in BY_CODE:
        return []
    anatomy, laterality = dc.lobe_type(lobe_code)
    return [hd.sr.FindingSite(anatomic_location=anatomy, laterality=laterality)]


def _measurement(name, value, unit, derivation=None, sites=None):
    import highdicom as hd

    return hd.sr.Measurement(name=name, value=float(value), unit=unit, derivation=derivation,
                             finding_sites=sites or None)


def _evaluation(name, value):
    import highdicom as hd

    return hd.sr.QualitativeEvaluation(name=name, value=value)


def finding_group(series: SourceSeries, finding: dict):
    """TID 1410 with a POINT on the nearest CT slice; TID 1501 (no region) for a finding that has
    no position (a reading typed by hand), so that every confirmed or pending finding is reported."""
    import highdicom as hd

    measurements = []
    for key, name, unit, derivation in (("short_axis_mm", dc.SHORT_AXIS, dc.MM, None),
                                        ("long_axis_mm", dc.LONG_AXIS, dc.MM, None),
                                        ("volume_mm3", dc.VOLUME, dc.MM3, None),
                                        ("peak_hu", dc.ATTENUATION, dc.HU, dc.MAXIMUM),
                                        ("mean_hu", dc.ATTENUATION, dc.HU, dc.MEAN)):
        if finding.get(key) is not None:
            measurements.append(_measurement(name, finding[key], unit, derivation))
    evaluations = [_evaluation(dc.STATUS, dc.STATUSES[finding["status"]])]
    if finding.get("zone") in dc.ZONES:
        evaluations.append(_evaluation(dc.ZONE, dc.ZONES[finding["zone"]]))
    common = {"tracking_identifier": hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"finding {finding['id']}"),
              "finding_type": dc.FINDING_KINDS[finding["kind"]], "finding_sites": _site(finding["lobe"]),
              "measurements": measurements, "qualitative_evaluations": evaluations}
    if not finding.get("lps"):
        return hd.sr.MeasurementsAndQualitativeEvaluations(**common)
    index, column, row = slice_point(series, finding["lps"])
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POINT, graphic_data=np.array([[column, row]]),
        source_image=hd.sr.SourceImageForRegion.from_source_image(series.datasets[index]))
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_region=region, **common)


def case_group(scores: dict):
    import highdicom as hd

    measurements = [_measurement(dc.NNPOL, scores["nnpol"][code], dc.NO_UNITS, sites=_site(code))
                    for code in BY_CODE]
    for key, name in (("right_total", dc.RIGHT_TOTAL), ("left_total", dc.LEFT_TOTAL), ("total", dc.TOTAL),
                      ("ldo", dc.LDO), ("ans", dc.ANS), ("coarseness_score", dc.CS),
                      ("ild_extent", dc.ILD_EXTENT)):
        if scores.get(key) is not None:  # ANS and CS are undefined in some cases: left out, not faked
            measurements.append(_measurement(name, scores[key], dc.NO_UNITS))
    evaluations = [_evaluation(dc.DEF1, dc.YES if scores["dpo_def1"] else dc.NO),
                   _evaluation(dc.DEF2, dc.YES if scores["dpo_def2"] else dc.NO),
                   _evaluation(dc.COMPLETE, dc.YES if scores["complete"] else dc.NO)]
    for key, name in dc.POLICY_NAMES.items():
        evaluations.append(_evaluation(name, dc.policy_value(key, scores["policy"][key])))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="DPO scores"),
        finding_type=dc.DPO_SCORING, measurements=measurements, qualitative_evaluations=evaluations,
        algorithm_id=hd.sr.AlgorithmIdentification(name=MODEL, version=__version__))


def observation_context(reader: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[MODEL, __version__]), name=MODEL,
            manufacturer_name=MANUFACTURER, model_name=f"{MODEL} {__version__}"))
    name = person_name(reader)
    person = None if name is None else hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=name))
    return hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device)


def build_findings_report(series: SourceSeries, reading: dict, scores: dict, series_number: int = 902,
                          extra_evidence=()):
    """A highdicom ComprehensiveSR holding the Measurement Report of one case."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    findings = [f for f in reading["findings"] if f.get("status") in REPORTED_STATUSES]
    groups = [finding_group(series, finding) for finding in findings] + [case_group(scores)]
    report = hd.sr.MeasurementReport(observation_context=observation_context(reading.get("reader", "")),
                                     procedure_reported=dc.CT_CHEST, imaging_measurements=groups,
                                     title=codes.cid7021.ImagingMeasurementReport)
    sr = hd.sr.ComprehensiveSR(
        evidence=list(series.datasets) + list(extra_evidence), content=report, series_instance_uid=hd.UID(),
        series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        is_complete=bool(scores.get("complete")), is_final=False, is_verified=False,
        series_description="DPO findings and scores")
    sr.CodingSchemeIdentificationSequence = dc.coding_scheme_identification()
    return sr
