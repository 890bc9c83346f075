"""Loading a chest CT (NRRD, NIfTI, MHA/MHD, DICOM series folder) and checking it is usable.

Errors (``DPOInputError``) name the file and what is wrong: a file type that is not what its
name says, a truncated or damaged file, not 3-D, not scalar, DICOM modality not CT, missing,
zero or impossible spacing, a field of view larger than a body, NaN/Inf voxels, values that
look un-rescaled (see ``ct_file_checks.py``). Warnings travel into every output: slices
thicker than 1.5 mm, slice gaps or non-uniform DICOM slice spacing (``ct_slices.py``), a body
too small for an adult chest at the declared spacing, contrast enhancement (added by the
pipeline once the lungs are known, see ``contrast.py``).
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..common.errors import DPOInputError
from .ct_file_checks import (
    check_complete,
    check_header_geometry,
    nonfinite_error,
    read_error,
    sniff,
)
from .ct_slices import SliceLayout, dicom_slice_layout

THIN_SECTION_MAX_MM = 1.5
THICK_SLICE_WARNING = ("slice thickness {thickness:.2f} mm > 1.5 mm: thin-section CT recommended; "
                       "POs < 4 mm may be missed")
HU_RANGE = (-1024, 3071)
# An adult chest is 250-400 mm wide (a small adult about 240 mm); a whole body (not cut by the
# field of view) narrower than this at the declared spacing suggests a resampled image whose
# spacing was not updated, e.g. downsampled 4x but still labelled 1 mm.
SMALL_BODY_WARNING_MM = 160.0
BODY_HU = -400.0


@dataclass(frozen=True)
class Geometry:
    """Where an image's voxels are: size (i, j, k), spacing, origin and direction (LPS)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    # True slice positions of a DICOM series with gaps or uneven steps: slice k lies this many mm
    # from the origin along the k axis (None: k x spacing, a regular grid)
    slice_offsets_mm: tuple[float, ...] | None = None

    @classmethod
    def of(cls, image: sitk.Image) -> Geometry:
        return cls(tuple(image.GetSize()), tuple(image.GetSpacing()), tuple(image.GetOrigin()),
                   tuple(image.GetDirection()))

    def _matrix(self) -> np.ndarray:
        return np.array(self.direction).reshape(3, 3) @ np.diag(self.spacing)

    def _true_k(self, k: float) -> float:
        """The regular-grid index whose position is that of (continuous) slice ``k``."""
        if self.slice_offsets_mm is None:
            return k
        offsets = np.asarray(self.slice_offsets_mm)
        step = self.spacing[2]
        if k < 0:
            return (offsets[0] + k * step) / step
        if k > len(offsets) - 1:
            return (offsets[-1] + (k - len(offsets) + 1) * step) / step
        return float(np.interp(k, np.arange(len(offsets)), offsets)) / step

    def _slice_k(self, grid_k: float) -> float:
        """Inverse of ``_true_k``."""
        if self.slice_offsets_mm is None:
            return grid_k
        offsets = np.asarray(self.slice_offsets_mm)
        step = self.spacing[2]
        mm = grid_k * step
        if mm < offsets[0]:
            return (mm - offsets[0]) / step
        if mm > offsets[-1]:
            return len(offsets) - 1 + (mm - offsets[-1]) / step
        return float(np.interp(mm, offsets, np.arange(len(offsets))))

    def ijk_to_lps(self, ijk) -> list[float]:
        i, j, k = (float(v) for v in ijk)
        return list(np.array(self.origin) + self._matrix() @ np.array([i, j, self._true_k(k)]))

    def lps_to_ijk(self, lps) -> list[float]:
        i, j, k = np.linalg.solve(self._matrix(), np.asarray(lps, dtype=float) - np.array(self.origin))
        return [float(i), float(j), self._slice_k(float(k))]

    def matches(self, other: Geometry, tolerance: float = 1e-3) -> bool:
        return (self.size == other.size
                and np.allclose(self.spacing, other.spacing, atol=tolerance)
                and np.allclose(self.origin, other.origin, atol=tolerance * 10)
                and np.allclose(self.direction, other.direction, atol=tolerance))

    def describe(self) -> str:
        return (f"{'x'.join(map(str, self.size))} voxels of "
                f"{'x'.join(f'{s:g}' for s in self.spacing)} mm at origin "
                f"({', '.join(f'{o:g}' for o in self.origin)})")


def orient_lps(image: sitk.Image) -> sitk.Image:
    """The same voxels re-ordered so that i, j, k grow toward patient left, posterior and
    superior (identity direction for axial scans); a permutation and flips, never a resampling."""
    return sitk.DICOMOrient(image, "LPS")


@dataclass
class CTVolume:
    """A checked CT in Hounsfield units, LPS-oriented. ``array`` is indexed [k, j, i];
    ``original`` is the geometry of the file as given (its ijk are what users see)."""

    image: sitk.Image
    array: np.ndarray
    source: str
    sha256: str
    original: Geometry
    warnings: list[str] = field(default_factory=list)
    dicom: dict = field(default_factory=dict)
    slices: SliceLayout | None = None  # true DICOM slice positions; None for a file of uniform slices
    slice_offsets_mm: tuple[float, ...] | None = None  # of the oriented array's slices (see Geometry)

    @property
    def contiguous(self) -> bool:
        """False when slices are missing or have gaps between them: what needs contiguous
        slices (the dendriform test) must refuse or stay within ``slices.runs()``."""
        return self.slices is None or self.slices.contiguous

    def contiguous_runs(self) -> list[tuple[int, int]]:
        """(first, last) k of ``array`` for each run of contiguous slices: one run for a file or a
        whole series; what follows structures over slices (dendriform) must stay inside a run."""
        if self.slices is None:
            return [(0, self.shape[0] - 1)]
        return self.slices.oriented_runs()

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(self.image.GetSpacing())

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.array.shape

    @property
    def geometry(self) -> Geometry:
        """The oriented array's geometry, with the true slice positions where they are uneven."""
        return replace(Geometry.of(self.image), slice_offsets_mm=self.slice_offsets_mm)

    def ijk_to_lps(self, ijk) -> list[float]:
        """LPS mm of a (continuous) index of the oriented array."""
        return self.geometry.ijk_to_lps(ijk)

    def provenance(self) -> dict:
        return {"source": self.source, "sha256": self.sha256, "size": list(self.original.size),
                "spacing": list(self.original.spacing), "origin": list(self.original.origin),
                "direction": list(self.original.direction), "contiguous_slices": self.contiguous,
                **({"dicom": self.dicom} if self.dicom else {}),
                **({"slices": self.slices.to_dict()} if self.slices is not None else {})}


def sha256_of_files(paths) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# --- header checks for spacing that readers silently default to 1 -------------------------------

def _header_lines(path: Path, stop_prefix: str | None) -> list[str]:
    """Lines of a text header: up to the first blank line (NRRD) or the ``stop_prefix`` line (MHA)."""
    with open(path, "rb") as stream:
        head = stream.read(65536).decode("latin-1")
    lines = []
    for line in head.splitlines():
        line = line.strip()
        if stop_prefix is None and not line:
            break
        lines.append(line)
        if stop_prefix and line.replace(" ", "").startswith(stop_prefix):
            break
    return lines


def _spacing_declared(path: Path, kind: str) -> bool | None:
    """Whether the file's own header declares voxel spacing; None where we cannot tell.
    ``kind`` is the type found from the content (``ct_file_checks.sniff``)."""
    if kind == "nrrd":
        lines = _header_lines(path, None)
        return any(line.startswith(("spacings:", "space directions:")) for line in lines)
    if kind == "metaimage":
        lines = _header_lines(path, "ElementDataFile=")
        if not any(line.replace(" ", "").startswith("NDims=") for line in lines):
            return None
        return any(line.replace(" ", "").startswith("ElementSpacing=") for line in lines)
    if kind.startswith("nifti1"):
        opener = gzip.open if kind.endswith("-gz") else open
        with opener(path, "rb") as stream:
            header = stream.read(348)
        if len(header) < 348:
            return None
        endian = "<" if struct.unpack("<i", header[:4])[0] == 348 else ">"
        pixdim = struct.unpack(endian + "8f", header[76:108])
        return all(np.isfinite(v) and v > 0 for v in pixdim[1:4])
    return None


# --- readers -------------------------------------------------------------------------------------

_IMAGE_IO = {"nrrd": "NrrdImageIO", "metaimage": "MetaImageIO"}


def _reader_for(path: Path, kind: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO(_IMAGE_IO.get(kind, "NiftiImageIO"))
    return reader


def _read_file(path: Path, kind: str) -> sitk.Image:
    """Header first (geometry checked before any voxel is read), then the voxels."""
    reader = _reader_for(path, kind)
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise read_error(str(path), error) from None
    if reader.GetDimension() == 3:
        check_header_geometry(reader.GetSize(), reader.GetSpacing(), str(path))
    try:
        return reader.Execute()
    except RuntimeError as error:
        raise read_error(str(path), error) from None


def _dicom_value(reader: sitk.ImageSeriesReader, key: str) -> str:
    try:
        if reader.HasMetaDataKey(0, key):
            return reader.GetMetaData(0, key).strip()
    except RuntimeError:
        pass
    return ""


def _refuse_damaged_dicom_files(folder: Path, files_by_series: dict) -> None:
    """A file of the folder that starts like DICOM but is in no series could not be parsed (cut
    short, damaged): the series reader would skip it without a word, leaving a hole."""
    listed = {Path(name).resolve() for names in files_by_series.values() for name in names}
    damaged = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.upper() == "DICOMDIR" or path.resolve() in listed:
            continue
        with open(path, "rb") as stream:
            if stream.read(132)[128:132] == b"DICM":
                damaged.append(path.name)
    if damaged:
        more = f" and {len(damaged) - 3} more" if len(damaged) > 3 else ""
        raise DPOInputError(str(folder), f"DICOM file(s) {', '.join(damaged[:3])}{more} cannot be read (cut short or "
                            "damaged); the series would have a hole")


def _stacked_in_reverse(image: sitk.Image) -> bool:
    """Whether ``orient_lps`` reverses the slice axis (the slice normal points toward -x, -y or -z)."""
    normal = np.array(image.GetDirection()).reshape(3, 3)[:, 2]
    return bool(normal[int(np.argmax(np.abs(normal)))] < 0)


def _read_dicom_folder(folder: Path, series_uid: str | None):
    """(image, files, DICOM facts, slice layout). The image's slice spacing is the usual step
    between slices (not the average over gaps); the layout holds every slice's true position."""
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise DPOInputError(str(folder), "contains no DICOM series")
    files_by_series = {uid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
                       for uid in series}
    _refuse_damaged_dicom_files(folder, files_by_series)
    if series_uid is not None:
        if series_uid not in files_by_series:
            raise DPOInputError(str(folder), f"has no series with SeriesInstanceUID {series_uid} "
                                f"(found: {', '.join(sorted(files_by_series))})")
        chosen = series_uid
    else:
        chosen = max(files_by_series, key=lambda uid: (len(files_by_series[uid]), uid))
    files = list(files_by_series[chosen])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    reader.LoadPrivateTagsOn()
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK's raw "non uniform sampling" text; we say it better
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise DPOInputError(str(folder), f"DICOM series {chosen} cannot be read "
                            f"({str(error).strip().splitlines()[-1][:120]})") from None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    info = {
        "series_instance_uid": chosen,
        "study_instance_uid": _dicom_value(reader, "0020|000d"),
        "modality": _dicom_value(reader, "0008|0060"),
        "slice_thickness_mm": _dicom_value(reader, "0018|0050"),
        "contrast_agent": _dicom_value(reader, "0018|0010"),
        "series_count_in_folder": len(series),
        "files": len(files),
    }
    if info["modality"] and info["modality"].upper() != "CT":
        raise DPOInputError(str(folder), f"DICOM modality is {info['modality']}, not CT")
    layout = None
    if image.GetDimension() == 3 and len(files) == image.GetSize()[2]:
        layout = dicom_slice_layout(reader, len(files), info["slice_thickness_mm"], _stacked_in_reverse(image),
                                    str(folder))
    if layout is not None and (layout.gaps or layout.non_uniform_steps_mm):
        spacing = list(image.GetSpacing())
        spacing[2] = layout.step_mm  # true within each contiguous run; the reader's average is true nowhere
        image.SetSpacing(spacing)
    return image, files, info, layout


# --- checks --------------------------------------------------------------------------------------

def _check_geometry(image: sitk.Image, where: str) -> None:
    if image.GetDimension() != 3:
        raise DPOInputError(where, f"is {image.GetDimension()}-D; a 3-D CT volume is needed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DPOInputError(where, f"has {image.GetNumberOfComponentsPerPixel()} values per voxel "
                            "(colour?); a scalar CT in Hounsfield units is needed")
    if min(image.GetSize()) < 2:
        raise DPOInputError(where, f"has size {'x'.join(map(str, image.GetSize()))}; a volume with "
                            "several slices is needed")
    check_header_geometry(image.GetSize(), image.GetSpacing(), where)


def _check_hounsfield(array: np.ndarray, where: str) -> None:
    sample = array[::2, ::4, ::4]
    low, high = np.percentile(sample, [0.5, 99.5])
    if low >= -200 and array.min() >= -200:
        if array.min() >= 0 and high > 500:
            raise DPOInputError(where, f"values look un-rescaled: the lowest are {int(array.min())} (air "
                                "should be about -1000 HU); apply RescaleSlope/RescaleIntercept")
        raise DPOInputError(where, f"does not look like a chest CT in Hounsfield units: no air or lung "
                            f"(lowest values about {int(low)}, expected about -1000 HU)")


def slice_thickness_warning(spacing_z: float, dicom_thickness: str = "") -> str | None:
    thickness = spacing_z
    try:
        thickness = max(thickness, float(dicom_thickness))
    except ValueError:
        pass
    if thickness > THIN_SECTION_MAX_MM:
        return THICK_SLICE_WARNING.format(thickness=thickness)
    return None


def small_body_warning(array: np.ndarray, spacing) -> str | None:
    """A warning when the whole body (not cut by the field of view) is narrower than an adult
    chest at the declared spacing. ``array`` is LPS-oriented [k, j, i]."""
    body = array[::2] > BODY_HU
    seen = body.sum(axis=0) >= max(1, 0.1 * body.shape[0])  # noise in the outside air is not body
    if not seen.any():
        return None
    rows, columns = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
    margin = 2
    if (columns[0] < margin or columns[-1] >= seen.shape[1] - margin
            or rows[0] < margin or rows[-1] >= seen.shape[0] - margin):
        return None  # cut by the field of view: a crop, its size says nothing
    width = (columns[-1] - columns[0] + 1) * spacing[0]
    depth = (rows[-1] - rows[0] + 1) * spacing[1]
    if max(width, depth) < SMALL_BODY_WARNING_MM:
        return (f"the body is only {width:.0f} x {depth:.0f} mm across at the declared voxel spacing (an adult "
                "chest is 250-400 mm wide): is the spacing right (an image resampled without updating it?)")
    return None


# Contrast/Bolus Agent (0018,0010) values that say "no contrast" (seen in the wild; compared
# case-insensitively, without punctuation)
NO_CONTRAST_AGENT = {"", "none", "no", "nil", "n", "na", "n/a", "0", "-", "--", "without", "no contrast",
                     "non contrast", "noncontrast", "nc", "native", "plain", "unenhanced", "non enhanced"}


def contrast_agent_named(value: str) -> str:
    """The agent a DICOM Contrast/Bolus Agent value names, or "" when it says there is none."""
    text = " ".join((value or "").replace("_", " ").replace("-", " ").split()).strip()
    if text.lower() in NO_CONTRAST_AGENT or (value or "").strip().lower() in NO_CONTRAST_AGENT:
        return ""
    return (value or "").strip()


def to_hounsfield_int16(image: sitk.Image) -> sitk.Image:
    """The image as int16 HU (rounded and clipped to -1024..3071 when stored otherwise)."""
    if image.GetPixelID() == sitk.sitkInt16:
        return image
    values = sitk.GetArrayViewFromImage(image)
    converted = np.clip(np.rint(values) if values.dtype.kind == "f" else values, *HU_RANGE)
    result = sitk.GetImageFromArray(converted.astype(np.int16))
    result.CopyInformation(image)
    return result


def check_ct_image(image: sitk.Image, where: str, source: str, sha256: str,
                   dicom: dict | None = None, slices: SliceLayout | None = None) -> CTVolume:
    """Apply every check to an image already in memory (a file, a DICOM series, a Slicer node)."""
    _check_geometry(image, where)
    values = sitk.GetArrayViewFromImage(image)
    error = nonfinite_error(values, where)
    if error is not None:
        raise error
    _check_hounsfield(values, where)
    original = Geometry.of(image)
    image = orient_lps(to_hounsfield_int16(image))
    array = sitk.GetArrayViewFromImage(image)
    warnings = []
    thick = slice_thickness_warning(image.GetSpacing()[2], (dicom or {}).get("slice_thickness_mm", ""))
    if thick:
        warnings.append(thick)
    if slices is not None:
        warnings.extend(slices.warnings())
    small = small_body_warning(array, image.GetSpacing())
    if small:
        warnings.append(small)
    agent = contrast_agent_named((dicom or {}).get("contrast_agent", ""))
    if agent:
        warnings.append(f"contrast-enhanced study (DICOM contrast agent: {agent}); "
                        "contrast-filled vessels are suppressed")
    oriented_offsets = None
    if slices is not None and (slices.gaps or slices.non_uniform_steps_mm):
        original, oriented_offsets = _with_true_slice_positions(original, image, slices)
    return CTVolume(image=image, array=array, source=source, sha256=sha256, original=original,
                    warnings=warnings, dicom=dicom or {}, slices=slices, slice_offsets_mm=oriented_offsets)


def _with_true_slice_positions(original: Geometry, oriented: sitk.Image, slices: SliceLayout):
    """(the file's geometry, the oriented array's slice offsets) holding every slice's true
    position, for a series whose slices stay on the k axis when oriented (axial, the rule for
    chest CT); otherwise the regular grid is kept and the gap warning stands alone."""
    offsets = np.asarray(slices.positions_mm) - slices.positions_mm[0]
    normal = np.array(original.direction).reshape(3, 3)[:, 2]
    if int(np.argmax(np.abs(normal))) != 2 or len(offsets) != original.size[2]:
        return original, None
    file_geometry = replace(original, slice_offsets_mm=tuple(float(v) for v in offsets))
    if normal[2] > 0:
        return file_geometry, file_geometry.slice_offsets_mm
    step = oriented.GetSpacing()[2]  # the oriented origin is the last slice placed on the regular grid
    last = len(offsets) - 1
    return file_geometry, tuple(float(last * step - offsets[last - k]) for k in range(last + 1))


def input_checksum(path: str | Path) -> str:
    """The SHA-256 that ``load_ct`` records, without reading the image: of the file, or of the
    files of the DICOM series it would choose (the one with the most slices)."""
    path = Path(path)
    if path.is_dir():
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
        if not series:
            raise DPOInputError(str(path), "contains no DICOM series")
        files = {uid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), uid) for uid in series}
        chosen = max(files, key=lambda uid: (len(files[uid]), uid))
        return sha256_of_files(files[chosen])
    if not path.is_file():
        raise DPOInputError(str(path), "no such file or folder")
    return sha256_of_files([path])


def load_ct(path: str | Path, series_uid: str | None = None) -> CTVolume:
    """Load and check a CT file or DICOM folder; raises ``DPOInputError`` naming what is wrong."""
    path = Path(path)
    if not path.exists():
        raise DPOInputError(str(path), "no such file or folder")
    if path.is_dir():
        image, files, dicom, slices = _read_dicom_folder(path, series_uid)
        return check_ct_image(image, str(path), str(path), sha256_of_files(files), dicom, slices)
    kind = sniff(path)
    if _spacing_declared(path, kind) is False:
        raise DPOInputError(str(path), "declares no voxel spacing (or a zero spacing); the size of a "
                            "finding cannot be measured without it")
    check_complete(path, kind)
    image = _read_file(path, kind)
    return check_ct_image(image, str(path), str(path), sha256_of_files([path]))
