"""Lobe quality on real data and on the fissure phantom: the distance table of Docs/lobes.md and its
figures.

1. Real thorax CT (``../shared/data/chest-ct-thorax-2mm.nii.gz``): distance from the computed
   fissures (anatomical template alone, and the method: template fitted to image evidence) to the
   fissure points placed by eye (``Testing/Data/thorax_ct_fissure_points.json``): median and 90th
   percentile per fissure, plus the share of each fissure supported by evidence. Figure: sagittal
   planes with both surfaces and the annotated points near each plane.
2. Fissure phantoms (``phantom_fissures.py``, seeds given): lobe Dice per lobe, template and fitted.

Usage: python benchmarks/lobe_quality.py [--figures Docs/figures] [--seeds 0 1 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DPO_SHARED_DATA", REPO.parent / "shared" / "data"))


def dice_per_lobe(a, b):
    return {code: round(2.0 * float(((a == v) & (b == v)).sum()) / max(float((a == v).sum() + (b == v).sum()), 1.0), 3)
            for v, code in enumerate(("RUL", "RML", "RLL", "LUL", "LING", "LLL"), start=1)}


def real_ct(figures: Path | None) -> dict:
    from DPOScoringLib.ct.ct_image import load_ct
    from DPOScoringLib.ct.lung_mask import segment_lungs
    from DPOScoringLib.lobes.fissure_evaluation import load_annotation, summarise
    from DPOScoringLib.lobes.fissure_fit import fissures_from_image
    from DPOScoringLib.lobes.fissures import default_points

    path = SHARED / "chest-ct-thorax-2mm.nii.gz"
    if not path.is_file():
        return {"skipped": f"{path} not available"}
    ct = load_ct(path)
    mask = segment_lungs(ct.array, ct.spacing, ct.image.GetOrigin()[0])
    annotation = load_annotation(REPO / "Testing" / "Data" / "thorax_ct_fissure_points.json")
    template = default_points(mask.labels, ct.geometry, ct.array, mask.carina_slice)
    fitted, provenance, warnings = fissures_from_image(ct.array, mask.labels, ct.geometry, mask.carina_slice)
    from DPOScoringLib.common.anatomy import lobe_volumes_ml
    from DPOScoringLib.lobes.fissures import assign_lobes

    document = json.loads((REPO / "Testing" / "Data" / "thorax_ct_fissure_points.json").read_text())
    parts = {f"{name} {part}": annotation[name][start:end]
             for name, ranges in document.get("parts", {}).items() for part, (start, end) in ranges.items()}
    superseded = {name: np.asarray(item["points"], dtype=float)
                  for name, item in document.get("superseded", {}).items()}
    result = {"template": summarise(annotation, template), "fitted": summarise(annotation, fitted),
              "parts": {"template": summarise(parts, {k: template[k.split()[0]] for k in parts}),
                        "fitted": summarise(parts, {k: fitted[k.split()[0]] for k in parts})},
              "superseded": {"template": summarise(superseded, template), "fitted": summarise(superseded, fitted)},
              "fissures": provenance["fissures"], "warnings": warnings,
              "volumes_ml": {name: {code: round(v, 0) for code, v in lobe_volumes_ml(
                  assign_lobes(mask.labels, ct.geometry, points), ct.spacing).items()}
                  for name, points in (("template", template), ("fitted", fitted))}}
    if figures is not None:
        _real_figure(ct, template, fitted, annotation, superseded, figures / "lobes-real-ct-sagittal.png")
    return result


def _real_figure(ct, template, fitted, annotation, superseded, out: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import ndimage

    from DPOScoringLib.lobes.fissures import FissureSurface

    g = ct.geometry
    planes = (-110.0, -95.0, -85.0, -75.0, 90.0, 115.0)
    fig, axes = plt.subplots(3, 2, figsize=(11, 13), dpi=80)
    axes = axes.ravel()
    for ax, x in zip(axes, planes):
        i = int(round((x - g.origin[0]) / g.spacing[0]))
        img = ndimage.zoom(ct.array[:, :, i - 1:i + 2].mean(axis=2), (g.spacing[2], g.spacing[1]), order=1)
        extent = [g.origin[1], g.origin[1] + img.shape[1], g.origin[2], g.origin[2] + img.shape[0]]
        ax.imshow(img, cmap="gray", vmin=-900, vmax=-600, origin="lower", extent=extent)
        ys = np.linspace(-70, 170, 200)
        names = ("RO", "RH") if x < 0 else ("LO", "LG")
        for name in names:
            ax.plot(ys, FissureSurface(name, template[name]).height(np.full_like(ys, x), ys), "r--", lw=1)
            ax.plot(ys, FissureSurface(name, fitted[name]).height(np.full_like(ys, x), ys), "lime", lw=1)
            if name in annotation:
                p = annotation[name][np.abs(annotation[name][:, 0] - x) <= 6.0]
                ax.scatter(p[:, 1], p[:, 2], s=18, facecolors="none", edgecolors="yellow")
            if name in superseded:
                p = superseded[name][np.abs(superseded[name][:, 0] - x) <= 6.0]
                ax.scatter(p[:, 1], p[:, 2], s=18, marker="x", c="orange", lw=1)
        ax.set_xlim(-70, 170)
        ax.set_ylim(-125, 80)
        ax.set_title(f"x = {x:g} mm ({'right' if x < 0 else 'left'})", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle("thorax CT, sagittal, 3 mm slabs (anterior left; -900/-600 HU): template red dashed, method green, "
                 "points placed by eye within 6 mm yellow, superseded points orange x", fontsize=9)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


def phantoms(seeds, figures: Path | None) -> dict:
    from DPOScoringLib.lobes.fissure_fit import fissures_from_image
    from DPOScoringLib.lobes.fissures import assign_lobes, default_points
    from DPOScoringLib.synthetic.phantom_fissures import FissurePhantomSpec, generate_fissure_phantom

    result = {}
    for seed in seeds:
        phantom = generate_fissure_phantom(FissurePhantomSpec(seed=seed))
        template = default_points(phantom.lungs, phantom.geometry)
        fitted, provenance, _ = fissures_from_image(phantom.hu, phantom.lungs, phantom.geometry)
        result[str(seed)] = {
            "template": dice_per_lobe(assign_lobes(phantom.lungs, phantom.geometry, template), phantom.lobes),
            "fitted": dice_per_lobe(assign_lobes(phantom.lungs, phantom.geometry, fitted), phantom.lobes),
            "confidence": {n: f["confidence"] for n, f in provenance["fissures"].items()}}
        if figures is not None and seed == seeds[0]:
            _phantom_figure(phantom, template, fitted, figures / "lobes-phantom-sagittal.png")
    return result


def _phantom_figure(phantom, template, fitted, out: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from DPOScoringLib.lobes.fissures import FissureSurface

    g = phantom.geometry
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6), dpi=60)
    for ax, x in zip(axes, (-70.0, 70.0)):
        i = int(round((x - g.origin[0]) / g.spacing[0]))
        extent = [g.origin[1], g.origin[1] + g.size[1] * g.spacing[1],
                  g.origin[2], g.origin[2] + g.size[2] * g.spacing[2]]
        ax.imshow(phantom.hu[:, :, i], cmap="gray", vmin=-950, vmax=-550, origin="lower", extent=extent, aspect="auto")
        ys = np.linspace(-90, 90, 200)
        for name in (("RO", "RH") if x < 0 else ("LO", "LG")):
            ax.plot(ys, phantom.height(name, x, ys), "c", lw=1)
            ax.plot(ys, FissureSurface(name, template[name]).height(np.full_like(ys, x), ys), "r--", lw=1)
            ax.plot(ys, FissureSurface(name, fitted[name]).height(np.full_like(ys, x), ys), "lime", lw=1)
        ax.set_ylim(g.origin[2], -g.origin[2])
        ax.set_title(f"fissure phantom, x = {x:g} mm", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle("truth cyan, template red dashed, fitted green", fontsize=9)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", type=Path)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
    results = {"real_ct": real_ct(args.figures), "phantoms": phantoms(args.seeds, args.figures)}
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
