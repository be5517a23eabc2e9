# Two commands set up a fresh clone and use it (see README.md, "Quick start"):
#   make run    the whole default analysis on the simulated cohorts
#   make test   the test suite
# Both create .venv with the pinned dependencies on first use and reuse it afterwards.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hccrad-installed
CORES ?= all
# Tools print non-ASCII (snakefmt's emoji); keep Python on UTF-8 under a C/POSIX locale (CI).
export PYTHONUTF8 := 1

.PHONY: run test setup lint lint-bare format report figures clean

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

test: $(STAMP)
	$(BIN)/pytest

# Redraw every figure from the results tables (after `make run`): only the *_figure rules run.
figures: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) figures --forcerun $$($(BIN)/snakemake --list-rules | grep '_figure$$')

setup: $(STAMP)

# PyTorch: the pinned CPU build (an unpinned torch pulls a multi-GB CUDA build).
# PyRadiomics 3.0.1 builds from source against the venv's numpy and versioneer.
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "hccrad needs Python 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet numpy==2.4.6 versioneer==0.29 torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-build-isolation pyradiomics==3.0.1
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests workflow benchmarks studies
	$(BIN)/ruff format --check src tests workflow benchmarks studies
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

# `snakemake --lint` in an environment with Snakemake alone (its pinned version; no hccrad, no
# analysis libraries): the parse must need nothing else (README.md, "Use as a module").
LINTENV := .lintenv
lint-bare:
	test -x $(LINTENV)/bin/snakemake || \
		($(PYTHON) -m venv $(LINTENV) && $(LINTENV)/bin/pip install snakemake==9.27.1)
	env -u PYTHONPATH $(LINTENV)/bin/snakemake --lint

format: $(STAMP)
	$(BIN)/ruff format src tests workflow benchmarks studies
	$(BIN)/snakefmt Snakefile workflow/rules

report: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

clean:
	rm -rf results logs .snakemake
