# The two set-up commands of the README: `make demo` and `make test`.
# Each works alone on a fresh clone: it creates .venv and installs the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench docs clean

# The install builds the compiled k-means kernel in place: rebuilt when its source changes.
$(STAMP): setup.cfg pyproject.toml sklearn_serverless/_algorithms/kmeans/_lloyd.pyx
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(VENV)/.bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

# The documentation extra also needs the test extra: the gallery starts moto's S3 server.
$(VENV)/.docs: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,docs]'
	touch $@

demo: $(STAMP)
	$(BIN)/python -m sklearn_serverless demo

test: $(STAMP)
	$(BIN)/ruff check sklearn_serverless tests benchmarks docs
	$(BIN)/python -m pytest tests

bench: $(VENV)/.bench
	$(BIN)/python benchmarks/run.py --quick

# The site, warnings as errors; the gallery's examples run at build time. The speed
# figures must agree with docs/img/*.json first (docs/_figures.py).
docs: $(VENV)/.docs
	$(BIN)/python docs/_figures.py --check
	rm -rf docs/_build/html docs/generated docs/auto_examples
	$(BIN)/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html

clean:
	rm -rf $(VENV) benchmarks/results .pytest_cache .ruff_cache
	rm -f sklearn_serverless/_algorithms/kmeans/_lloyd.c sklearn_serverless/_algorithms/kmeans/_lloyd.*.so
	rm -rf docs/_build docs/generated docs/auto_examples docs/sg_execution_times.rst
