"""The source DICOM series of a CT and the lobes as a DICOM Segmentation (``lobes.dcm``).

The CT loader (``ct_image.load_ct``) keeps the series' UIDs and its SHA-256 but not the headers a
SEG must copy (patient, study, frame of reference, per-slice geometry), so they are read here with
pydicom from the very files the loader read (same GDCM series order; the checksum must match).
Built with highdicom; nothing is encoded by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..common.anatomy import LOBES
from ..common.errors import DPOInputError
from ..ct.ct_image import Geometry, sha256_of_files
from .dicom_codes import ANATOMICAL_STRUCTURE, LINGULA_DESCRIPTION, coding_scheme_identification, lobe_type

MANUFACTURER = "DPOScoring contributors"
MODEL = "DPOScoring"


@dataclass
class SourceSeries:
    """The CT series' datasets (headers only) and their files, sorted along the slice normal."""

    files: list[str]
    datasets: list

    @property
    def series_uid(self) -> str:
        return str(self.datasets[0].SeriesInstanceUID)

    def grid(self) -> sitk.Image:
        """An empty image with the series' own voxel grid: i along the rows (columns index), j
        down the columns (rows index), k along the slice normal, origin at the first slice."""
        first = self.datasets[0]
        orientation = np.array(first.ImageOrientationPatient, dtype=float)
        normal = np.cross(orientation[:3], orientation[3:])
        positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in self.datasets])
        steps = np.diff(positions @ normal)
        row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
        image = sitk.Image(int(first.Columns), int(first.Rows), len(self.datasets), sitk.sitkUInt8)
        image.SetOrigin(tuple(positions[0]))
        image.SetSpacing((column_spacing, row_spacing, float(np.mean(steps)) if len(steps) else 1.0))
        image.SetDirection(tuple(np.column_stack([orientation[:3], orientation[3:], normal]).ravel()))
        return image


def series_files(folder: str | Path, series_uid: str) -> list[str]:
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid))
    if not files:
        raise DPOInputError(str(folder), f"holds no DICOM series {series_uid}")
    return files


def read_source_series(files, series_uid: str | None = None, sha256: str | None = None) -> SourceSeries:
    """Headers of a CT series' files (a list, e.g. from Slicer's DICOM database, or the GDCM file
    list of a folder), sorted along the slice normal and checked to form one regular grid.
    ``sha256`` (the loader's, over the files in GDCM order) guards against a changed folder."""
    import pydicom

    files = [str(f) for f in files]
    if sha256 and sha256_of_files(files) != sha256:
        raise DPOInputError(str(Path(files[0]).parent), f"DICOM series {series_uid} changed since the CT was "
                            "loaded (checksum differs); run again")
    datasets = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
    series_uid = series_uid or str(datasets[0].get("SeriesInstanceUID", ""))
    first = datasets[0]
    for path, ds in zip(files, datasets):
        if str(ds.get("SeriesInstanceUID", "")) != series_uid or "ImagePositionPatient" not in ds:
            raise DPOInputError(path, f"is not a positioned slice of the CT series {series_uid}")
        if (ds.get("ImageOrientationPatient") != first.get("ImageOrientationPatient")
                or ds.get("PixelSpacing") != first.get("PixelSpacing")
                or (ds.Rows, ds.Columns) != (first.Rows, first.Columns)):
            raise DPOInputError(path, "differs in orientation, pixel spacing or size from the series' other "
                                "slices; a DICOM SEG needs one regular grid")
    orientation = np.array(first.ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    order = np.argsort([np.dot(np.array(ds.ImagePositionPatient, dtype=float), normal) for ds in datasets],
                       kind="stable")
    series = SourceSeries([files[i] for i in order], [datasets[i] for i in order])
    steps = np.diff([np.dot(np.array(ds.ImagePositionPatient, dtype=float), normal) for ds in series.datasets])
    if len(steps) and (steps.min() <= 0 or steps.max() - steps.min() > 1e-3 * max(1.0, steps.max())):
        raise DPOInputError(str(Path(files[0]).parent), "slices of the series are not evenly spaced; "
                            "a DICOM SEG of the lobes needs one regular grid")
    return series


def lobes_on_series(lobes: np.ndarray, reference: sitk.Image, series: SourceSeries) -> np.ndarray:
    """The lobe map (an array indexed [k, j, i] like ``reference``, e.g. the LPS-oriented CT) on
    the series' own grid: frame k belongs to ``series.datasets[k]``, rows and columns as stored.
    A permutation and flips, never a resampling; a lobe map on any other grid is refused."""
    grid = series.grid()
    if tuple(lobes.shape) != tuple(reference.GetSize())[::-1]:
        raise DPOInputError("lobes", f"array of shape {tuple(lobes.shape)} is not the DICOM series' grid "
                            f"{Geometry.of(grid).describe()}")
    image = sitk.GetImageFromArray(lobes.astype(np.uint8))
    image.CopyInformation(reference)
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(grid.GetDirection())
    back = sitk.DICOMOrient(image, code)
    if not Geometry.of(back).matches(Geometry.of(grid)):
        raise DPOInputError("lobes", f"grid {Geometry.of(back).describe()} is not the DICOM series' "
                            f"{Geometry.of(grid).describe()}")
    return sitk.GetArrayFromImage(back)


def _algorithm(lobe_provenance: dict):
    """(algorithm type, AlgorithmIdentificationSequence) for the lobe method, with its provenance."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    method = lobe_provenance.get("method", "fissures")
    if method == "lungmask":
        family, kind = codes.cid7162.ArtificialIntelligence, "AUTOMATIC"
    elif method == "import":
        source = str(lobe_provenance.get("format", ""))
        learned = "lungmask" in source or "TotalSegmentator" in source
        family = codes.cid7162.ArtificialIntelligence if learned else codes.cid7162.ManualProcessing
        kind = "SEMIAUTOMATIC"
    else:  # thin-plate spline fissure surfaces through control points (Docs/lobes.md)
        family = codes.cid7162.DeformableModels
        kind = "SEMIAUTOMATIC" if lobe_provenance.get("points") == "given" else "AUTOMATIC"
    parameters = {str(k): str(v)[:64] for k, v in lobe_provenance.items() if not isinstance(v, (dict, list))}
    for key, value in lobe_provenance.items():
        if isinstance(value, dict):
            parameters[str(key)] = ", ".join(f"{a}={b}" for a, b in value.items())[:64]
    sequence = hd.AlgorithmIdentificationSequence(name=f"DPOScoring lobes ({method})", family=family,
                                                  version=__version__, source=MANUFACTURER,
                                                  parameters=parameters)
    return kind, sequence


def build_lobe_segmentation(series: SourceSeries, labels: np.ndarray, lobe_provenance: dict,
                            reader: str = "", series_number: int = 901):
    """A highdicom Segmentation of the six lobes (segment number = label value 1-6) on the series.
    ``labels`` is in series order (see ``lobes_in_series_order``)."""
    import highdicom as hd
    from pydicom.uid import ExplicitVRLittleEndian

    rows, columns = int(series.datasets[0].Rows), int(series.datasets[0].Columns)
    if labels.shape != (len(series.datasets), rows, columns):
        raise DPOInputError("lobes", f"shape {labels.shape} does not match the series' "
                            f"{len(series.datasets)} slices of {rows}x{columns}")
    kind, algorithm = _algorithm(lobe_provenance)
    descriptions = []
    for lobe in LOBES:
        property_type, modifier = lobe_type(lobe.code)
        description = hd.seg.SegmentDescription(
            segment_number=lobe.label, segment_label=lobe.name, segmented_property_category=ANATOMICAL_STRUCTURE,
            segmented_property_type=property_type, algorithm_type=kind, algorithm_identification=algorithm,
            tracking_id=f"lobe {lobe.code}", tracking_uid=hd.UID(),
            display_color=hd.color.CIELabColor.from_rgb(*(round(255 * c) for c in lobe.color)))
        if modifier is not None:
            item = hd.sr.CodedConcept(modifier.value, modifier.scheme_designator, modifier.meaning)
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [item]
        if lobe.code == "LING":
            description.SegmentDescription = LINGULA_DESCRIPTION
        descriptions.append(description)
    seg = hd.seg.Segmentation(
        source_images=series.datasets, pixel_array=labels.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name=MODEL,
        software_versions=__version__, device_serial_number="none",
        content_description="Six lung lobes (lingula separate) for DPO scoring",
        content_label="LOBES", content_creator_name=person_name(reader),
        series_description="DPO lobes", transfer_syntax_uid=ExplicitVRLittleEndian)
    seg.CodingSchemeIdentificationSequence = coding_scheme_identification()
    return seg


def person_name(reader: str) -> str | None:
    """A reader id as a DICOM person name (the family-name component, the trailing caret saying so),
    or None when unknown."""
    text = "".join(ch for ch in reader if ch not in "^=\\\n\r").strip()[:60]
    return f"{text}^" if text else None
