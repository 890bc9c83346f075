"""The reading: what the reader decided, in the versioned ``dpo-reading/1`` JSON format.

A reading is the scoring engine's only input. Parsing validates every field and raises
``DPOInputError`` naming the field path (``findings[3].lobe``) and what is wrong with it.
Keys starting with ``x_`` or ``x-`` are carried through untouched for local extensions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common.anatomy import BY_CODE, LOBE_CODES, UNASSIGNED
from ..common.errors import DPOInputError

READING_SCHEMA = "dpo-reading/1"

KINDS = ("nodular", "dendriform", "large_calcified", "granuloma")
PO_KINDS = ("nodular", "dendriform")
SEPARATE_KINDS = ("large_calcified", "granuloma")
STATUSES = ("confirmed", "pending", "rejected")
ZONES = ("pleural", "cortical", "medullary")
ILD_PATTERNS = ("ggo", "fine_reticulation", "coarse_reticulation", "honeycombing", "consolidation")
BACKGROUNDS = ("normal",) + ILD_PATTERNS
SOURCES = ("detected", "reader")

_FINDING_NUMBERS = (
    "short_axis_mm", "long_axis_mm", "volume_mm3", "peak_hu", "mean_hu", "confidence",
    "distance_to_pleura_mm",
)
_FINDING_KEYS = {
    "id", "lobe", "kind", "status", "zone", "background", "emphysema", "lung", "lps", "ijk",
    "source", "note", "slices", *_FINDING_NUMBERS,
}
_LOBE_KEYS = {"dendriform", "ild", "extent_over_half", "extent_fraction_suggested", "emphysema",
              "note"}
_ILD_KEYS = set(ILD_PATTERNS) | {"overall"}
_TOP_KEYS = {"schema", "findings", "lobes", "case_id", "reader", "created", "modified", "source",
             "decisions", "ct", "policy", "note"}


@dataclass(frozen=True)
class Finding:
    """One candidate or reader-placed finding and the reader's decision on it."""

    lobe: str
    kind: str
    status: str
    id: str = ""
    zone: str | None = None
    background: str | None = None
    short_axis_mm: float | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_po(self) -> bool:
        return self.kind in PO_KINDS


@dataclass(frozen=True)
class ILDScores:
    """Per-lobe extent of each ILD pattern, 0 = 0 %, 1 = < 25 %, 2 = 25-50 %, 3 = > 50 %."""

    ggo: int = 0
    fine_reticulation: int = 0
    coarse_reticulation: int = 0
    honeycombing: int = 0
    consolidation: int = 0
    overall: int | None = None

    def pattern_scores(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in ILD_PATTERNS}


@dataclass(frozen=True)
class LobeAssessment:
    """What the reader recorded for one lobe as a whole."""

    dendriform: bool = False
    ild: ILDScores = field(default_factory=ILDScores)
    extent_over_half: bool | None = None
    extent_fraction_suggested: float | None = None
    emphysema: bool | None = None


@dataclass(frozen=True)
class Reading:
    findings: tuple[Finding, ...]
    lobes: dict[str, LobeAssessment]
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def lobe(self, code: str) -> LobeAssessment:
        return self.lobes.get(code, LobeAssessment())


# --- field checks -----------------------------------------------------------------------------

def _is_extension_key(key: str) -> bool:
    return key.startswith(("x_", "x-"))


def _check_object(value: Any, where: str, allowed: set[str], required: tuple[str, ...] = ()):
    if not isinstance(value, dict):
        raise DPOInputError(where or "reading", f"must be a JSON object, not {_type_name(value)}")
    for key in value:
        if key not in allowed and not _is_extension_key(key):
            raise DPOInputError(_join(where, key), f"unknown field (allowed: {', '.join(sorted(allowed))})")
    for key in required:
        if key not in value:
            raise DPOInputError(_join(where, key), "is required")
    return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise DPOInputError(where, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise DPOInputError(where, f"must be true or false, not {json.dumps(value)}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DPOInputError(where, f"must be a finite number, not {json.dumps(value)}")
    return float(value)


def _score(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DPOInputError(where, f"must be an integer score 0-3, not {json.dumps(value)}")
    if not 0 <= value <= 3:
        raise DPOInputError(where, f"must be an integer score 0-3, not {value}")
    return value


# --- parsing ----------------------------------------------------------------------------------

def parse_finding(raw: Any, where: str) -> Finding:
    """One finding of a reading, validated; ``where`` names it in errors (``findings[3]``)."""
    _check_object(raw, where, _FINDING_KEYS, required=("lobe", "kind", "status"))
    status = _choice(raw["status"], f"{where}.status", STATUSES)
    kind = _choice(raw["kind"], f"{where}.kind", KINDS)
    lobe = raw["lobe"]
    if lobe == UNASSIGNED:
        if status == "confirmed":
            raise DPOInputError(f"{where}.lobe", "a confirmed finding must be assigned to a lobe "
                                f"({', '.join(LOBE_CODES)})")
    else:
        lobe = _choice(lobe, f"{where}.lobe", LOBE_CODES)
    if "lung" in raw and lobe != UNASSIGNED and raw["lung"] != BY_CODE[lobe].lung:
        raise DPOInputError(f"{where}.lung", f"{raw['lung']!r} contradicts lobe {lobe} "
                            f"(a {BY_CODE[lobe].lung} lobe)")
    zone = _choice(raw["zone"], f"{where}.zone", ZONES) if raw.get("zone") is not None else None
    background = (_choice(raw["background"], f"{where}.background", BACKGROUNDS)
                  if raw.get("background") is not None else None)
    for key in _FINDING_NUMBERS:
        if raw.get(key) is not None:
            _number(raw[key], f"{where}.{key}")
    for key in ("short_axis_mm", "long_axis_mm", "volume_mm3"):
        if raw.get(key) is not None and raw[key] < 0:
            raise DPOInputError(f"{where}.{key}", f"must not be negative, not {raw[key]}")
    for key in ("lps", "ijk"):
        if key in raw:
            value = raw[key]
            if not isinstance(value, list) or len(value) != 3:
                raise DPOInputError(f"{where}.{key}", "must be a list of three numbers")
            for i, item in enumerate(value):
                _number(item, f"{where}.{key}[{i}]")
    if "emphysema" in raw:
        _boolean(raw["emphysema"], f"{where}.emphysema")
    if "source" in raw:
        _choice(raw["source"], f"{where}.source", SOURCES)
    short_axis = raw.get("short_axis_mm")
    extra = {k: v for k, v in raw.items() if k not in ("lobe", "kind", "status", "id", "zone",
                                                       "background", "short_axis_mm")}
    return Finding(lobe=lobe, kind=kind, status=status, id=str(raw.get("id", "")), zone=zone,
                   background=background,
                   short_axis_mm=None if short_axis is None else float(short_axis), extra=extra)


def _parse_ild(raw: Any, where: str) -> ILDScores:
    _check_object(raw, where, _ILD_KEYS)
    values = {name: _score(raw[name], f"{where}.{name}") for name in ILD_PATTERNS if name in raw}
    overall = raw.get("overall")
    if overall is not None:
        overall = _score(overall, f"{where}.overall")
    return ILDScores(**values, overall=overall)


def _parse_lobe(raw: Any, where: str) -> LobeAssessment:
    _check_object(raw, where, _LOBE_KEYS)
    dendriform = _boolean(raw.get("dendriform", False), f"{where}.dendriform")
    ild = _parse_ild(raw["ild"], f"{where}.ild") if raw.get("ild") is not None else ILDScores()
    extent = raw.get("extent_over_half")
    if extent is not None:
        _boolean(extent, f"{where}.extent_over_half")
    fraction = raw.get("extent_fraction_suggested")
    if fraction is not None:
        fraction = _number(fraction, f"{where}.extent_fraction_suggested")
        if not 0.0 <= fraction <= 1.0:
            raise DPOInputError(f"{where}.extent_fraction_suggested", f"must be in 0-1, not {fraction}")
    emphysema = raw.get("emphysema")
    if emphysema is not None:
        _boolean(emphysema, f"{where}.emphysema")
    return LobeAssessment(dendriform=dendriform, ild=ild, extent_over_half=extent,
                          extent_fraction_suggested=fraction, emphysema=emphysema)


def parse_lobes(lobes_raw: Any) -> dict[str, LobeAssessment]:
    """The ``lobes`` object of a reading, validated."""
    if not isinstance(lobes_raw, dict):
        raise DPOInputError("lobes", f"must be an object keyed by lobe code, not {_type_name(lobes_raw)}")
    lobes = {}
    for code, value in lobes_raw.items():
        if code not in LOBE_CODES:
            raise DPOInputError(f"lobes.{code}",
                                f"unknown lobe code (expected one of {', '.join(LOBE_CODES)})")
        lobes[code] = _parse_lobe(value, f"lobes.{code}")
    return lobes


def parse_reading(raw: Any) -> Reading:
    """Validate a decoded ``dpo-reading/1`` document and return a ``Reading``."""
    _check_object(raw, "", _TOP_KEYS, required=("schema",))
    if raw["schema"] != READING_SCHEMA:
        raise DPOInputError("schema", f"{raw['schema']!r} is not supported (expected {READING_SCHEMA!r})")
    findings_raw = raw.get("findings", [])
    if not isinstance(findings_raw, list):
        raise DPOInputError("findings", f"must be a list, not {_type_name(findings_raw)}")
    findings = tuple(parse_finding(item, f"findings[{i}]") for i, item in enumerate(findings_raw))
    lobes = parse_lobes(raw.get("lobes", {}))
    meta = {k: v for k, v in raw.items() if k not in ("schema", "findings", "lobes")}
    return Reading(findings=findings, lobes=lobes, meta=meta)


def load_json_file(path: str | Path, what: str = "file") -> Any:
    """Read a JSON file, turning every failure into one ``DPOInputError`` line naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DPOInputError(str(path), f"no such {what}") from None
    except IsADirectoryError:
        raise DPOInputError(str(path), f"is a folder, not a {what}") from None
    except UnicodeDecodeError:
        raise DPOInputError(str(path), f"is not a text {what} (not UTF-8)") from None
    except OSError as error:
        raise DPOInputError(str(path), f"cannot be read ({error.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DPOInputError(str(path), f"is not valid JSON: line {error.lineno} column "
                            f"{error.colno}: {error.msg}") from None


def load_reading(path: str | Path) -> Reading:
    """Load and validate a reading file; errors name the file and the field path."""
    raw = load_json_file(path, "reading file")
    try:
        return parse_reading(raw)
    except DPOInputError as error:
        raise DPOInputError(f"{path}: {error.where}", error.problem) from None
