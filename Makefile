# Every target works on a fresh clone: the virtualenv is created, and the
# project (re)installed, whenever it is missing or pyproject.toml is newer.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.DEFAULT_GOAL := help
.PHONY: help run test lint bench clean

help:
	@echo "make run    the bot on the embedded default (offline console without DISCORD_TOKEN)"
	@echo "make test   the whole test suite"
	@echo "make lint   ruff, mypy --strict, layer rules"
	@echo "make bench  benchmarks (tables on stdout)"

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "timmybot needs Python >= 3.11 (found: $$($(PYTHON) --version)); set PYTHON=..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps record what was installed; pyproject.toml changing makes them stale.
$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[all]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(PY) -m timmybot_bot $(ARGS)

# dynalite (npm), the DynamoDB server of the AWS tests, in a project-local
# directory; the stamp names the version so a bump reinstalls it. Its native
# LevelDB addon is not built (--ignore-scripts): the tests run it in memory.
NODE_DIR         := .node
DYNALITE_VERSION := 4.0.0
DYNALITE         := $(NODE_DIR)/.installed-dynalite-$(DYNALITE_VERSION)

$(DYNALITE):
	@command -v npm >/dev/null 2>&1 || \
	  { echo "make test needs node (>= 20) and npm, for dynalite (the AWS tests' DynamoDB)" >&2; exit 1; }
	npm install --prefix $(NODE_DIR) --no-audit --no-fund --ignore-scripts dynalite@$(DYNALITE_VERSION)
	@touch $@

test: $(VENV)/.installed-dev $(DYNALITE)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check timmybot_core timmybot_adapters timmybot_bot tests bench examples
	$(BIN)/ruff format --check timmybot_core timmybot_adapters timmybot_bot tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/cfn-lint deploy/cloudformation/timmybot.yaml

bench: $(VENV)/.installed-dev
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(NODE_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks
