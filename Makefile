# `make run`: set up everything and serve the demo. `make test`: set up everything and test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi.py

.PHONY: setup assets db run test lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Front-end libraries from the npm registry, served from app/static/vendor.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

app/static/vendor/.built: node_modules/.installed assets/build.mjs $(wildcard assets/modeler/*)
	node assets/build.mjs
	touch $@

assets: app/static/vendor/.built

setup: $(VENV)/.installed assets
	$(BIN)/pybabel compile -d app/translations

db: setup
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo

run: db
	$(BIN)/flask serve --host 127.0.0.1 --port 5000

test: setup
test: chromium
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check app tests

.PHONY: chromium
# Browser tests drive Debian's chromium (never a downloaded one); CJK fonts keep screenshots legible.
chromium:
	@command -v chromium >/dev/null 2>&1 && dpkg -s fonts-wqy-microhei >/dev/null 2>&1 \
	  || [ "$$(id -u)" != 0 ] \
	  || (apt-get update && apt-get install -y chromium fonts-wqy-microhei)

clean:
	rm -rf $(VENV) instance *.egg-info
