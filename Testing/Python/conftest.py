import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
REPO = HERE.parents[1]
# Test the checkout the tests live in (also in subprocesses), whatever copy is installed in the venv.
sys.path.insert(0, str(REPO / "DPOScoring"))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "DPOScoring"), os.environ.get("PYTHONPATH")]))
SHARED_DATA = Path(os.environ.get("DPO_SHARED_DATA", REPO.parent / "shared" / "data"))

import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from DPOScoringLib.phantom import truth_reach_mm  # noqa: E402

REAL_CT = SHARED_DATA / "chest-ct-thorax-2mm.nii.gz"
REAL_CROP = SHARED_DATA / "chest-ct-right-lung-crop.mha"


def require_real(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"real CT {path.name} not available at {path.parent} (set DPO_SHARED_DATA)")
    return path


class PhantomCase:
    """A phantom written to disk with its truth, the pipeline's detection on it, and helpers."""

    def __init__(self, folder: Path, spec, contrast: str = "auto"):
        from DPOScoringLib.phantom import generate_phantom, write_phantom
        from DPOScoringLib.pipeline import run_detection

        self.spec = spec
        self.paths = write_phantom(generate_phantom(spec), folder)
        self.truth = json.loads(self.paths["truth"].read_text())
        self.run = run_detection(self.paths["ct"], self.paths["lobes"], contrast=contrast)
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

    def unmatched_candidates(self):
        matched = {id(self.match(f)) for f in self.truth["findings"]}
        return [c for c in self.candidates if id(c) not in matched]


@pytest.fixture(scope="session")
def phantom_1mm(tmp_path_factory):
    from DPOScoringLib.phantom import PhantomSpec

    return PhantomCase(tmp_path_factory.mktemp("phantom_1mm"), PhantomSpec(spacing=(0.8, 0.8, 1.0), seed=1))


@pytest.fixture(scope="session")
def phantom_2mm(tmp_path_factory):
    from DPOScoringLib.phantom import PhantomSpec

    return PhantomCase(tmp_path_factory.mktemp("phantom_2mm"), PhantomSpec(spacing=(0.8, 0.8, 2.0), seed=2))


@pytest.fixture(scope="session")
def phantom_contrast(tmp_path_factory):
    from DPOScoringLib.phantom import PhantomSpec

    return PhantomCase(tmp_path_factory.mktemp("phantom_contrast"),
                       PhantomSpec(spacing=(0.8, 0.8, 1.0), seed=1, contrast=True))
