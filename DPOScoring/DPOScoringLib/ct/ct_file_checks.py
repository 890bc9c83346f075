"""What a CT file really is, whether it is whole, and whether its geometry is possible, all
checked before its voxels are used (issue: never a silent wrong result).

* The file type is taken from the content (magic bytes), not from the name: a PNG renamed
  ``.nii.gz`` or a gzip stream named ``.nii`` gets one line saying what the file is.
* A NIfTI file is read to its end (and decompressed when gzip-compressed): its size must hold
  the header's voxels. SimpleITK fills a truncated NIfTI with zeros without a word; NRRD and
  MetaImage readers do fail, and their error is turned into the same one line.
* Geometry from the header alone (no voxel read): voxel spacing 0.1-10 mm in-plane and
  0.1-15 mm between slices (clinical chest CT is 0.5-1 mm in-plane and 0.5-10 mm slices; the
  limits leave a margin and refuse only the impossible), a field of view of human size.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..common.errors import DPOInputError

IN_PLANE_MM = (0.1, 10.0)
SLICE_MM = (0.1, 15.0)
# The largest adult trunk is about 700 mm across; a scanner's bore is 700-900 mm. A field of
# view beyond these holds no human body at the declared spacing.
MAX_FIELD_OF_VIEW_MM = (1000.0, 1000.0, 2500.0)

_NIFTI_BYTES_PER_TYPE = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4,
                         1024: 8, 1280: 8, 1536: 16, 1792: 16, 2048: 32, 2304: 4}
_PICTURES = ((b"\x89PNG\r\n\x1a\n", "a PNG picture"), (b"\xff\xd8\xff", "a JPEG picture"),
             (b"GIF8", "a GIF picture"), (b"II*\x00", "a TIFF picture"), (b"MM\x00*", "a TIFF picture"),
             (b"BM", "a BMP picture"), (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"))


def _nifti_kind(head: bytes) -> str | None:
    """'nifti1' / 'nifti2' when ``head`` starts with a NIfTI header, else None."""
    if len(head) >= 348:
        for endian in "<>":
            size = struct.unpack(endian + "i", head[:4])[0]
            if size == 348 and head[344:347] in (b"n+1", b"ni1"):
                return "nifti1" if head[344:347] == b"n+1" else "nifti1-pair"  # pair: voxels in a .img
            if size == 540 and head[4:7] in (b"n+2", b"ni2"):
                return "nifti2" if head[4:7] == b"n+2" else "nifti2-pair"
    return None


def sniff(path: Path) -> str:
    """The file's kind by content: 'nifti1', 'nifti1-gz', 'nifti2', 'nifti2-gz', 'nrrd',
    'metaimage', or raises ``DPOInputError`` saying what it is instead."""
    where = str(path)
    try:
        with open(path, "rb") as stream:
            head = stream.read(1024)
    except OSError as error:
        raise DPOInputError(where, f"cannot be read ({error.strerror or error})") from None
    if not head:
        raise DPOInputError(where, "is empty (0 bytes)")
    name = path.name.lower()
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as stream:
                inner = stream.read(1024)
        except (OSError, EOFError, zlib.error) as error:
            raise DPOInputError(where, f"is a damaged gzip file ({error})") from None
        kind = _nifti_kind(inner)
        if kind is None:
            raise DPOInputError(where, "is gzip-compressed but holds no NIfTI image")
        if not name.endswith(".gz"):
            raise DPOInputError(where, "is a gzip-compressed NIfTI named without .gz; rename it to "
                                f"{path.name}.gz")
        return kind + "-gz"
    kind = _nifti_kind(head)
    if kind is not None:
        return kind
    if head.startswith(b"NRRD000"):
        return "nrrd"
    text = head[:512].decode("latin-1")
    if any(key in text for key in ("NDims", "ObjectType", "ElementDataFile")):
        return "metaimage"
    if head[128:132] == b"DICM":
        raise DPOInputError(where, "is a single DICOM file; give the folder that holds the whole series")
    for magic, what in _PICTURES:
        if head.startswith(magic):
            raise DPOInputError(where, f"is {what}, not a CT volume (NRRD, NIfTI, MHA/MHD or a DICOM "
                                "series folder)")
    if name.endswith(".gz"):
        raise DPOInputError(where, "is named .gz but is not gzip-compressed, and holds no image this tool "
                            "can read")
    raise DPOInputError(where, "is not an image this tool can read (NRRD, NIfTI, MHA/MHD or a DICOM series "
                        "folder)")


def _nifti_expected_bytes(header: bytes, kind: str, where: str) -> int:
    """vox_offset + voxels x bytes per voxel, from a NIfTI-1 or NIfTI-2 header."""
    endian = "<" if struct.unpack("<i", header[:4])[0] in (348, 540) else ">"
    if kind.startswith("nifti1"):
        dims = struct.unpack(endian + "8h", header[40:56])
        datatype, bitpix = struct.unpack(endian + "hh", header[70:74])
        offset = struct.unpack(endian + "f", header[108:112])[0]
    else:
        datatype, bitpix = struct.unpack(endian + "hh", header[12:16])
        dims = struct.unpack(endian + "8q", header[16:80])
        offset = struct.unpack(endian + "q", header[168:176])[0]
    if not 1 <= dims[0] <= 7 or any(d < 1 for d in dims[1:dims[0] + 1]):
        raise DPOInputError(where, f"has an impossible NIfTI header (dimensions {list(dims[:dims[0] + 1])})")
    per_voxel = _NIFTI_BYTES_PER_TYPE.get(datatype, max(bitpix, 8) // 8)
    voxels = int(np.prod([int(d) for d in dims[1:dims[0] + 1]], dtype=object))
    return int(max(offset, 352 if kind.startswith("nifti1") else 544)) + voxels * per_voxel


def _stream_length(opened, where: str) -> int:
    """Decompressed length of a gzip/zlib stream, read to its end; a cut-off stream is refused."""
    total = 0
    try:
        with opened as stream:
            for block in iter(lambda: stream.read(1 << 16), b""):
                total += len(block)
    except EOFError:
        raise DPOInputError(where, "is truncated: its compressed data stops before the end of the stream (an "
                            "interrupted download or copy?)") from None
    except (OSError, zlib.error) as error:
        raise DPOInputError(where, f"is damaged: its compressed data cannot be decompressed ({error})") from None
    return total


class _ZlibReader:
    """A file-like reader of a zlib (MetaImage) or gzip (NRRD) stream that starts at ``offset``."""

    def __init__(self, path: Path, offset: int, wbits: int):
        self.stream = open(path, "rb")
        self.stream.seek(offset)
        self.inflater = zlib.decompressobj(wbits)

    def read(self, size: int) -> bytes:
        while True:
            raw = self.stream.read(size)
            if not raw:
                if not self.inflater.eof:
                    raise EOFError("compressed stream ends early")
                return b""
            out = self.inflater.decompress(raw)
            if out or self.inflater.eof:
                return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.close()


def _text_header(path: Path, last_key: str | None) -> tuple[dict, int] | None:
    """(fields, byte offset of the data) of a NRRD header (ends at a blank line) or a MetaImage
    header (ends at its ``last_key`` line); None when it does not end within 64 KB."""
    with open(path, "rb") as stream:
        head = stream.read(65536)
    fields, offset = {}, 0
    for raw_line in head.splitlines(keepends=True):
        offset += len(raw_line)
        line = raw_line.decode("latin-1").strip()
        if last_key is None and not line:
            return fields, offset
        separator = ":" if last_key is None else "="
        if separator in line:
            key, value = line.split(separator, 1)
            key = key.strip() if last_key is not None else key.strip().lower()
            fields[key] = value.strip().lstrip("=").strip()
            if last_key is not None and key == last_key:
                return fields, offset
    if last_key is None and len(head) < 65536 and ("data file" in fields or "datafile" in fields):
        return fields, offset  # a detached NRRD header (.nhdr) may end without a blank line
    return None


_NRRD_TYPES = {1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t", "char"),
               2: ("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
                   "unsigned short", "unsigned short int", "uint16", "uint16_t"),
               4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
               8: ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
                   "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t",
                   "double")}
_META_TYPES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
               "MET_LONG": 4, "MET_ULONG": 4, "MET_FLOAT": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8,
               "MET_DOUBLE": 8}


def _bytes_per_nrrd_type(name: str) -> int | None:
    return next((size for size, names in _NRRD_TYPES.items() if name.lower() in names), None)


def _data_check(where: str, data_path: Path, offset: int, expected: int, compression: str | None) -> None:
    if not data_path.is_file():
        raise DPOInputError(where, f"its data file {data_path.name} does not exist")
    if compression is None:
        actual = data_path.stat().st_size - offset
    else:
        wbits = 16 + zlib.MAX_WBITS if compression == "gzip" else zlib.MAX_WBITS
        actual = _stream_length(_ZlibReader(data_path, offset, wbits), where)
    if actual < expected:
        raise DPOInputError(where, f"is truncated: {max(actual, 0):,} bytes of image data where the header declares "
                            f"{expected:,} (an interrupted download or copy?)")


def _product(text: str, where: str, what: str) -> int:
    try:
        values = [int(v) for v in text.split()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise DPOInputError(where, f"has an impossible header ({what} {text!r})")
    return int(np.prod(values, dtype=object))


def _check_nrrd(path: Path, where: str) -> None:
    header = _text_header(path, None)
    if header is None:
        return
    fields, offset = header
    size = _bytes_per_nrrd_type(fields.get("type", ""))
    encoding = fields.get("encoding", "").lower()
    if size is None or encoding not in ("raw", "gzip", "gz") or "line skip" in fields or "byte skip" in fields:
        return  # other encodings: the reader's own error (see read_error) covers them
    voxels = _product(fields.get("sizes", ""), where, "sizes:")
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file:
        if " " in data_file or data_file.upper() == "LIST":
            return  # a list or pattern of data files
        data_path, offset = path.parent / data_file, 0
    else:
        data_path = path
    _data_check(where, data_path, offset, voxels * size, None if encoding == "raw" else "gzip")


def _check_metaimage(path: Path, where: str) -> None:
    header = _text_header(path, "ElementDataFile")
    if header is None:
        return
    fields, offset = header
    size = _META_TYPES.get(fields.get("ElementType", ""))
    if size is None or "HeaderSize" in fields:
        return
    voxels = _product(fields.get("DimSize", ""), where, "DimSize =")
    voxels *= _product(fields.get("ElementNumberOfChannels", "1"), where, "ElementNumberOfChannels =")
    data_file = fields.get("ElementDataFile", "")
    if data_file.upper() != "LOCAL":
        if " " in data_file or data_file.upper() == "LIST" or "%" in data_file:
            return
        data_path, offset = path.parent / data_file, 0
    else:
        data_path = path
    compressed = fields.get("CompressedData", "False").lower() == "true"
    _data_check(where, data_path, offset, voxels * size, "zlib" if compressed else None)


def check_complete(path: Path, kind: str) -> None:
    """The file (or its detached data file) holds all the voxels its header declares; compressed
    data is decompressed to its end. (SimpleITK fills a truncated NIfTI with zeros without a word,
    and MetaIO prints its own complaint on standard error.)"""
    where = str(path)
    if kind == "nrrd":
        _check_nrrd(path, where)
        return
    if kind == "metaimage":
        _check_metaimage(path, where)
        return
    if not kind.startswith("nifti") or "pair" in kind:
        return  # .hdr/.img pairs: the reader's own error (see read_error)
    size_of_header = 348 if kind.startswith("nifti1") else 540
    if kind.endswith("-gz"):
        with gzip.open(path, "rb") as stream:
            header = stream.read(size_of_header)
        actual = _stream_length(gzip.open(path, "rb"), where)
    else:
        with open(path, "rb") as stream:
            header = stream.read(size_of_header)
        actual = path.stat().st_size
    expected = _nifti_expected_bytes(header, kind, where)
    if actual < expected:
        raise DPOInputError(where, f"is truncated: {actual:,} bytes of image data where the header declares "
                            f"{expected:,} (an interrupted download or copy?)")


def read_error(where: str, error: RuntimeError) -> DPOInputError:
    """One line for an ITK read failure (a raw ITK message is several lines of C++ paths)."""
    text = str(error)
    if any(key in text for key in ("not read completely", "fread got only", "read only", "premature")):
        return DPOInputError(where, "is truncated: the image data ends before the voxels its header declares "
                             "(an interrupted download or copy?)")
    if any(key in text for key in ("gzip", "zlib", "inflate", "decompress")):
        return DPOInputError(where, "is damaged: its compressed image data cannot be decompressed")
    return DPOInputError(where, "is not an image this tool can read (NRRD, NIfTI, MHA/MHD or a DICOM series "
                         "folder), or is damaged")


def check_header_geometry(size, spacing, where: str) -> None:
    """Spacing and field of view possible for a human chest CT, from the header only."""
    spacing = [float(s) for s in spacing]
    if len(spacing) != 3:
        return  # the dimension check names this
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise DPOInputError(where, f"voxel spacing {tuple(spacing)} is missing, zero or not a number")
    low, high = IN_PLANE_MM
    if not all(low <= s <= high for s in spacing[:2]):
        raise DPOInputError(where, f"in-plane voxel spacing {spacing[0]:g} x {spacing[1]:g} mm is outside "
                            f"{low:g}-{high:g} mm: not a chest CT at this spacing (wrong units or header?)")
    low, high = SLICE_MM
    if not low <= spacing[2] <= high:
        raise DPOInputError(where, f"slice spacing {spacing[2]:g} mm is outside {low:g}-{high:g} mm: not a "
                            "chest CT at this spacing (wrong units or header?)")
    extent = [n * s for n, s in zip(size, spacing)]
    if any(e > limit for e, limit in zip(extent, MAX_FIELD_OF_VIEW_MM)):
        raise DPOInputError(where, "field of view {} mm is larger than any human body (at most {} mm); the "
                            "voxel spacing must be wrong".format(" x ".join(f"{e:.0f}" for e in extent),
                                                                 " x ".join(f"{m:.0f}" for m in MAX_FIELD_OF_VIEW_MM)))


def nonfinite_error(array: np.ndarray, where: str) -> DPOInputError | None:
    """An error naming how many voxels are NaN/Inf and where the first is (ijk of the file)."""
    if array.dtype.kind != "f":
        return None
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    if not count:
        return None
    k, j, i = (int(v) for v in np.argwhere(bad)[0])
    return DPOInputError(where, f"has {count:,} voxel(s) that are not numbers (NaN or infinite), the first at "
                         f"ijk ({i}, {j}, {k}); a damaged or wrongly converted image")
