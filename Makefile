# dft2mlip — the two commands of the README (`make run`, `make test`) and what they need.
# Everything is installed into ./.venv from constraints.txt; pw.x comes from Debian when missing.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2
PROFILE ?= profiles/default
PYTEST_ARGS ?=

.PHONY: setup run dry-run inputs test lint report clean-results

## setup: Python environment + Quantum ESPRESSO (idempotent, fast when already done)
setup: $(VENV)/.installed
	@bash tools/ensure_pw.sh

$(VENV)/.installed: pyproject.toml constraints.txt tools/install_venv.sh
	@bash tools/install_venv.sh $(VENV)
	@touch $@

## run: the whole pipeline on the embedded default config (config/config.yaml)
run: setup
	$(VENV)/bin/snakemake --profile $(PROFILE) --cores $(CORES)

## inputs: write every DFT input known before training, to inspect before submitting; never runs
## DFT (with dft.convergence.enabled only the study's inputs: the label inputs depend on its outcome)
inputs: setup
	$(VENV)/bin/snakemake --profile $(PROFILE) --cores $(CORES) dft_inputs

## dry-run: what would run (every DFT job is listed)
dry-run: setup
	$(VENV)/bin/snakemake --profile $(PROFILE) --cores $(CORES) -n

## test: the whole test suite (unit, physics with real pw.x, tiny real end-to-end workflow, and
## the same tiny run through a real one-node SLURM: slurm-wlm + munge installed with apt if missing)
test: setup
	@bash tools/ensure_slurm.sh
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/snakemake --lint

report: setup
	$(VENV)/bin/snakemake --profile $(PROFILE) --cores $(CORES) --report results/report/snakemake_report.zip

clean-results:
	rm -rf results logs benchmarks
