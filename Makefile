# The two commands of the README: `make run` (set up, run the default study) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PROFILE ?= workstation
CORES ?= all
SNAKEMAKE_ARGS ?=

.PHONY: setup run test lint schema report time clean mutate

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Pinned versions live in requirements.lock; torch==2.13.0 is the CPU build where only that is at hand
# and the registry's default build (CUDA on Linux) elsewhere.
$(VENV)/.installed: $(BIN)/activate pyproject.toml requirements.lock
	$(BIN)/pip install --quiet -c requirements.lock -e ".[dev]"
	@touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/snakemake --cores $(CORES) --workflow-profile workflow/profiles/$(PROFILE) $(SNAKEMAKE_ARGS)
	@echo "Report: $(abspath reports/index.html)"

test: setup
	$(BIN)/pytest

# These lints are accepted on purpose: rules run in this project's pinned venv, not per-rule conda
# environments, and they call the venv's interpreter (BATCHLAB), read the resume interval (CFG) and
# pass the GPU slots (GPU_SLOTS) outside `params`, because none of them may trigger a rerun. Any other
# lint fails.
ACCEPTED_LINTS := -e 'conda environment or container' -e 'variable BATCHLAB from outside' -e 'variable CFG from outside' \
	-e 'variable GPU_SLOTS from outside'
lint: setup
	@$(BIN)/snakemake --lint > .lint.txt 2>&1 || true
	@if grep -E '^\s+\* ' .lint.txt | grep -v $(ACCEPTED_LINTS); then cat .lint.txt; rm -f .lint.txt; exit 1; fi
	@rm -f .lint.txt; echo "snakemake --lint: only the accepted lints"
	$(BIN)/snakefmt --check Snakefile workflow/rules

schema: setup
	$(BIN)/batchlab schema --out workflow/schemas/config.schema.json

report: setup
	$(BIN)/snakemake --report reports/snakemake-report.zip

# Wall time, and per rule jobs, job-seconds, CPU-seconds and start-up share, of a config run in a scratch copy.
time: setup
	$(BIN)/python benchmarks/pipeline_time.py --config $(or $(CONFIG),config/config.yaml) --profile $(PROFILE) --cores $(CORES)

# Mutation score of the statistics modules ([tool.mutmut] in pyproject.toml; too slow for CI, see docs/mutation.md).
# MODULES narrows the run to mutant names, e.g. MODULES='batchlab.analysis.targets*'; JOBS caps parallel mutants.
MODULES ?=
JOBS ?= 2
mutate: setup
	$(BIN)/mutmut run --max-children $(JOBS) $(MODULES)
	$(BIN)/mutmut results

clean:
	rm -rf data results logs .snakemake reports/*/ reports/index.html
