"""``report.html``: a self-contained visual report of one case (images embedded), and its PNGs.

Overview axial bone-window slices (orientation letters, slice position in mm) and a coronal
maximum-intensity projection of the lungs, every candidate circled in its status colour and
numbered as in the gallery and the tables; a gallery of every candidate (bone and lung window
side by side, 10 mm scale bar, its number, id, lobe, zone, size, peak HU and status); a stacked
per-lobe chart (counted nodules, confirmed nodules left out by the dendriform rule, pending);
the score tables, the definitions under every variant and the policy in words; warnings and
provenance. Images are drawn with Pillow, the page is the Jinja2 template
``templates/report.html.j2`` (with an A4 print stylesheet), the chart is inline SVG.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..common.anatomy import BY_CODE, LOBE_CODES
from ..rules.score_summary import (
    LOBE_COLUMNS,
    NOT_ASSESSED,
    STATUS_WORDS,
    any_ild_answered,
    banner_text,
    excluded_by_dendriform,
    format_number,
    is_complete,
    kind_words,
    lobe_rows,
    policy_words,
    review_state,
    variant_rows,
)

BONE = (2500.0, 500.0)  # window width, level (HU): the paper's bone window
LUNG = (1500.0, -600.0)  # the usual lung window
COLOURS = {"pending": (255, 200, 0), "confirmed": (40, 210, 80), "rejected": (160, 160, 160)}
SEPARATE_COLOUR = (60, 150, 255)
EXCLUDED_COLOUR = (230, 120, 40)
GALLERY_MM = 30.0  # field of view of a gallery panel
GALLERY_PX = 180
SCALE_BAR_MM = 10.0
OVERVIEW_PX = 440  # width of an overview image
NEAR_SLICE_MM = 5.0  # candidates this close to an overview slice are drawn on it
GALLERY_LIMIT = 300
TEMPLATES = Path(__file__).resolve().parent / "templates"


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _window(values: np.ndarray, window=BONE) -> np.ndarray:
    width, level = window
    return (np.clip((values - (level - width / 2.0)) / width, 0.0, 1.0) * 255).astype(np.uint8)


def _colour(finding: dict) -> tuple[int, int, int]:
    if finding.get("kind") in ("large_calcified", "granuloma") and finding.get("status") != "rejected":
        return SEPARATE_COLOUR
    return COLOURS.get(finding.get("status"), COLOURS["pending"])


def _png(image: Image.Image) -> bytes:
    stream = io.BytesIO()
    image.save(stream, format="PNG", optimize=True)
    return stream.getvalue()


def axis_letters(direction: np.ndarray) -> tuple[str, str]:
    """(letter at the low end, letter at the high end) of an image axis pointing along ``direction``
    (LPS): x+ is the patient's left, y+ posterior, z+ superior."""
    axis = int(np.argmax(np.abs(direction)))
    positive, negative = ("L", "P", "S")[axis], ("R", "A", "I")[axis]
    return (negative, positive) if direction[axis] > 0 else (positive, negative)


def _text(draw, xy, text, size=14, fill=(255, 255, 255), anchor="la"):
    """Text with a dark outline, readable on any image."""
    draw.text(xy, text, fill=fill, font=_font(size), anchor=anchor, stroke_width=2, stroke_fill=(0, 0, 0))


def _orientation(draw, width, height, columns: tuple[str, str], rows: tuple[str, str]):
    _text(draw, (4, height // 2), columns[0], 16, anchor="lm")
    _text(draw, (width - 4, height // 2), columns[1], 16, anchor="rm")
    _text(draw, (width // 2, 4), rows[0], 16, anchor="mt")
    _text(draw, (width // 2, height - 4), rows[1], 16, anchor="mb")


def _scale_bar(draw, px_per_mm: float, width: int, height: int, mm: float = SCALE_BAR_MM):
    length = mm * px_per_mm
    x1, y = width - 8, height - 10
    draw.line([(x1 - length, y), (x1, y)], fill=(255, 255, 255), width=3)
    _text(draw, (x1 - length / 2, y - 4), f"{mm:g} mm", 12, anchor="mb")


def _mark(draw, x, y, colour, number: int, radius=9):
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=colour, width=2)
    _text(draw, (x + radius + 1, y - radius - 1), str(number), 13, fill=colour, anchor="lb")


def _resized(pixels: np.ndarray, mm_wide: float, mm_high: float, width_px: int) -> tuple[Image.Image, float]:
    """The windowed pixels as an RGB image ``width_px`` wide at the true aspect ratio; px per mm."""
    px_per_mm = width_px / mm_wide
    image = Image.fromarray(pixels).convert("RGB")
    return image.resize((width_px, max(int(round(mm_high * px_per_mm)), 1)), Image.LANCZOS), px_per_mm


def overview_figures(hu: np.ndarray, geometry, numbered: list[tuple[int, dict, np.ndarray]], lungs_z,
                     lungs: np.ndarray | None = None) -> tuple[dict[str, bytes], dict[str, str]]:
    """Axial slices at 70/50/30 % of the lungs' height and a coronal maximum-intensity projection of
    the lungs (ribs and spine left out), candidates circled and numbered. Returns (PNG by name,
    caption by name)."""
    figures, captions = {}, {}
    sx, sy, sz = geometry.spacing
    direction = np.array(geometry.direction, dtype=float).reshape(3, 3)
    columns, rows, slices = (axis_letters(direction[:, n]) for n in range(3))
    nk, nj, ni = hu.shape
    z0, z1 = lungs_z
    for percent in (70, 50, 30):
        k = int(round(z0 + (z1 - z0) * percent / 100.0))
        image, scale = _resized(_window(hu[k]), ni * sx, nj * sy, OVERVIEW_PX)
        draw = ImageDraw.Draw(image)
        shown = []
        for number, finding, kji in numbered:
            if abs(kji[0] - k) * sz <= NEAR_SLICE_MM:
                _mark(draw, (kji[2] + 0.5) * sx * scale, (kji[1] + 0.5) * sy * scale, _colour(finding), number)
                shown.append(number)
        _orientation(draw, image.width, image.height, columns, rows)
        _scale_bar(draw, scale, image.width, image.height, 50.0)
        z_mm = geometry.ijk_to_lps([0, 0, k])[2]
        name = f"axial_{percent}.png"
        figures[name] = _png(image)
        captions[name] = (f"Axial, {percent} % of the lungs' height: slice {k + 1} of {nk}, z = {z_mm:+.1f} mm "
                          f"({slices[1]} is +); candidates within {NEAR_SLICE_MM:g} mm: "
                          + (", ".join(map(str, shown)) if shown else "none"))
    inside = hu if lungs is None else np.where(lungs > 0, hu, np.int16(-1024))
    projection = inside.max(axis=1)[::-1]  # coronal MIP of the lungs, head up
    image, scale = _resized(_window(projection), ni * sx, nk * sz, OVERVIEW_PX)
    draw = ImageDraw.Draw(image)
    for number, finding, kji in numbered:
        _mark(draw, (kji[2] + 0.5) * sx * scale, (nk - 1 - kji[0] + 0.5) * sz * scale, _colour(finding), number, 7)
    _orientation(draw, image.width, image.height, columns, slices[::-1])
    _scale_bar(draw, scale, image.width, image.height, 50.0)
    figures["coronal_mip.png"] = _png(image)
    captions["coronal_mip.png"] = (f"Coronal maximum-intensity projection of the lungs (front to back), "
                                   f"all {len(numbered)} candidates")
    return figures, captions


def _crop(array: np.ndarray, centre_a: int, centre_b: int, half_a: int, half_b: int) -> np.ndarray:
    padded = np.pad(array, ((half_a, half_a), (half_b, half_b)), constant_values=-1024)
    return padded[centre_a:centre_a + 2 * half_a + 1, centre_b:centre_b + 2 * half_b + 1]


def gallery_image(hu: np.ndarray, spacing, kji: np.ndarray, colour, number: int, finding_id: str,
                  letters: tuple[tuple[str, str], tuple[str, str]] = (("R", "L"), ("A", "P"))) -> bytes:
    """The candidate's axial slice, a 30 mm field in the bone and in the lung window side by side,
    each panel with its window, the candidate's number and id and a 10 mm scale bar."""
    sx, sy = spacing[0], spacing[1]
    half_i, half_j = (max(int(round(GALLERY_MM / 2 / s)), 2) for s in (sx, sy))
    k, j, i = np.clip(np.round(kji).astype(int), 0, np.array(hu.shape) - 1)
    crop = _crop(hu[k], j, i, half_j, half_i)
    panels = []
    for window, name in ((BONE, "bone W2500/L500"), (LUNG, "lung W1500/L-600")):
        tile, scale = _resized(_window(crop, window), crop.shape[1] * sx, crop.shape[0] * sy, GALLERY_PX)
        draw = ImageDraw.Draw(tile)
        cx, cy = tile.width / 2, tile.height / 2
        for dx, dy in ((0, -1), (0, 1), (-1, 0), (1, 0)):  # four ticks pointing at the centre
            draw.line([(cx + dx * 14, cy + dy * 14), (cx + dx * 26, cy + dy * 26)], fill=colour, width=2)
        _text(draw, (4, 3), f"{number}  {finding_id}", 13, fill=colour)
        _text(draw, (4, tile.height - 4), name, 11, anchor="lb")
        _text(draw, (3, cy), letters[0][0], 12, anchor="lm")
        _text(draw, (tile.width - 3, cy), letters[0][1], 12, anchor="rm")
        _scale_bar(draw, scale, tile.width, tile.height)
        panels.append(tile)
    strip = Image.new("RGB", (sum(p.width for p in panels) + 4, max(p.height for p in panels)), (255, 255, 255))
    strip.paste(panels[0], (0, 0))
    strip.paste(panels[1], (panels[0].width + 4, 0))
    return _png(strip)


def chart_data(scores: dict, reading: dict | None) -> dict:
    """Per lobe: counted nodular POs, confirmed ones left out by the dendriform rule, pending ones,
    and the y-axis ticks, for the stacked bar chart (drawn as SVG by the template)."""
    excluded = excluded_by_dendriform(scores, reading)
    bars = []
    for code in LOBE_CODES:
        counted = scores["nnpol"][code]
        pending = scores["provisional"]["nnpol"][code] - counted
        bars.append({"code": code, "counted": counted, "excluded": excluded[code], "pending": max(pending, 0),
                     "dendriform": code in scores["dendriform_lobes"]})
    top = max([b["counted"] + b["excluded"] + b["pending"] for b in bars] + [1])
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if top / s <= 8)
    ticks = list(range(0, ((top + step - 1) // step) * step + 1, step))
    height, width, left, bottom, top_margin = 240, 560, 48, 40, 18
    plot = height - bottom - top_margin
    unit = plot / ticks[-1]
    slot = (width - left - 10) / len(bars)
    for n, bar in enumerate(bars):
        bar["x"] = round(left + n * slot + slot * 0.2, 1)
        bar["width"] = round(slot * 0.6, 1)
        y = height - bottom
        for part in ("counted", "excluded", "pending"):
            bar[f"{part}_y"] = round(y - bar[part] * unit, 1)
            bar[f"{part}_h"] = round(bar[part] * unit, 1)
            y -= bar[part] * unit
        bar["label_y"] = round(y - 4, 1)
    return {"bars": bars, "ticks": [{"value": t, "y": round(height - bottom - t * unit, 1)} for t in ticks],
            "width": width, "height": height, "left": left, "base": height - bottom, "top": top_margin,
            "colours": {"counted": _css(COLOURS["confirmed"]), "excluded": _css(EXCLUDED_COLOUR),
                        "pending": _css(COLOURS["pending"])}}


def _css(rgb) -> str:
    return "rgb({},{},{})".format(*rgb)


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _candidate_row(number: int, finding: dict) -> dict:
    def mm(key):
        value = finding.get(key)
        return "" if value is None else f"{value:.1f} mm"

    peak = finding.get("peak_hu")
    return {"number": number, "id": finding.get("id", ""), "lobe": finding.get("lobe", ""),
            "lobe_name": BY_CODE[finding["lobe"]].name if finding.get("lobe") in BY_CODE else "no lobe",
            "zone": finding.get("zone") or "zone not known", "kind": kind_words(finding.get("kind")),
            "short_axis": mm("short_axis_mm"), "long_axis": mm("long_axis_mm"),
            "peak_hu": "" if peak is None else f"{peak:.0f} HU", "status": finding.get("status", "pending"),
            "status_words": STATUS_WORDS.get(finding.get("status"), finding.get("status", "")),
            "colour": _css(_colour(finding))}


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def fissure_support(lobe_provenance: dict) -> list[tuple[str, str]]:
    """(fissure, share of its surface supported by image evidence) for the fissure method's
    lobes, in the order the reader checks them: least supported first."""
    from ..lobes.fissures import FISSURE_NAMES

    fissures = lobe_provenance.get("fissures") or {}
    shares = [(FISSURE_NAMES.get(name, name), float(item["confidence"])) for name, item in fissures.items()
              if isinstance(item, dict) and item.get("confidence") is not None]
    return [(name, f"{share:.0%}") for name, share in sorted(shares, key=lambda pair: pair[1])]


def render_report(case_id: str, scores: dict, reading: dict, figures: dict, captions: dict, gallery: dict,
                  warnings: list[str], provenance: dict) -> str:
    findings = reading.get("findings", [])
    rows = [_candidate_row(n, f) for n, f in enumerate(findings, start=1)]
    for row in rows:
        row["image"] = _data_uri(gallery[row["id"]]) if row["id"] in gallery else None
    ild_answered = any_ild_answered(reading)
    context = {
        "case_id": case_id,
        "banner": banner_text(scores, reading),
        "state": review_state(scores, reading),
        "complete": is_complete(scores, reading),
        "scores": scores,
        "reader": (reading.get("reader") or "").strip(),
        "lobe_columns": LOBE_COLUMNS,
        "lobe_rows": lobe_rows(scores, reading),
        "variants": variant_rows(scores),
        "policy": scores["policy"],
        "policy_words": policy_words(scores["policy"]),
        "ans": format_number(scores["ans"]),
        "ild_extent": str(scores["ild_extent"]) if ild_answered else NOT_ASSESSED,
        "coarseness": format_number(scores["coarseness_score"]) if ild_answered else NOT_ASSESSED,
        "warnings": list(dict.fromkeys(warnings + scores.get("warnings", []))),
        "overview": [{"name": n, "uri": _data_uri(figures[n]), "caption": captions[n]}
                     for n in ("axial_70.png", "axial_50.png", "axial_30.png", "coronal_mip.png")],
        "chart": chart_data(scores, reading),
        "candidates": rows,
        "in_gallery": sum(1 for r in rows if r["image"]),
        "gallery_limit": GALLERY_LIMIT,
        "colours": {k: _css(v) for k, v in COLOURS.items()} | {"separate": _css(SEPARATE_COLOUR)},
        "provenance": provenance,
        "fissure_support": fissure_support(provenance.get("lobes") or {}),
    }
    return _environment().get_template("report.html.j2").render(**context)


def build_report(case_id: str, ct, lungs: np.ndarray, scores: dict, reading: dict, warnings: list[str],
                 provenance: dict) -> tuple[str, dict[str, bytes]]:
    """(report HTML, PNG files by name) for a case; ``reading`` is the ``dpo-reading/1`` dict."""
    hu = ct.array
    geometry = ct.geometry
    numbered = [(n, f, np.array(geometry.lps_to_ijk(f["lps"]))[::-1])
                for n, f in enumerate(reading.get("findings", []), start=1) if f.get("lps")]
    present = np.nonzero(lungs.reshape(lungs.shape[0], -1).any(axis=1))[0]
    lungs_z = (present[0], present[-1]) if present.size else (0, hu.shape[0] - 1)
    figures, captions = overview_figures(hu, geometry, numbered, lungs_z, lungs)
    direction = np.array(geometry.direction, dtype=float).reshape(3, 3)
    letters = (axis_letters(direction[:, 0]), axis_letters(direction[:, 1]))
    gallery = {f["id"]: gallery_image(hu, ct.spacing, kji, _colour(f), n, f["id"], letters)
               for n, f, kji in numbered[:GALLERY_LIMIT]}
    page = render_report(case_id, scores, reading, figures, captions, gallery, warnings, provenance)
    files = {f"figures/{name}": data for name, data in figures.items()}
    files.update({f"figures/gallery/{n:03d}-{f['id']}.png": gallery[f["id"]]
                  for n, f, _ in numbered[:GALLERY_LIMIT]})
    return page, files
