# Every target works on a fresh clone: the virtualenv is created, and the
# project (re)installed, whenever it is missing or pyproject.toml is newer.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.DEFAULT_GOAL := help
.PHONY: help run test lint bench clean checkov aws-local

help:
	@echo "make run    the bot on the embedded default (offline console without DISCORD_TOKEN)"
	@echo "make test   the whole test suite"
	@echo "make lint   ruff, mypy --strict, layer rules"
	@echo "make bench  benchmarks (tables on stdout)"
	@echo "make checkov  checkov on the CloudFormation template (its own virtualenv)"
	@echo "make aws-local  the console on the aws backend, against local emulators"

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

# checkov pins boto3 (==1.35.49) and networkx (<2.7), which the dev install's
# boto3 and cfn-lint contradict: it gets a virtualenv of its own, from PyPI.
# --skip-download and BC_SKIP_MAPPING keep it from calling its vendor's API.
CHECKOV_VENV    := .venv-checkov
CHECKOV_VERSION := 3.3.*

$(CHECKOV_VENV)/.installed-checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	@touch $@

checkov: $(CHECKOV_VENV)/.installed-checkov
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --file deploy/cloudformation/timmybot.yaml \
	  --framework cloudformation --skip-download --compact --quiet

# moto's server and dynalite on 127.0.0.1, the template deployed there, and the
# offline console on the aws backend (deploy/local/aws_local.py). No AWS account.
aws-local: $(VENV)/.installed-dev $(DYNALITE)
	$(PY) deploy/local/aws_local.py -- $(ARGS)

bench: $(VENV)/.installed-dev
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(NODE_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks
