# Two commands do all the set-up on a fresh machine: `make quickstart` and `make test`.
PYTHON ?= python3
# CPU/CUDA wheels as pip resolves them; override for another platform, e.g. TORCH="torch torchvision".
TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install quickstart test

install:
	$(PYTHON) -m pip install --quiet $(TORCH)
	$(PYTHON) -m pip install --quiet -e ".[test]"

quickstart: install
	$(PYTHON) -m snakemake --cores all --configfile configs/quickstart.yaml

test: install
	$(PYTHON) -m pytest
