# mexpr — two commands do all the set-up:  `make test`  and  `make reproduce`.
# Both create .venv (python3 -m venv) if missing and (re)install the project, editable, with its
# dev extras, pinned by constraints.txt — only when pyproject.toml or constraints.txt changed.
# conda users: environment.yml installs the same pins with pip.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mexpr-installed
PROFILE ?= default
SEED   ?= 0
# Several seeds: make reproduce SEEDS="0 1 2" (the series runs with SEED, then its evaluation with each seed: mean ± std)
SEEDS  ?=
# Real data: make reproduce DATA="path/to/CASME2 path/to/CASME"  (both roots, or one)
DATA   ?=
# the run folder: runs/default, runs/paper, ... on synthetic data; runs/casme-default, ... on real data
ifeq ($(strip $(DATA)),)
NAME   ?= $(PROFILE)
else
NAME   ?= casme-$(PROFILE)
endif
RUN    := runs/$(NAME)
LAB_ARGS ?=
JOBS   ?= 2
# make test: pytest-xdist workers, one test file each at a time (the notebook series stays in one), each
# single-threaded (TensorFlow's and OpenMP's pools), so that two workers share 2 cores without oversubscribing them
TEST_WORKERS ?= 2
TEST_THREADS ?= 1
# a Dask cluster for the series' batch work: SCHEDULER=tcp://host:8786 or SCHEDULER=local:N (docs/scale.md); empty: this machine
SCHEDULER ?=
export PYTHONHASHSEED := 0
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: help venv test test-fast reproduce lint format lab bench book clean

help:
	@echo "make test        set up .venv and run the test suite (includes papermill runs of every notebook, quick mode)"
	@echo "make reproduce   set up .venv and run the notebook series into runs/\$$(NAME) (NAME=$(NAME) PROFILE=$(PROFILE) DATA=$(DATA))"
	@echo "                 PROFILE=quick|default|paper   DATA=\"path/to/CASME2 path/to/CASME\"   NAME=folder under runs/"
	@echo "                 SEEDS=\"0 1 2\": also evaluate with each seed, Table 4 as mean ± std (tables/table4_*_seeds.md)"
	@echo "make lab         open JupyterLab on notebooks/ with the project's kernel (LAB_ARGS=--no-browser on a server)"
	@echo "make bench       the data-generation benchmark (benchmarks/synth.py); docs/benchmarks.md gives the command of every other one"
	@echo "make lint        ruff check + format check"
	@echo "make book        the course as a website in build/book/site (README, executed notebooks, docs, API), checked in Chromium"
	@echo "                 from runs/quick, else what make test left (runs/test-quick); RUN=runs/default for the full run"

$(PY):
	$(PYTHON) -m venv $(VENV)

# pip installs uv (pinned in constraints.txt), uv installs the rest: the same pinned versions, resolved, unpacked
# and compiled to bytecode in parallel, hard-linked from its cache: a fresh .venv in about 60 s where pip took 108 s.
# --compile-bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) nothing else writes
# the .pyc files, and every process would compile what it imports again (TensorFlow + Keras: 21 s instead of 8 s)
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet -c constraints.txt uv
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -c constraints.txt -e ".[dev,book]"
	$(PY) -m ipykernel install --sys-prefix --name mexpr --display-name "Python (mexpr)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	OMP_NUM_THREADS=$(TEST_THREADS) TF_NUM_INTRAOP_THREADS=$(TEST_THREADS) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25

test-fast: $(STAMP)
	OMP_NUM_THREADS=$(TEST_THREADS) TF_NUM_INTRAOP_THREADS=$(TEST_THREADS) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not notebook"

reproduce: $(STAMP)
	$(PY) -m mexpr reproduce --run $(RUN) --profile $(PROFILE) --seed $(SEED) --jobs $(JOBS) $(foreach d,$(DATA),--data $(d)) $(if $(strip $(SEEDS)),--seeds $(SEEDS)) $(if $(strip $(SCHEDULER)),--scheduler $(SCHEDULER))

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS) notebooks/

book: $(STAMP)
	$(PY) tools/book.py --check --run $(if $(filter command line,$(origin RUN)),$(RUN),auto)

bench: $(STAMP)
	$(PY) benchmarks/synth.py --jobs $(JOBS)

lint: $(STAMP)
	$(VENV)/bin/ruff check mexpr tests benchmarks tools
	$(VENV)/bin/ruff format --check mexpr tests benchmarks tools

format: $(STAMP)
	$(VENV)/bin/ruff format mexpr tests benchmarks tools
	$(VENV)/bin/ruff check --fix mexpr tests benchmarks tools

clean:
	rm -rf runs/ .pytest_cache
