# Two commands do all set-up:  `make demo` (the main job on the synthetic dataset) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.imvia-installed

# Development checkouts have a local mirror of the benchmark files beside them; users download from GitHub.
ifneq ($(wildcard ../shared/datasets),)
export IMVIA_DATA_MIRROR ?= $(abspath ../shared/datasets)
endif
export HF_HUB_OFFLINE ?= 1

.PHONY: demo notebooks test env lint bench bench-compare clean-env

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	# setuptools' notice about editable installs is information only; it would print a box on every install
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet -e '.[dev,text,sweeps]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (imvia)" >/dev/null
	touch $(STAMP)

# the notebook collection on the synthetic graph (CI profile): executed copies in notebooks/executed/synthetic/,
# Table II and Fig. 2 in figures/
demo: $(STAMP)
	$(PY) -m imvia_core.notebooks run -f notebooks/params/ci.yaml --out notebooks/executed/synthetic

# the collection with another parameters file, e.g. make notebooks PARAMS=notebooks/params/db15k-paper.yaml
PARAMS ?= notebooks/params/ci.yaml
notebooks: $(STAMP)
	$(PY) -m imvia_core.notebooks run -f $(PARAMS)

test: $(STAMP)
	TQDM_DISABLE=1 MPLBACKEND=Agg HF_HUB_OFFLINE=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check imvia_core tests bench

# the benchmark keeps glibc from returning freed blocks to the kernel itself (mallopt; see bench/README.md)
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# the authors' code and this project's benchmark back to back, one table of ratios (see bench/README.md):
#   make bench-compare UPSTREAM=path/to/ICASSP2025_IMVIA_Code BENCH_ARGS="--threads 2"
bench-compare: $(STAMP)
	@test -n "$(UPSTREAM)" || { echo "usage: make bench-compare UPSTREAM=path/to/ICASSP2025_IMVIA_Code" >&2; exit 2; }
	$(PY) bench/upstream.py compare --upstream $(UPSTREAM) $(BENCH_ARGS)

clean-env:
	rm -rf $(VENV)
