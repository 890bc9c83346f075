"""Tables 1-4 of the paper, and more, from a ``dpo-cohort-stats/1`` document: tables.html
(self-contained: the figure is an embedded PNG) and tables.md (for a paper's supplement).

Formats follow the paper: "n (%)" (or "k/n (%)" when some cases lack the information), "median
(minimum-maximum)", P as ".356" or "<.001", odds ratios with 95 % CIs in parentheses.
"""

from __future__ import annotations

import base64
import io

from .cohort_table import label

HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Cohort statistics - {{ title }}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #111; max-width: 70em; }
table { border-collapse: collapse; margin: 0.5em 0 0.3em 0; }
th, td { border-top: 1px solid #bbb; border-bottom: 1px solid #bbb; padding: 0.25em 0.7em; text-align: left; }
th { background: #eee; } td.num { text-align: right; }
p.note { font-size: 0.85em; color: #444; max-width: 60em; }
figure img { max-width: 42em; }
</style></head><body>
<h1>Cohort statistics</h1>
<p>{{ summary }}</p>
{% for t in tables %}
<h2 id="{{ t.id }}">{{ t.title }}</h2>
<table><thead><tr>{% for h in t.header %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in t.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table>{% if t.note %}<p class="note">{{ t.note }}</p>{% endif %}
{% endfor %}
{% for f in figures %}
<h2 id="{{ f.id }}">{{ f.title }}</h2>
<figure><img alt="{{ f.title }}" src="data:image/png;base64,{{ f.png }}"><figcaption class="note">{{ f.caption }}
</figcaption></figure>
{% endfor %}
<p class="note">{{ provenance }}</p>
</body></html>
"""


def fmt_p(p) -> str:
    if p is None:
        return "-"
    return "<.001" if p < 0.001 else f"{p:.3f}".lstrip("0")


def fmt_num(x) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def fmt_ci(estimate, ci, digits: int = 2) -> str:
    if estimate is None:
        return "-"
    if not ci or ci[0] is None:
        return f"{estimate:.{digits}f}"
    return f"{estimate:.{digits}f} ({ci[0]:.{digits}f}, {ci[1]:.{digits}f})"


def _find(analyses, kind, variable=None, groups=None, **extra):
    for entry in analyses:
        if entry["analysis"] != kind:
            continue
        if variable is not None and entry.get("variable") != variable:
            continue
        if groups is not None and entry.get("groups") != groups:
            continue
        if all(entry.get(k) == v for k, v in extra.items()):
            return entry
    return None


def _binary_cell(count: dict, size: int) -> str:
    if not count or count["n"] == 0:
        return "-"
    share = f"{count['positive']}/{count['n']}" if count["n"] < size else f"{count['positive']}"
    return f"{share} ({count['percent']:.1f})"


def _continuous_cell(count: dict) -> str:
    if not count or not count["n"]:
        return "-"
    return f"{fmt_num(count['median'])} ({fmt_num(count['min'])}\u2013{fmt_num(count['max'])})"


def table1(doc: dict) -> dict:
    cohort, analyses = doc["cohort"], doc["analyses"]
    ref, levels, sizes = cohort["reference"], cohort["levels"], cohort["level_counts"]
    others = [lv for lv in levels if lv != ref]
    rest_size = sum(sizes[lv] for lv in others)
    header = ["Characteristic", f"{ref} (n = {sizes[ref]})", f"Non-{ref} (n = {rest_size})"]
    header += ([f"{lv} (n = {sizes[lv]})" for lv in others] if len(others) > 1 else []) + ["P value"]
    rows, fisher_used = [], False
    names = [n for n in cohort["binary"] + cohort["continuous"]]
    from .cohort_analysis import ordered

    for name in ordered(names):
        pooled = _find(analyses, "binary_by_group", name, [ref, "rest"]) or \
            _find(analyses, "continuous_by_group", name, [ref, "rest"])
        if pooled is None:
            continue
        binary = pooled["analysis"] == "binary_by_group"
        full = _find(analyses, pooled["analysis"], name, levels) if len(levels) > 2 else None
        counts = dict((full or pooled)["counts"])
        counts["rest"] = pooled["counts"]["rest"]
        known = counts[ref]["n"] + counts["rest"]["n"]
        title = label(name) + (f" (n = {known})" if known < cohort["n"] else "")
        cell = (lambda c, size: _binary_cell(c, size)) if binary else (lambda c, size: _continuous_cell(c))
        row = [title, cell(counts[ref], sizes[ref]), cell(counts["rest"], rest_size)]
        if len(others) > 1:
            row += [cell(counts.get(lv), sizes[lv]) for lv in others]
        p = fmt_p(pooled["p"])
        if binary and pooled.get("test") == "fisher":
            p += " (Fisher)"
            fisher_used = True
        rows.append(row + [p])
    note = (f"Binary data are number of patients with percentages in parentheses (k/n when some lack the "
            f"information); continuous data are median (range). P: {ref} vs non-{ref}; binary: Pearson chi-square "
            "without continuity correction" + (", Fisher exact where marked (an expected count < 5)" if fisher_used
                                               else "") + "; continuous: Wilcoxon rank-sum.")
    return {"id": "table1", "title": "Table 1. Demographic and CT data by group", "header": header, "rows": rows,
            "note": note}


def table2(doc: dict) -> dict:
    rows = [[label(e["variables"][1]), f"{e['estimate']:.2f}" if e["estimate"] is not None else "-", fmt_p(e["p"])]
            for e in doc["analyses"] if e["analysis"] == "correlation"]
    return {"id": "table2", "title": "Table 2. Correlations between average nodule score and variables",
            "header": ["Variable", "R (Spearman)", "P value"], "rows": rows, "note": ""}


def table3(doc: dict) -> dict:
    ref = doc["cohort"]["reference"]
    rows = []
    for entry in doc["analyses"]:
        if entry["analysis"] == "continuous_by_binary":
            present, absent = (("Male", "Female") if entry["by"] == "sex" else ("Presence", "Absence"))
            rows.append([label(entry["by"]), "", ""])
            rows.append([f"\u2003{present}", _continuous_cell(entry["counts"]["present"]), fmt_p(entry["p"])])
            rows.append([f"\u2003{absent}", _continuous_cell(entry["counts"]["absent"]), ""])
    diagnosis = _find(doc["analyses"], "continuous_by_group", "ans", [ref, "rest"])
    if diagnosis:
        rows += [["Diagnosis", "", ""],
                 [f"\u2003{ref}", _continuous_cell(diagnosis["counts"][ref]), fmt_p(diagnosis["p"])],
                 [f"\u2003Non-{ref}", _continuous_cell(diagnosis["counts"]["rest"]), ""]]
    return {"id": "table3", "title": "Table 3. Average nodule score for dichotomous variables",
            "header": ["Variable", "Average nodule score", "P value"], "rows": rows,
            "note": "Median (range); Wilcoxon rank-sum test."}


def table4(doc: dict) -> dict:
    model = _find(doc["analyses"], "multivariate_logistic")
    final = (model or {}).get("final") or {}
    rows = []
    for entry in doc["analyses"]:
        if entry["analysis"] != "odds_ratio":
            continue
        name = entry["variable"]
        unit = "*" if entry["kind"] == "continuous" else ""
        multi = final.get(name)
        rows.append([label(name).replace(" at CT", "") + unit, fmt_ci(entry["estimate"], entry["ci"]),
                     fmt_p(entry["p"]), fmt_ci(multi["estimate"], multi["ci"]) if multi else "...",
                     fmt_p(multi["p"]) if multi else "..."])
    ref = doc["cohort"]["reference"]
    candidates = ", ".join(label(v) for v in (model or {}).get("variables", []))
    note = (f"Logistic regression of {ref} vs the others; 95 % Wald confidence intervals in parentheses. * Odds ratio "
            f"per unit of a continuous variable. Multivariate: backward elimination from [{candidates}], removing "
            f"the variable with the largest P while P >= .01 (n = {(model or {}).get('counts', {}).get('n', 0)} "
            "complete cases); '...' = not in the final model.")
    return {"id": "table4", "title": f"Table 4. Univariate and multivariate logistic regression: {ref} vs others",
            "header": ["Variable", "Univariate OR (95% CI)", "P value", "Multivariate OR (95% CI)", "P value"],
            "rows": rows, "note": note}


def extra_tables(doc: dict) -> list:
    analyses, ref = doc["analyses"], doc["cohort"]["reference"]
    tables = []
    prevalences = [e for e in analyses if e["analysis"] == "prevalence"]
    if prevalences:
        levels = prevalences[0]["groups"]
        rows = [[label(e["variable"])] + [_binary_cell(e["counts"][lv], e["counts"][lv]["n"]) for lv in levels]
                for e in prevalences]
        tables.append({"id": "prevalence", "title": "Prevalence of DPO by definition and variant",
                       "header": ["Definition"] + [f"non-{ref}" if lv == "rest" else lv for lv in levels], "rows": rows,
                       "note": "n (%). Variants (_total, _lobe, _each_lung) are recomputed from the per-lobe counts "
                               "(spec section 5); dpo_def1 and dpo_def2 are the batch's own columns."})
    rows = [[label(e["variable"]), e["groups"][1] if e["groups"][1] != "rest" else f"non-{ref}",
             f"{e['counts'][ref]['positive']}/{e['counts'][ref]['n']}",
             f"{e['counts'][e['groups'][1]]['positive']}/{e['counts'][e['groups'][1]]['n']}",
             e["test"] or "-", fmt_p(e.get("p_chi2")), fmt_p(e.get("p_fisher"))]
            for e in analyses if e["analysis"] == "binary_by_group" and len(e["groups"]) == 2]
    tables.append({"id": "pairwise", "title": f"Pairwise comparisons of {ref} with each group (binary variables)",
                   "header": ["Variable", "Compared with", ref, "Other", "Test used", "P chi-square", "P Fisher"],
                   "rows": rows, "note": "Chi-square without continuity correction; Fisher exact used when an "
                                         "expected count is < 5."})
    rows = []
    for e in analyses:
        if e["analysis"] == "agreement" and "kappa" in e:
            c = e["counts"]
            rows.append([" vs ".join(e["variables"]) + (f" ({' vs '.join(e['groups'])})" if e["groups"] != ["all"]
                                                        else ""),
                         f"{c['both_positive']} / {c['first_only']} / {c['second_only']} / {c['both_negative']}",
                         f"{e['statistic']:.2f}" if e["statistic"] is not None else "-", fmt_p(e["p"]),
                         fmt_p(e.get("p_exact")), fmt_ci(e.get("kappa"), e.get("ci"))])
    tables.append({"id": "agreement", "title": "Agreement of binary ratings",
                   "header": ["Ratings", "++ / +- / -+ / --", "McNemar chi-square", "P", "P exact", "Kappa (95% CI)"],
                   "rows": rows, "note": "McNemar without continuity correction; exact P from the binomial."})
    rows = [[label(e["variable"]), e["target"], fmt_ci(e["sensitivity"]["estimate"], e["sensitivity"]["ci"], 3),
             fmt_ci(e["specificity"]["estimate"], e["specificity"]["ci"], 3), fmt_ci(e["ppv"]["estimate"], None, 3),
             fmt_ci(e["npv"]["estimate"], None, 3)] for e in analyses if e["analysis"] == "diagnostic_accuracy"]
    tables.append({"id": "accuracy", "title": "Diagnostic accuracy", "header": ["Test", "Target", "Sensitivity",
                                                                                 "Specificity", "PPV", "NPV"],
                   "rows": rows, "note": "Clopper-Pearson 95 % confidence intervals."})
    linear = _find(analyses, "linear_regression")
    if linear and "terms" in linear:
        rows = [[label(n), fmt_ci(t["estimate"], t["ci"], 3), fmt_p(t["p"])] for n, t in linear["terms"].items()]
        tables.append({"id": "linear", "title": "Linear regression of lnskew0(average nodule score)",
                       "header": ["Variable", "Coefficient (95% CI)", "P value"], "rows": rows,
                       "note": f"ln(ANS - k), k = {linear['k']:.4g} (zero skewness, Stata lnskew0); n = "
                               f"{linear['counts']['n']}; R\u00b2 = {linear['r_squared']:.3f}."})
    iccs = [e for e in analyses if e["analysis"] == "agreement" and str(e.get("test", "")).startswith("icc")]
    if iccs:
        rows = [[label(e["variable"]), e["level"], e["counts"]["n"], fmt_ci(e.get("estimate"), e.get("ci"))]
                for e in iccs]
        tables.append({"id": "readers", "title": "Inter-reader agreement of counts and scores",
                       "header": ["Variable", "Level", "Cases", "ICC(2,1) (95% CI)"], "rows": rows, "note": ""})
    return tables


def threshold_figure(doc: dict):
    curve = _find(doc["analyses"], "threshold_curve")
    if not curve or not curve["points"]:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    t = [p["threshold"] for p in curve["points"]]
    axes.plot(t, [p["sensitivity"] for p in curve["points"]], "o-", label="sensitivity", markersize=3)
    axes.plot(t, [p["specificity"] for p in curve["points"]], "s-", label="specificity", markersize=3)
    for entry in doc["analyses"]:
        if entry["analysis"] == "diagnostic_accuracy" and entry["target"] == curve["target"] \
                and entry["sensitivity"]["estimate"] is not None and entry["specificity"]["estimate"] is not None:
            axes.axhline(entry["sensitivity"]["estimate"], ls=":", lw=0.8, color="C0")
            axes.axhline(entry["specificity"]["estimate"], ls=":", lw=0.8, color="C1")
            axes.annotate(entry["variable"], (t[-1], entry["specificity"]["estimate"]), fontsize=7, ha="right",
                          va="bottom")
    axes.set_xlabel("average nodule score threshold (positive when ANS >= threshold)")
    axes.set_ylabel("proportion")
    axes.set_ylim(0, 1.02)
    axes.set_title(f"Sensitivity and specificity for {curve['target']}")
    axes.legend(loc="center right", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return {"id": "figure2", "title": "Figure. Sensitivity and specificity across average nodule score thresholds",
            "png": base64.b64encode(buffer.getvalue()).decode("ascii"), "png_bytes": buffer.getvalue(),
            "caption": "Dotted lines: sensitivity (blue) and specificity (orange) of the DPO definitions for the "
                       "same target (cf. the paper's Fig. 2)."}


def all_tables(doc: dict) -> list:
    return [table1(doc), table2(doc), table3(doc), table4(doc)] + extra_tables(doc)


def _summary(doc: dict) -> str:
    c = doc["cohort"]
    left = "; ".join(f"{k}: {v}" for k, v in c["left_out"].items()) or "none"
    return (f"{c['n']} cases from {c['path']} (SHA-256 {c['sha256'][:12]}...), grouped by {c['group']} "
            f"(reference {c['reference']}; {', '.join(f'{k} {v}' for k, v in c['level_counts'].items())}). "
            f"Left out: {left}.")


def render_html(doc: dict, figure) -> str:
    import jinja2

    environment = jinja2.Environment(autoescape=True)
    p = doc["provenance"]
    return environment.from_string(HTML).render(
        title=doc["cohort"]["path"], summary=_summary(doc), tables=all_tables(doc),
        figures=[figure] if figure else [],
        provenance=f"{p['software']}; {', '.join(f'{k} {v}' for k, v in p['libraries'].items())}; {p['created']}. "
                   f"Methods: {p['reference']}.")


def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\u2003", "&emsp;")


def render_markdown(doc: dict) -> str:
    lines = ["# Cohort statistics", "", _summary(doc), ""]
    for t in all_tables(doc):
        lines += [f"## {t['title']}", "", "| " + " | ".join(_md_cell(h) for h in t["header"]) + " |",
                  "|" + "---|" * len(t["header"])]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t["rows"]]
        lines += ["", t["note"], ""] if t["note"] else [""]
    return "\n".join(lines)
