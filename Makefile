# The README's two commands: `make demo` and `make test`. Each creates or reuses .venv,
# installs raylm and its dependencies at the tested versions (constraints.txt), then runs.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: demo test test-all test-fast lint install clean

# Everything is installed at the exact versions tested (constraints.txt); pyproject.toml holds ranges.
$(STAMP): pyproject.toml Makefile constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: a plain `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet -c constraints.txt "torch==2.13.0"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/raylm run configs/quickstart.yaml

# The CI suite (~13-17 min on 2 cores): everything but tests marked slow.
test: $(STAMP)
	$(BIN)/python -m pytest tests -q -m "not slow" --durations=15

# Everything, slow multi-node / sweep / scale tests included (~25 min on 2 cores).
test-all: $(STAMP)
	$(BIN)/python -m pytest tests -q --durations=25

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

# Static checks (pyflakes, pycodestyle, bugbear; rules in pyproject.toml). CI runs this first.
lint: $(STAMP)
	$(BIN)/ruff check raylm tests benchmarks

clean:
	rm -rf runs .pytest_cache
