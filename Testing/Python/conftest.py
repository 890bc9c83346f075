import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# tests live in sub-folders by package (rules/, ct/, detection/, ...); each folder is on sys.path, as
# pytest's default import mode puts it, so a test may import a helper from another test by its name
# (test file names are unique across the folders: test_extension_layout checks it)
sys.path[1:1] = sorted({str(p.parent) for p in HERE.glob("*/test_*.py")})
REPO = HERE.parents[1]
# Test the checkout the tests live in (also in subprocesses), whatever copy is installed in the venv.
sys.path.insert(0, str(REPO / "DPOScoring"))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "DPOScoring"), os.environ.get("PYTHONPATH")]))
SHARED_DATA = Path(os.environ.get("DPO_SHARED_DATA", REPO.parent / "shared" / "data"))

import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from DPOScoringLib.synthetic.phantom import truth_reach_mm  # noqa: E402

REAL_CT = SHARED_DATA / "chest-ct-thorax-2mm.nii.gz"
REAL_CROP = SHARED_DATA / "chest-ct-right-lung-crop.mha"


def require_real(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"real CT {path.name} not available at {path.parent} (set DPO_SHARED_DATA)")
    return path


class PhantomCase:
    """A phantom written to disk with its truth, the whole pipeline's detection on it (lungs from
    the CT, lobes from the weight-free fissure method, never from the truth), and helpers."""

    def __init__(self, folder: Path, spec, contrast: str = "auto"):
        from DPOScoringLib.ct.ct_image import load_ct
        from DPOScoringLib.detection.pipeline import detect_on_ct
        from DPOScoringLib.lobes.lobe_pipeline import compute_lobes
        from DPOScoringLib.synthetic.phantom import generate_phantom, write_phantom

        self.spec = spec
        self.paths = write_phantom(generate_phantom(spec), folder)
        self.truth = json.loads(self.paths["truth"].read_text(encoding="utf-8"))
        ct = load_ct(self.paths["ct"])
        self.lobe_result = compute_lobes(ct, "fissures")  # as `dpo-score run` does by default
        lungs = np.where(self.lobe_result.lobes == 0, 0, np.where(self.lobe_result.lobes <= 3, 1, 2)).astype(np.uint8)
        self.run = detect_on_ct(ct, lungs, self.lobe_result.lobes, None, contrast,
                                sources={"ct": str(self.paths["ct"]), "lobes": "fissures (default points)"})
        self.candidates = self.run.result.candidates

    def match(self, finding: dict):
        """The candidate closest to a truth finding, if within its radius + 1.5 mm."""
        if not self.candidates:
            return None
        positions = np.array([c.lps for c in self.candidates])
        distances = np.linalg.norm(positions - np.array(finding["lps"]), axis=1)
        index = int(np.argmin(distances))
        reach = truth_reach_mm(finding)
        return self.candidates[index] if distances[index] <= reach else None

    def assignment(self) -> dict:
        """One candidate per truth finding and one finding per candidate (closest pairs first,
        each within the finding's reach): two POs 1 mm apart need two candidates."""
        from scipy.optimize import linear_sum_assignment

        findings = self.truth["findings"]
        if not findings or not self.candidates:
            return {}
        positions = np.array([c.lps for c in self.candidates])
        cost = np.linalg.norm(np.array([f["lps"] for f in findings])[:, None, :] - positions[None], axis=2)
        reach = np.array([truth_reach_mm(f) for f in findings])[:, None]
        cost = np.where(cost <= reach, cost, 1e6)
        rows, cols = linear_sum_assignment(cost)
        return {findings[r]["id"]: self.candidates[c] for r, c in zip(rows, cols) if cost[r, c] < 1e6}

    def unmatched_candidates(self):
        matched = {id(self.match(f)) for f in self.truth["findings"]}
        return [c for c in self.candidates if id(c) not in matched]

    def false_candidates(self):
        """Candidates within reach of no truth finding at all."""
        from DPOScoringLib.synthetic.phantom import matches_truth

        return [c for c in self.candidates if not any(matches_truth(f, c.lps) for f in self.truth["findings"])]


@pytest.fixture(scope="session")
def phantom_1mm(tmp_path_factory):
    from DPOScoringLib.synthetic.phantom import PhantomSpec

    return PhantomCase(tmp_path_factory.mktemp("phantom_1mm"), PhantomSpec(spacing=(0.8, 0.8, 1.0), seed=1))


@pytest.fixture(scope="session")
def phantom_2mm(tmp_path_factory):
    from DPOScoringLib.synthetic.phantom import PhantomSpec

    return PhantomCase(tmp_path_factory.mktemp("phantom_2mm"), PhantomSpec(spacing=(0.8, 0.8, 2.0), seed=2))


@pytest.fixture(scope="session")
def phantom_contrast(tmp_path_factory):
    from DPOScoringLib.synthetic.phantom import PhantomSpec

    return PhantomCase(tmp_path_factory.mktemp("phantom_contrast"),
                       PhantomSpec(spacing=(0.8, 0.8, 1.0), seed=1, contrast=True))


@pytest.fixture(scope="session")
def fibrosis_1mm(tmp_path_factory):
    from DPOScoringLib.synthetic.phantom import PhantomSpec

    return PhantomCase(tmp_path_factory.mktemp("fibrosis_1mm"), PhantomSpec.fibrosis_preset((0.8, 0.8, 1.0), seed=11))


@pytest.fixture(scope="session")
def fibrosis_2mm(tmp_path_factory):
    from DPOScoringLib.synthetic.phantom import PhantomSpec

    return PhantomCase(tmp_path_factory.mktemp("fibrosis_2mm"), PhantomSpec.fibrosis_preset((0.8, 0.8, 2.0), seed=12))


# Scanner and anatomy variants for the lung mask (written once per session, no detection run):
# all carry noisy outside air with streaks, a table and scan-circle padding (fibrosis_preset).
from DPOScoringLib.synthetic.phantom_scanner import SCANNER_VARIANTS as VARIANTS  # noqa: E402


@pytest.fixture(scope="session")
def phantom_variant(tmp_path_factory):
    """``phantom_variant(name)``: the paths of that variant's phantom (2 mm slices), cached."""
    from DPOScoringLib.synthetic.phantom import PhantomSpec, generate_phantom, write_phantom

    cache = {}

    def get(name):
        if name not in cache:
            if name == "no-lungs":
                spec = PhantomSpec.no_lung_preset(seed=26)
            else:
                spec = PhantomSpec.fibrosis_preset((0.8, 0.8, 2.0), n_po=12, n_po_clusters=1, **VARIANTS[name])
            cache[name] = write_phantom(generate_phantom(spec), tmp_path_factory.mktemp(name))
        return cache[name]
    return get
