# Two commands on a fresh machine (Python 3.10+; Java 17 + Maven for the Flink tests):
#   make demo   set up, generate a raw corpus in every format, run the pipeline on it
#   make test   set up and run the whole test suite, Flink integration included
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup setup-test demo test test-fast flink-jobserver bench clean

$(BIN)/instructmix: pyproject.toml setup.py transforms/_sigkernel.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

setup: $(BIN)/instructmix

$(VENV)/.test-deps: $(BIN)/instructmix
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup-test: $(VENV)/.test-deps

demo: setup
	$(BIN)/instructmix demo --output demo-out

flink-jobserver:
	deploy/flink/jobserver.sh fetch

test: setup-test flink-jobserver
	$(BIN)/python -m pytest -q

test-fast: setup-test
	$(BIN)/python -m pytest -q -m "not flink and not slow"

bench: setup-test
	$(BIN)/pip install --quiet -e ".[bench]"
	@echo "see bench/README.md for each benchmark's command"

clean:
	rm -rf $(VENV) demo-out .pytest_cache
