"""conftest.py: under CI=true a skip (missing browser or module) fails the run; `make test` lists skips."""
import os
import shutil
import subprocess
import sys

INNER = '''import pytest

def test_needs_chromium():
    pytest.skip("Chromium not installed")

@pytest.mark.skipif(True, reason="no browser here")
def test_marked():
    pass

def test_needs_module():
    pytest.importorskip("no_such_module_xyz")

@pytest.mark.xfail(reason="known")
def test_known_bad():
    assert False

def test_ok():
    pass
'''


def _run(tmp_path, root, ci):
    d = tmp_path / ("ci" if ci else "dev")
    d.mkdir()
    shutil.copy(root / "tests" / "conftest.py", d / "conftest.py")
    (d / "test_inner.py").write_text(INNER)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(d)],
                          cwd=d, env=env, capture_output=True, text=True, timeout=120)


def test_skips_fail_under_ci(tmp_path, root):
    r = _run(tmp_path, root, "true")
    assert r.returncode == 1, r.stdout
    assert "2 failed, 1 passed, 1 xfailed, 1 error" in r.stdout  # a skipif marker fails at setup (an error)
    assert "skipped under CI=true, which does not allow skips: Chromium not installed" in r.stdout
    assert "no browser here" in r.stdout and "no_such_module_xyz" in r.stdout


def test_skips_are_listed_outside_ci(tmp_path, root):
    r = _run(tmp_path, root, None)
    assert r.returncode == 0, r.stdout
    assert "1 passed, 3 skipped, 1 xfailed" in r.stdout
    assert "SKIPPED [1] test_inner.py" in r.stdout  # -rs: the skip summary


def test_make_test_prints_the_skip_summary(root):
    text = (root / "Makefile").read_text()
    line = next(ln for ln in text.splitlines() if "-m pytest" in ln and "tests" in ln)
    assert " -rs" in line
