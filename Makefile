# The two set-up commands of the README: `make demo` and `make test`.
# Each works alone on a fresh clone: it creates .venv and installs the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(VENV)/.bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

demo: $(STAMP)
	$(BIN)/python -m sklearn_serverless demo

test: $(STAMP)
	$(BIN)/ruff check sklearn_serverless tests benchmarks
	$(BIN)/python -m pytest tests

bench: $(VENV)/.bench
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) benchmarks/results .pytest_cache .ruff_cache
