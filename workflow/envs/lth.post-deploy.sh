#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment; LTH_SOURCE is set by the Snakefile to the
# checkout that runs the workflow, so this works from any working directory.
set -euo pipefail
pip install --no-deps -e "${LTH_SOURCE:?the Snakefile sets LTH_SOURCE}"
