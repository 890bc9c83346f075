# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
# Every install step prints what it does (pip's and apt's own output is shown, nothing is hidden).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORE_STAMP := $(VENV)/.installed-core
STAMP := $(VENV)/.installed
# torch (only for the optional lungmask lobe method): the pinned version from pip's configured
# sources (this project's machines hold the CPU wheel torch-2.13.0+cpu locally). On a machine whose
# pip reaches only PyPI, say where the CPU build lives, e.g.
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (PyPI's own Linux wheel is the CUDA build with GBs of NVIDIA libraries: pick that, or a
# .../whl/cu126 index, only on request for a GPU).
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
TORCH_INDEX_OPTION := $(if $(strip $(TORCH_INDEX)),--index-url $(TORCH_INDEX),)
DEMO_OUT ?= demo-output
DEMO_ARGS ?=

.PHONY: demo test lint benchmark clean browser dicom3tools

# what the demo needs: the package and its core dependencies (no torch, no Slicer libraries)
$(CORE_STAMP): pyproject.toml
	@echo "==> [setup 1/2] $(VENV): the package and its core dependencies (numpy, SimpleITK, scipy, scikit-image, ...)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e .
	touch $(CORE_STAMP)

# what the tests add: torch pinned first (see TORCH_INDEX), then the test, lungmask and slicer extras
$(STAMP): $(CORE_STAMP)
	@echo "==> [setup 2/2] $(VENV): torch==$(TORCH_VERSION) $(if $(strip $(TORCH_INDEX)),from $(TORCH_INDEX),from pip's configured sources), then the test, lungmask and slicer extras"
	$(BIN)/python -m pip install $(TORCH_INDEX_OPTION) "torch==$(TORCH_VERSION)"
	@$(BIN)/python -c "import torch; print('==> torch', torch.__version__, '(CUDA ' + torch.version.cuda + ')' if torch.version.cuda else '(CPU build)')"
	$(BIN)/python -m pip install -e ".[test,lungmask,slicer,cohort,dicom,cluster]"
	@du -sh $(VENV) | sed 's/^/==> venv size: /'
	touch $(STAMP)

# reruns replace the demo's own folder (recognised by its DPO-DEMO-OUTPUT.txt), never another one
demo: $(CORE_STAMP)
	$(BIN)/dpo-score demo --out $(DEMO_OUT) $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# the report test opens report.html in a real headless browser (Debian's chromium; apt needs root)
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "==> installing chromium with apt-get (for the report test)"; \
		apt-get update && apt-get install -y chromium; }

# the DICOM export tests validate lobes.dcm and findings.dcm with Debian's dciodvfy (dicom3tools)
dicom3tools:
	@command -v dciodvfy >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq dicom3tools >/dev/null)

test: $(STAMP) browser dicom3tools
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

benchmark: $(STAMP)
	$(BIN)/python benchmarks/run_benchmarks.py

clean:
	rm -rf $(VENV) build *.egg-info DPOScoring/*.egg-info .pytest_cache .ruff_cache .hypothesis
