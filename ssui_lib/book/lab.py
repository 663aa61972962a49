"""JupyterLab on the book: the chapters open as notebooks, straight from their jupytext sources.

The chapter sources are ``notebooks/NN_name.py`` in jupytext's percent format. jupytext ships a
JupyterLab extension and a server contents manager that read and write such files as notebooks;
what it does not do by default is open them as notebooks on a double click (JupyterLab's default
viewer for Python files is the text editor). :func:`write_settings` sets that default in
``{sys.prefix}/share/jupyter/lab/settings/overrides.json`` — inside the project's virtual
environment, so a user's own JupyterLab elsewhere is untouched. Saving a chapter opened this way
writes the ``.py`` back; no ``.ipynb`` is created, so there is nothing to keep in sync.

:func:`lab_command` starts JupyterLab with the repository as its root and the file browser open on
``notebooks/`` (the chapter list); the executed notebooks of the last run are one folder away, in
``papermill_runs/<profile>/``. ``make lab`` runs ``python -m ssui_lib.book.lab``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import atomic_write_text

DOCMANAGER = "@jupyterlab/docmanager-extension:plugin"
JUPYTEXT_VIEWER = "Jupytext Notebook"  # the widget factory registered by jupyterlab-jupytext


def lab_settings() -> dict:
    """The JupyterLab setting overrides the book needs: Python files open as (jupytext) notebooks."""
    return {DOCMANAGER: {"defaultViewers": {"python": JUPYTEXT_VIEWER}}}


def settings_path(prefix: str | os.PathLike | None = None) -> Path:
    """Where JupyterLab reads application-wide setting overrides for this environment."""
    return Path(prefix or sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def write_settings(prefix: str | os.PathLike | None = None) -> Path:
    """Merge :func:`lab_settings` into the environment's ``overrides.json`` (other keys kept)."""
    path = settings_path(prefix)
    current: dict = {}
    if path.exists():
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SSUIError(f"{path}: not valid JSON ({e}); fix or delete it") from None
        if not isinstance(current, dict):
            raise SSUIError(f"{path}: expected a JSON object of settings")
    for plugin, values in lab_settings().items():
        merged = dict(current.get(plugin) or {})
        for key, value in values.items():
            merged[key] = {**(merged.get(key) or {}), **value} if isinstance(value, dict) else value
        current[plugin] = merged
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(current, indent=2) + "\n")
    return path


def lab_command(root: str | os.PathLike, *, port: int | None = None, open_browser: bool = True,
                extra: list[str] | None = None) -> list[str]:
    """argv that starts JupyterLab on the book: root = the repository, file browser on notebooks/."""
    root = Path(root).resolve()
    if not (root / "notebooks").is_dir():
        raise SSUIError(f"{root}: no notebooks/ folder here; run `make lab` from the repository root")
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}"]
    if port is not None:
        argv.append(f"--ServerApp.port={port}")
    if not open_browser:
        argv.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # containers and CI machines often run as root; Jupyter refuses it otherwise
    # a positional folder would become the server's root (hiding papermill_runs/); instead the root is
    # the repository and the first page the reader sees is the notebooks/ folder: the chapter list
    argv.append("--LabApp.default_url=/lab/tree/notebooks")
    return argv + list(extra or [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ssui_lib.book.lab",
                                 description="Start JupyterLab on the book's chapters (notebooks/*.py).")
    ap.add_argument("--write-settings", action="store_true",
                    help="only write the JupyterLab settings into this environment, then exit")
    ap.add_argument("--root", default=".", help="the repository root (default: the current folder)")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--no-browser", action="store_true")
    a = ap.parse_args(argv)
    try:
        path = write_settings()
        if a.write_settings:
            print(f"JupyterLab settings: {path}")
            return 0
        cmd = lab_command(a.root, port=a.port, open_browser=not a.no_browser)
    except SSUIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.execv(cmd[0], cmd)  # replaces this process: JupyterLab's own Ctrl-C handling applies
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
