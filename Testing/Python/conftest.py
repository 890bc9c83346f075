import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
REPO = HERE.parents[1]
SHARED_DATA = Path(os.environ.get("DPO_SHARED_DATA", REPO.parent / "shared" / "data"))
