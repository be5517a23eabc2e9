# Two commands set up a fresh clone and use it (see README.md, "Quick start"):
#   make run    the whole default analysis on the simulated cohorts
#   make test   the test suite
# Both create .venv from the lock file (requirements/lock.txt, hashes checked) on first use and
# reuse it afterwards. `make help` lists every target.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hccrad-installed
CORES ?= all
# A config whose values override config/config.yaml: make run CONFIG=.test/config.yaml
CONFIG ?=
# Tools print non-ASCII (snakefmt's emoji); keep Python on UTF-8 under a C/POSIX locale (CI).
export PYTHONUTF8 := 1

# PyTorch's build: cpu (default; what the default run uses) or cuda (PyPI's Linux wheel with its
# NVIDIA libraries, several GB). Its version is the pin in pyproject.toml; the lock leaves it out.
TORCH ?= cpu
# A package's pin in pyproject.toml (the one place where versions are written).
pin = $(shell sed -n 's/.*"$(1)==\([^";]*\)".*/\1/p' pyproject.toml)
TORCH_VERSION := $(call pin,torch)
ifeq ($(TORCH),cpu)
ifeq ($(shell uname -s)-$(shell uname -m),Linux-x86_64)
# PyPI's Linux x86_64 torch is the CUDA build; PyTorch's own index has the CPU one (+cpu).
TORCH_INSTALL := --no-deps torch==$(TORCH_VERSION)+cpu --extra-index-url https://download.pytorch.org/whl/cpu
else
# macOS, Windows and Linux aarch64: PyPI's wheel is the CPU build.
TORCH_INSTALL := --no-deps torch==$(TORCH_VERSION)
endif
else ifeq ($(TORCH),cuda)
TORCH_INSTALL := torch==$(TORCH_VERSION)
else
$(error TORCH must be cpu or cuda, not '$(TORCH)')
endif

.PHONY: help run test setup lock lint lint-bare format report figures clean

help:
	@echo "make run [CONFIG=file] [CORES=n]  the whole analysis (default: the simulated cohorts)"
	@echo "make test                         the test suite (what CI runs)"
	@echo "make setup [TORCH=cpu|cuda]       build .venv from requirements/lock.txt"
	@echo "make lock                         re-resolve requirements/lock.txt from pyproject.toml"
	@echo "make figures                      redraw every figure from the results tables"
	@echo "make report                       results/report.html (snakemake --report)"
	@echo "make lint | format                ruff, snakefmt, snakemake --lint | reformat"
	@echo "make lint-bare                    snakemake --lint where only Snakemake is installed"
	@echo "make clean                        delete results/, logs/ and .snakemake/"

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) $(if $(CONFIG),--configfile $(CONFIG))

test: $(STAMP)
	$(BIN)/pytest

# Redraw every figure from the results tables (after `make run`): only the *_figure rules run.
figures: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) figures --forcerun $$($(BIN)/snakemake --list-rules | grep '_figure$$')

setup: $(STAMP)

# The environment is rebuilt from scratch whenever the lock changes, so nothing outside the lock
# lingers. Order: the build packages, then the lock (PyRadiomics builds from source against
# numpy), then torch, then hccrad itself; pip check confirms the set is consistent.
$(STAMP): requirements/lock.txt requirements/build.txt pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "hccrad needs Python 3.11"'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	@echo "Installing $(VENV) from requirements/lock.txt (hashes checked), torch $(TORCH_VERSION) ($(TORCH))"
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/build.txt
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps --no-build-isolation -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet $(TORCH_INSTALL)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

# Re-resolve the whole environment from pyproject.toml's pins (hashes of every file), then write
# requirements/build.txt and envs/hccrad.yaml from it. Torch is left out (see TORCH above).
# pip-tools runs in its own small venv (.lockenv), so a new pin can be locked before .venv has it;
# numpy and versioneer are there because PyRadiomics' metadata comes from its setup.py.
LOCKENV := .lockenv
lock:
	test -x $(LOCKENV)/bin/pip-compile || ($(PYTHON) -m venv $(LOCKENV) && \
		$(LOCKENV)/bin/pip install --quiet pip-tools==$(call pin,pip-tools) \
		numpy==$(call pin,numpy) versioneer==$(call pin,versioneer))
	$(LOCKENV)/bin/pip-compile --quiet --no-build-isolation --generate-hashes --no-emit-index-url \
		--no-emit-find-links --unsafe-package torch --strip-extras \
		--extra build --extra workflow --extra slurm --extra dev \
		--output-file requirements/lock.txt pyproject.toml
	$(LOCKENV)/bin/python requirements/derive.py

lint: $(STAMP)
	$(BIN)/ruff check src tests workflow benchmarks studies requirements
	$(BIN)/ruff format --check src tests workflow benchmarks studies requirements
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
	$(BIN)/ruff format src tests workflow benchmarks studies requirements
	$(BIN)/snakefmt Snakefile workflow/rules

report: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

clean:
	rm -rf results logs .snakemake
