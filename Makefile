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

.PHONY: demo test env lint bench clean-env

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev,text]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (imvia)" >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	MPLBACKEND=Agg $(PY) -m imvia_core demo

test: $(STAMP)
	TQDM_DISABLE=1 MPLBACKEND=Agg HF_HUB_OFFLINE=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check imvia_core tests bench

bench: $(STAMP)
	$(PY) -m imvia_core.bench

clean-env:
	rm -rf $(VENV)
