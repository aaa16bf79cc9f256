# `make run`: set up everything and serve the demo. `make test`: set up everything and test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi.py

.PHONY: setup db run test lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

db: setup
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo

run: db
	$(BIN)/flask serve --host 127.0.0.1 --port 5000

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check app tests

clean:
	rm -rf $(VENV) instance *.egg-info
