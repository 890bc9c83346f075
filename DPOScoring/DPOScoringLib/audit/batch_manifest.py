"""The cases of a batch (``dpo-score batch INPUT``): a folder of CTs or a CSV manifest.

A ``case_id`` names the case's bundle folder inside ``--out``, so it is a *name*, never a path:
a manifest ``case_id`` with a path separator, ``..``, a leading dot or characters outside
``A-Z a-z 0-9 . _ -`` (at most 100) is refused with one line naming the manifest line, before
anything is written. In folder mode the ids come from file names; unsafe characters there are
mapped to ``_`` and the file name kept in the ``source_name`` column of cohort.csv. So nothing a
batch writes can land outside ``--out``.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from ..common.errors import DPOInputError

CT_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
SAFE_CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# cohort.csv columns a manifest's extra columns must not overwrite (batch.COHORT_COLUMNS and ours)
RESERVED_COLUMNS = ("status", "input_sha256", "bundle", "warnings", "complete", "source_name")
MAX_MANIFEST_BYTES = 50 * 1024 * 1024
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{n}" for n in range(1, 10)),
                     *(f"lpt{n}" for n in range(1, 10))}


def case_id_problem(case_id: str) -> str | None:
    """Why ``case_id`` cannot name a folder inside --out, or None when it can."""
    if not case_id or not case_id.strip():
        return "is empty"
    if "/" in case_id or "\\" in case_id:
        return "contains a path separator; a case_id is a name, not a path"
    if ".." in case_id:
        return "contains '..'; a case_id is a name, not a path"
    if case_id.startswith("."):
        return "starts with a dot (hidden and reserved names are not allowed)"
    if len(case_id) > 100:
        return f"is {len(case_id)} characters long (at most 100)"
    if not SAFE_CASE_ID.fullmatch(case_id):
        bad = sorted({c for c in case_id if not re.fullmatch(r"[A-Za-z0-9._-]", c)})
        return (f"contains {', '.join(repr(c) for c in bad)}; allowed are letters A-Z a-z, digits, '.', '_' "
                "and '-'")
    if case_id.split(".")[0].lower() in _WINDOWS_RESERVED:
        return "is a reserved device name on Windows"
    return None


def safe_name(name: str) -> str:
    """A file name mapped to a safe case_id (unsafe characters become '_')."""
    mapped = re.sub(r"[^A-Za-z0-9._-]", "_", name).replace("..", "_")
    mapped = mapped.lstrip(".") or "case"
    if not mapped[0].isalnum():
        mapped = "c" + mapped
    if mapped.split(".")[0].lower() in _WINDOWS_RESERVED:
        mapped = "case_" + mapped
    return mapped[:100]


def _strip_suffix(name: str) -> str:
    lowered = name.lower()
    for suffix in sorted(CT_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _cases_from_folder(source: Path) -> list[dict]:
    cases, by_id = [], {}
    for path in sorted(source.iterdir()):
        name = path.name.lower()
        if path.name.startswith(".") or not (path.is_dir() or name.endswith(CT_SUFFIXES)):
            continue
        stem = _strip_suffix(path.name)
        case_id = stem if case_id_problem(stem) is None else safe_name(stem)
        if case_id in by_id:
            raise DPOInputError(str(source), f"{by_id[case_id]!r} and {path.name!r} give the same case_id "
                                f"{case_id!r}; rename one")
        by_id[case_id] = path.name
        case = {"case_id": case_id, "path": str(path)}
        if case_id != stem:
            case["source_name"] = path.name
        cases.append(case)
    if not cases:
        raise DPOInputError(str(source), "holds no CT files or DICOM folders")
    if any("source_name" in case for case in cases):
        for case in cases:
            case.setdefault("source_name", "")
    return cases


def _manifest_rows(source: Path) -> list[dict]:
    if source.name.lower().endswith(CT_SUFFIXES):
        raise DPOInputError(str(source), "is a CT file; batch takes a folder of CTs or a CSV manifest (use "
                            "'dpo-score run' for one CT)")
    size = source.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise DPOInputError(str(source), f"is {size:,} bytes; a CSV manifest of at most "
                            f"{MAX_MANIFEST_BYTES // (1024 * 1024)} MB is expected")
    raw = source.read_bytes()
    if b"\x00" in raw[:4096]:
        raise DPOInputError(str(source), "is a binary file, not a CSV manifest (columns case_id, path)")
    try:
        return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as error:
        raise DPOInputError(str(source), f"is not a readable CSV manifest ({error})") from None


def read_cases(source: str | Path) -> list[dict]:
    """[{case_id, path, extra columns...}] from a folder of CTs or a CSV manifest; every
    case_id is a safe name (see the module's docstring)."""
    source = Path(source)
    if source.is_dir():
        return _cases_from_folder(source)
    if not source.is_file():
        raise DPOInputError(str(source), "no such folder or manifest")
    rows = _manifest_rows(source)
    if not rows or not {"case_id", "path"} <= set(rows[0]):
        raise DPOInputError(str(source), "needs the columns case_id and path (and at least one case)")
    clashing = sorted(set(rows[0]) & set(RESERVED_COLUMNS))
    if clashing:
        raise DPOInputError(str(source), f"column(s) {', '.join(clashing)} are written by the batch itself; "
                            "rename them in the manifest")
    seen = set()
    for index, row in enumerate(rows, start=2):
        if None in row:
            raise DPOInputError(f"{source}: line {index}", "has more values than the header has columns")
        case_id = row["case_id"]
        if case_id is None or row["path"] is None:
            raise DPOInputError(f"{source}: line {index}", "lacks the case_id or path value")
        problem = case_id_problem(case_id)
        if problem:
            raise DPOInputError(f"{source}: line {index}", f"case_id {case_id!r} {problem}")
        if case_id.lower() in seen:
            raise DPOInputError(f"{source}: line {index}", f"case_id {case_id!r} is repeated (case_ids name "
                                "folders and must differ, also in upper/lower case)")
        seen.add(case_id.lower())
        if not row["path"].strip():
            raise DPOInputError(f"{source}: line {index}", f"case {case_id!r} has an empty path")
        path = Path(row["path"])
        row["path"] = str(path if path.is_absolute() else source.parent / path)
    return rows


def case_folder(out: str | Path, case_id: str) -> Path:
    """The bundle folder of ``case_id`` inside ``out`` (``out / case_id``, as given); refuses
    anything that would leave it."""
    problem = case_id_problem(case_id)
    if problem:
        raise DPOInputError(f"case_id {case_id!r}", problem)
    root = Path(out).resolve()
    if (root / case_id).resolve().parent != root:
        raise DPOInputError(f"case_id {case_id!r}", f"would be written outside {out}")
    return Path(out) / case_id
