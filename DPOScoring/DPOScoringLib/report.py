"""``report.html``: a self-contained visual report of one case (images embedded), and its PNGs.

Overview bone-window slices and a coronal maximum-intensity projection with every candidate
marked by status, a gallery of every candidate (three orthogonal bone-window crops, its
measurements and decision), a per-lobe bar chart, the score table, the definitions with the
policy used, and every warning. Drawn with Pillow (no plotting library needed).
"""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
from PIL import Image, ImageDraw

from .lobes import LOBE_CODES
from .score_summary import LOBE_COLUMNS, banner_text, format_number, lobe_rows

BONE = (2500.0, 500.0)
COLOURS = {"pending": (255, 210, 0), "confirmed": (40, 220, 80), "rejected": (150, 150, 150)}
SEPARATE_COLOUR = (60, 150, 255)
GALLERY_MM = 20.0
GALLERY_LIMIT = 300


def _window(values: np.ndarray, window=BONE) -> np.ndarray:
    width, level = window
    return (np.clip((values - (level - width / 2.0)) / width, 0.0, 1.0) * 255).astype(np.uint8)


def _colour(finding: dict) -> tuple[int, int, int]:
    if finding.get("kind") in ("large_calcified", "granuloma") and finding.get("status") != "rejected":
        return SEPARATE_COLOUR
    return COLOURS.get(finding.get("status"), COLOURS["pending"])


def _png(image: Image.Image) -> bytes:
    stream = io.BytesIO()
    image.save(stream, format="PNG")
    return stream.getvalue()


def _mark(draw, x, y, colour, radius=6):
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=colour, width=2)


def overview_figures(hu: np.ndarray, spacing, findings_kji: list[tuple[dict, np.ndarray]], lungs_z,
                     lungs: np.ndarray | None = None) -> dict:
    """Axial slices at 30/50/70 % of the lungs' height and a coronal maximum-intensity projection
    of the lungs (ribs and spine left out), candidates marked."""
    figures = {}
    z0, z1 = lungs_z
    aspect = spacing[2] / spacing[0]
    for percent in (70, 50, 30):
        k = int(round(z0 + (z1 - z0) * percent / 100.0))
        image = Image.fromarray(_window(hu[k])).convert("RGB")
        draw = ImageDraw.Draw(image)
        for finding, kji in findings_kji:
            if abs(kji[0] - k) * spacing[2] <= 5.0:
                _mark(draw, kji[2], kji[1], _colour(finding))
        figures[f"axial_{percent}.png"] = _png(image)
    inside = hu if lungs is None else np.where(lungs > 0, hu, np.int16(-1024))
    projection = inside.max(axis=1)[::-1]  # coronal MIP of the lungs, head up
    image = Image.fromarray(_window(projection)).convert("RGB")
    image = image.resize((image.width, max(int(image.height * aspect), 1)))
    draw = ImageDraw.Draw(image)
    for finding, kji in findings_kji:
        _mark(draw, kji[2], (hu.shape[0] - 1 - kji[0]) * aspect, _colour(finding), 4)
    figures["coronal_mip.png"] = _png(image)
    return figures


def gallery_image(hu: np.ndarray, spacing, kji: np.ndarray, colour) -> bytes:
    """Axial, coronal and sagittal bone-window crops (20 mm) around one candidate, side by side."""
    half = [max(int(round(GALLERY_MM / 2 / s)), 2) for s in (spacing[2], spacing[1], spacing[0])]
    k, j, i = np.clip(np.round(kji).astype(int), 0, np.array(hu.shape) - 1)

    def window_of(array, centre_a, centre_b, half_a, half_b):
        padded = np.pad(array, ((half_a, half_a), (half_b, half_b)), constant_values=-1024)
        return padded[centre_a:centre_a + 2 * half_a + 1, centre_b:centre_b + 2 * half_b + 1]

    views = [window_of(hu[k], j, i, half[1], half[2]),
             window_of(hu[:, j, :], k, i, half[0], half[2])[::-1],
             window_of(hu[:, :, i], k, j, half[0], half[1])[::-1]]
    tiles = []
    for view in views:
        tile = Image.fromarray(_window(view)).convert("RGB").resize((120, 120), Image.NEAREST)
        draw = ImageDraw.Draw(tile)
        draw.line([(60, 44), (60, 52)], fill=colour, width=2)
        draw.line([(60, 68), (60, 76)], fill=colour, width=2)
        draw.line([(44, 60), (52, 60)], fill=colour, width=2)
        draw.line([(68, 60), (76, 60)], fill=colour, width=2)
        tiles.append(tile)
    strip = Image.new("RGB", (3 * 120 + 8, 120), (0, 0, 0))
    for n, tile in enumerate(tiles):
        strip.paste(tile, (n * 124, 0))
    return _png(strip)


def lobe_bar_chart(scores: dict) -> bytes:
    width, height, margin = 420, 200, 30
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    confirmed = [scores["nnpol"][c] for c in LOBE_CODES]
    provisional = [scores["provisional"]["nnpol"][c] for c in LOBE_CODES]
    top = max(max(provisional), 1)
    bar = (width - 2 * margin) / len(LOBE_CODES)
    for n, code in enumerate(LOBE_CODES):
        x0 = margin + n * bar + 6
        x1 = x0 + bar - 12
        for value, colour in ((provisional[n], COLOURS["pending"]), (confirmed[n], COLOURS["confirmed"])):
            y = height - margin - (height - 2 * margin) * value / top
            draw.rectangle([x0, y, x1, height - margin], fill=colour)
        draw.text((x0, height - margin + 4), code, fill=(0, 0, 0))
        draw.text((x0, max(height - margin - (height - 2 * margin) * provisional[n] / top - 12, 0)),
                  str(confirmed[n]), fill=(0, 0, 0))
    draw.line([(margin, height - margin), (width - margin, height - margin)], fill=(0, 0, 0))
    return _png(image)


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def render_report(case_id: str, scores: dict, findings: list[dict], figures: dict, gallery: dict,
                  warnings: list[str], provenance: dict) -> str:
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                   for row in lobe_rows(scores))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in LOBE_COLUMNS)
    cards = []
    for finding in findings:
        if finding["id"] not in gallery:
            continue
        facts = (f"{finding['id']} - {finding.get('status')} - {finding.get('kind')} - {finding.get('lobe')} - "
                 f"short axis {finding.get('short_axis_mm', float('nan')):.1f} mm - "
                 f"peak {finding.get('peak_hu', float('nan')):.0f} HU - {finding.get('zone') or ''}")
        cards.append(f'<figure class="card">{_img(gallery[finding["id"]], finding["id"])}'
                     f"<figcaption>{html.escape(facts)}</figcaption></figure>")
    policy = scores["policy"]
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in warnings + scores.get("warnings", [])) or "<li>none</li>"
    overview = "".join(_img(figures[name], name) for name in sorted(figures) if name.startswith("axial"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>DPO report {html.escape(case_id)}</title>
<style>body{{font-family:sans-serif;margin:24px;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px}}img{{margin:4px;vertical-align:top}}
.card{{display:inline-block;margin:6px;font-size:12px;width:380px}}.banner{{font-weight:bold;margin:12px 0}}</style>
</head><body>
<h1>Diffuse pulmonary ossification - {html.escape(case_id)}</h1>
<p class="banner">{html.escape(banner_text(scores))}</p>
<h2>Scores per lobe</h2><table><tr>{head}</tr>{rows}</table>
<h2>Definitions and policy</h2>
<p>DPO definition 1 ({html.escape(policy['def1'])}): {'positive' if scores['dpo_def1'] else 'negative'};
definition 2 ({html.escape(policy['def2'])}): {'positive' if scores['dpo_def2'] else 'negative'};
nodules in dendriform lobes: {html.escape(policy['dendriform_nodules'])}. ANS {format_number(scores['ans'])}
({html.escape(scores['ans_note'])}). Variants: {html.escape(json_compact(scores['variants']))}.</p>
<h2>Warnings</h2><ul>{warn}</ul>
<h2>Overview (bone window W2500/L500)</h2>
<p>{overview}{_img(figures['coronal_mip.png'], 'coronal MIP')}</p>
<p>Markers: yellow pending, green confirmed, grey rejected, blue recorded separately.</p>
<h2>Candidates per lobe</h2><p>Green: confirmed nodular POs (the number above each bar);
yellow: with the pending candidates included.</p><p>{_img(figures['lobe_bars.png'], 'per-lobe bar chart')}</p>
<h2>Gallery ({len(cards)} candidates; axial, coronal, sagittal)</h2>{''.join(cards)}
<h2>Provenance</h2><p>DPOScoring {html.escape(provenance['software']['version'])}; input SHA-256
{html.escape(provenance['input']['sha256'])}; lobes: {html.escape(str(provenance['lobes'].get('method')))};
reader: {html.escape(provenance['reader'] or '-')}; {html.escape(provenance['finished'])}.</p>
<script>
// a self-check readable by a headless browser: every image decoded?
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) {{ return !(i.complete && i.naturalWidth > 0); }}).length;
  document.body.setAttribute("data-images", images.length + " loaded, " + broken + " broken");
}});
</script>
</body></html>
"""


def json_compact(value) -> str:
    return json.dumps(value, separators=(", ", ": "))


def build_report(case_id: str, ct, lungs: np.ndarray, scores: dict, findings: list[dict], warnings: list[str],
                 provenance: dict) -> tuple[str, dict[str, bytes]]:
    """(report HTML, PNG files by name) for a case."""
    hu = ct.array
    geometry = ct.geometry
    placed = [(f, np.array(geometry.lps_to_ijk(f["lps"]))[::-1]) for f in findings if f.get("lps")]
    present = np.nonzero(lungs.reshape(lungs.shape[0], -1).any(axis=1))[0]
    lungs_z = (present[0], present[-1]) if present.size else (0, hu.shape[0] - 1)
    figures = overview_figures(hu, ct.spacing, placed, lungs_z, lungs)
    figures["lobe_bars.png"] = lobe_bar_chart(scores)
    gallery = {f["id"]: gallery_image(hu, ct.spacing, kji, _colour(f)) for f, kji in placed[:GALLERY_LIMIT]}
    page = render_report(case_id, scores, findings, figures, gallery, warnings, provenance)
    files = {f"figures/{name}": data for name, data in figures.items()}
    files.update({f"figures/gallery/{name}.png": data for name, data in gallery.items()})
    return page, files
