"""JupyterLab on the book: installed, chapters open as notebooks through the server, saving writes the .py."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ssui_lib.book import lab
from ssui_lib.core.errors import SSUIError

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "ssui-test-token"


def test_jupyter_lab_is_installed_in_the_environment():
    jupyter = Path(sys.executable).parent / "jupyter"
    out = subprocess.run([str(jupyter), "lab", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split(".")[0] == "4"


def test_write_settings_merges_and_keeps_other_keys(tmp_path):
    path = lab.settings_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
                                lab.DOCMANAGER: {"defaultViewers": {"markdown": "Markdown Preview"}}}))
    assert lab.write_settings(tmp_path) == path
    got = json.loads(path.read_text())
    assert got["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    assert got[lab.DOCMANAGER]["defaultViewers"] == {"markdown": "Markdown Preview", "python": "Jupytext Notebook"}
    path.write_text("{not json")
    with pytest.raises(SSUIError, match="overrides.json: not valid JSON"):
        lab.write_settings(tmp_path)


def test_lab_command_opens_on_the_chapter_list(tmp_path):
    cmd = lab.lab_command(ROOT, port=8899, open_browser=False)
    assert "--LabApp.default_url=/lab/tree/notebooks" in cmd and f"--ServerApp.root_dir={ROOT}" in cmd and "--no-browser" in cmd
    with pytest.raises(SSUIError, match="no notebooks/ folder"):
        lab.lab_command(tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, data: bytes | None = None, method: str = "GET") -> dict:
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read().decode())


@contextlib.contextmanager
def running_lab(root: Path, tmp_path: Path, extra: list[str] | None = None):
    """JupyterLab on 127.0.0.1 over ``root``, with config/runtime/settings folders under ``tmp_path``
    (so nothing of the user's own Jupyter setup leaks in); yields its base URL."""
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "user-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws")}
    cmd = lab.lab_command(root, port=port, open_browser=False,
                          extra=["--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}"] + list(extra or []))
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                _get(f"{base}/api/status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.time() > deadline:
                    proc.kill()
                    raise AssertionError(f"JupyterLab did not start: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def lab_server(tmp_path):
    """JupyterLab over a copy of two chapters (so saving cannot touch the repository)."""
    root = tmp_path / "book"
    (root / "notebooks").mkdir(parents=True)
    for name in ("00_setup.py", "04_exploration.py"):
        shutil.copy(ROOT / "notebooks" / name, root / "notebooks" / name)
    with running_lab(root, tmp_path) as base:
        yield base, root


@pytest.mark.slow
def test_chapter_source_opens_as_a_notebook_and_saving_writes_the_py(lab_server):
    base, root = lab_server
    model = _get(f"{base}/api/contents/notebooks/04_exploration.py?type=notebook&content=1")
    assert model["type"] == "notebook"
    cells = model["content"]["cells"]
    assert len(cells) > 5
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and params[0]["cell_type"] == "code"

    # the environment's settings make a double click open Python files as notebooks
    req = urllib.request.Request(f"{base}/", headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as r:  # the first page is the chapter list
        assert r.geturl().endswith("/lab/tree/notebooks")
    settings = _get(f"{base}/lab/api/settings/{lab.DOCMANAGER}")
    # (overrides.json changes the schema's default; the user's own settings stay empty)
    assert settings["schema"]["properties"]["defaultViewers"]["default"]["python"] == "Jupytext Notebook"

    # saving through the server writes the .py (percent format), and no .ipynb appears
    cells.append({"cell_type": "markdown", "metadata": {}, "source": "A note a reader added in JupyterLab."})
    body = json.dumps({"type": "notebook", "format": "json", "content": model["content"]}).encode()
    _get(f"{base}/api/contents/notebooks/04_exploration.py", data=body, method="PUT")
    text = (root / "notebooks" / "04_exploration.py").read_text()
    assert "# A note a reader added in JupyterLab." in text and "# %% [markdown]" in text
    assert not list((root / "notebooks").glob("*.ipynb"))
