# README.md's two commands: `make quickstart` and `make test` do all the set-up on a fresh machine.
#
# They never pip-install into the system's Python: Debian's, Ubuntu's and Homebrew's refuse it (PEP 668,
# "externally-managed-environment"). They install into, in this order:
#   VENV=path (command line or environment)  a virtual environment there, created on first use;
#   an active environment                    used as is: $VIRTUAL_ENV (venv, virtualenv) or $CONDA_PREFIX (conda);
#   otherwise                                the virtual environment .venv, created on first use.
# An environment is installed once: the stamp file $(ENV)/.lth-installed remembers it, and an edited
# pyproject.toml, another TORCH or another checkout reinstalls.

# The interpreter that creates the virtual environment: Python >= 3.11 with its venv module.
PYTHON ?= python3
# CPU/CUDA wheels as pip resolves them; override for another platform, e.g. TORCH="torch torchvision".
TORCH ?= torch==2.14.1 torchvision==0.29.1
# Passed to pytest, e.g. PYTEST_ARGS='-m "not workflow"'.
PYTEST_ARGS ?=

# Where to install (the order above).
ifneq ($(origin VENV),undefined)
  ifeq ($(strip $(VENV)),)
    $(error VENV is empty: give the folder of a virtual environment, e.g. VENV=.venv)
  endif
  ENV := $(VENV)
else ifneq ($(VIRTUAL_ENV),)
  ENV := $(VIRTUAL_ENV)
  ACTIVE := VIRTUAL_ENV
else ifneq ($(CONDA_PREFIX),)
  ENV := $(CONDA_PREFIX)
  ACTIVE := CONDA_PREFIX
else
  VENV := .venv
  ENV := $(VENV)
endif
ENV_PYTHON := $(ENV)/bin/python
STAMP := $(ENV)/.lth-installed
# What the stamp records: the torch wheels and the checkout installed editable.
INSTALLED := $(TORCH) into $(CURDIR)

# Exits 1 with one line naming the version found and the one needed ($(1): the interpreter, $(2): what to do).
# sys.exit(text) prints text to stderr; the code runs on any Python, so even an old one gives the message.
check_python = command -v $(1) >/dev/null 2>&1 || { echo "lth needs Python >= 3.11: $(1) not found; $(2)" >&2; exit 1; }; \
	$(1) -c 'import sys; found = "%d.%d.%d" % tuple(sys.version_info[:3]); \
	sys.exit(0 if tuple(sys.version_info[:2]) >= (3, 11) else "lth needs Python >= 3.11, but $(1) is Python " + found + "; $(2)")'
FIX_PYTHON := point PYTHON= at another interpreter (make test PYTHON=python3.12)
ifdef ACTIVE
  FIX_ENV := deactivate $(ACTIVE)=$(ENV) or activate an environment with Python >= 3.11
else
  FIX_ENV := delete $(VENV) or give VENV= another path, and $(FIX_PYTHON)
endif

.PHONY: install quickstart test lint format test-slurm FORCE

install: $(STAMP)

quickstart: $(STAMP)
	$(ENV_PYTHON) -m snakemake --cores all --configfile configs/quickstart.yaml

test: $(STAMP)
	$(ENV_PYTHON) -m pytest $(PYTEST_ARGS)

# The tree as ruff and snakefmt format it (pyproject.toml pins both and their settings); `make format` applies them.
lint: $(STAMP)
	$(ENV_PYTHON) -m ruff format --check .
	$(ENV_PYTHON) -m ruff check .
	$(ENV_PYTHON) -m snakefmt --check Snakefile workflow

format: $(STAMP)
	$(ENV_PYTHON) -m ruff format .
	$(ENV_PYTHON) -m ruff check --fix .
	$(ENV_PYTHON) -m snakefmt Snakefile workflow

# The real-SLURM test installs SLURM and munge (apt-get) and starts a local cluster, so it runs only when
# asked: here, or with LTH_TEST_SLURM=1 (what .ci/run does).
test-slurm: $(STAMP)
	LTH_TEST_SLURM=1 $(ENV_PYTHON) -m pytest tests/test_slurm.py $(PYTEST_ARGS)

# Another TORCH or checkout than the stamp records reinstalls, as an edited pyproject.toml does.
ifneq ($(shell cat '$(STAMP)' 2>/dev/null),$(INSTALLED))
$(STAMP): FORCE
endif
$(STAMP): pyproject.toml | $(ENV_PYTHON)
	@$(call check_python,$(ENV_PYTHON),$(FIX_ENV))
	$(ENV_PYTHON) -m pip install --quiet $(TORCH)
	$(ENV_PYTHON) -m pip install --quiet -e ".[test,lint]"
	@echo '$(INSTALLED)' > '$@'

ifdef ACTIVE
$(ENV_PYTHON):
	@echo "$(ACTIVE)=$(ENV) is active but has no bin/python: deactivate it, or give VENV=path for a virtual environment" >&2; exit 1
else
# A failed venv (Debian without python3-venv) leaves a folder without pip: remove it if this rule made it,
# so that the next call tries again.
$(ENV_PYTHON):
	@$(call check_python,$(PYTHON),$(FIX_PYTHON))
	@echo "creating the virtual environment $(VENV) with $(PYTHON)"
	@made=yes; [ -e '$(VENV)' ] && made=; \
	$(PYTHON) -m venv '$(VENV)' || { [ -z "$$made" ] || rm -rf '$(VENV)'; \
	echo "$(PYTHON) -m venv $(VENV) failed: install Python's venv module (Debian, Ubuntu: apt install python3-venv) or point PYTHON= at another Python >= 3.11 (make test PYTHON=/path/to/python3)" >&2; exit 1; }
endif

FORCE:
