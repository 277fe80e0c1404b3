# `make demo` and `make test` work on a fresh machine: they create .venv and
# install the project into it when it is missing or pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint sweep bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m cluster_actors.cli.demo

# The pure layers (unit, simulator) run on every core (pytest-xdist); the Ray
# layer runs alone after them, one test at a time, so that no timing test
# shares the machine with another.
JOBS ?= auto
test: $(STAMP)
	$(BIN)/ruff check cluster_actors strategies tests benchmarks
	$(BIN)/python -m pytest tests/unit tests/sim -m "not slow" -n $(JOBS) --durations=10
	$(BIN)/python -m pytest tests/ray -m "not slow" --durations=25

lint: $(STAMP)
	$(BIN)/ruff check cluster_actors strategies tests benchmarks

# Benchmarks side by side with the seed's table and PySyncObj (installed here);
# writes benchmarks/results/latest.md and .json. `make bench QUICK=1` for a smoke run.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/run.py $(if $(QUICK),--quick)

# Long simulator sweep: override with e.g. `make sweep SEEDS=100000`.
SEEDS ?= 10000
sweep: $(STAMP)
	$(BIN)/python -m cluster_actors.testing.sim --nodes 5 --seeds $(SEEDS) --steps 2000

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
