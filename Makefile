# Carnet — two commands: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export CARNET_BASE_URL ?= http://$(HOST):$(PORT)
# `make run` only: the demo's reviewer of emergency accesses (/pro/review), Dr Claire Martin (synthetic).
DEMO_REVIEWERS ?= 810900000018

.PHONY: run test test-fast test-part install lint serve demo clean screenshots

$(BIN)/carnet: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(BIN)/carnet

install: $(BIN)/carnet

run: install
	$(BIN)/carnet db upgrade
	CARNET_REVIEWERS=$${CARNET_REVIEWERS:-$(DEMO_REVIEWERS)} $(BIN)/carnet demo
	@echo "Serving on $(CARNET_BASE_URL) (Ctrl-C to stop)"
	CARNET_REVIEWERS=$${CARNET_REVIEWERS:-$(DEMO_REVIEWERS)} $(BIN)/carnet serve --host $(HOST) --port $(PORT) --with-worker

lint: install
	$(BIN)/ruff check src tests benchmarks examples scripts
	$(BIN)/mypy src
	$(BIN)/lint-imports --no-logo --no-cache

# `make test` and `make test-fast` run on WORKERS pytest-xdist processes (each a session of its own, with its own
# databases, var/ and ports; docs/CONTRIBUTING.md, "What a run costs"); WORKERS=0 runs in one process. A pre-created
# database (CARNET_TEST_PG_URL) holds one session's data: then the run is one process whatever WORKERS says.
WORKERS ?= 3
XDIST = $(if $(CARNET_TEST_PG_URL),,$(if $(filter-out 0,$(WORKERS)),-n $(WORKERS)))

test: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST)

# Part of the suite, without the lint (README, "Running part of the tests"). `make test-fast`: all but the slow groups
# (browser, scale, schemathesis). `make test-part T=tests/portal`, with M='not slow' (a marker expression),
# K=postgresql (a -k expression) and N=3 (pytest-xdist workers; one process without) if wanted.
# CARNET_TEST_DB_PREFIX and CARNET_TEST_DATABASE_URL pass through.
T ?= tests
test-fast: install
	$(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) -m "not slow" $(T)

test-part: install
	$(BIN)/python -m pytest -q -p no:cacheprovider $(T) $(if $(M),-m "$(M)") $(if $(K),-k "$(K)") \
		$(if $(and $(N),$(filter-out 0,$(N))),-n $(N))

screenshots: install
	$(BIN)/python scripts/screenshots.py --out docs/screenshots
	CARNET_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q -p no:cacheprovider tests/browser/test_teleconsult.py -k sqlite

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
