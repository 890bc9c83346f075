# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0

.PHONY: demo test lint benchmark clean browser

# torch is pinned first (a CPU build; a newer or unpinned torch would pull a multi-GB CUDA build),
# then the package with its test, lungmask, slicer and cluster (dask, for batch) extras.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e ".[test,lungmask,slicer,cluster]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dpo-score demo

lint: $(STAMP)
	$(BIN)/ruff check .

# the report test opens report.html in a real headless browser (Debian's chromium)
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

benchmark: $(STAMP)
	$(BIN)/python benchmarks/run_benchmarks.py

clean:
	rm -rf $(VENV) build *.egg-info DPOScoring/*.egg-info .pytest_cache .ruff_cache .hypothesis
