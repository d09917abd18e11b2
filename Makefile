# The two set-up commands of the README: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test unit bench wsdl clean

$(BIN)/mlsfeeds: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "mlsfeeds needs Python 3.11 (spyne 2.14 does not import on 3.12+)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

demo: $(BIN)/mlsfeeds
	$(BIN)/mlsfeeds demo

test: $(BIN)/mlsfeeds
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

unit: $(BIN)/mlsfeeds
	$(BIN)/python -m pytest -q tests/unit

bench: $(BIN)/mlsfeeds
	$(BIN)/python -m bench.soap_search

wsdl: $(BIN)/mlsfeeds
	$(BIN)/mlsfeeds wsdl --write

clean:
	rm -rf $(VENV) var .pytest_cache
