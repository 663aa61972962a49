# The two commands a new user needs (see README):
#   make book   -> creates .venv if needed, runs the whole book in the smoke profile
#   make test   -> creates .venv if needed, runs the test suite
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= smoke
STAMP := $(VENV)/.ssui-installed

.PHONY: book test env html lab clean-runs

$(STAMP): pyproject.toml scripts/setup_env.sh
	PY=$(PY) VENV=$(VENV) bash scripts/setup_env.sh
	touch $(STAMP)

env: $(STAMP)

book: $(STAMP)
	$(BIN)/ssui book run --profile $(PROFILE) --resume
	$(BIN)/ssui book build --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest -q -rs tests  # -rs: list every skip (under CI=true a skip fails, see tests/conftest.py)

# JupyterLab on the chapters (notebooks/*.py open as notebooks; saving writes the .py)
lab: $(STAMP)
	$(BIN)/python -m ssui_lib.book.lab

html: $(STAMP)
	$(BIN)/ssui book build --profile $(PROFILE)
