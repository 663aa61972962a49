"""book.toml validation and the runner (papermill on jupytext sources), on a tiny book of our own."""
import json

import pytest

from ssui_lib.book.runner import run_book
from ssui_lib.book.config import load_config
from ssui_lib.core.errors import SSUIError

NB_A = '''# %% [markdown]
# # A
# %% tags=["parameters"]
profile = "smoke"
n = 3
rate = 0.5
label = "x"
# %%
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from pathlib import Path
Path(f"figures/{profile}").mkdir(parents=True, exist_ok=True)
fig, ax = plt.subplots()
ax.plot(range(n))
fig.savefig(f"figures/{profile}/00_line.png")
print("n =", n, "rate =", rate, "label =", label)
'''
NB_B = '''# %% tags=["parameters"]
profile = "smoke"
fail = False
# %%
x = 1
# %%
if fail:
    1 / 0
'''
TOML = '''
[book]
title = "Tiny"
authors = ["t"]
description = "d"
language = "en"

[[chapters]]
id = "00"
source = "nb/a.py"
title = "A"
reproduces = "-"

[[chapters]]
id = "01"
source = "nb/b.py"
title = "B"
reproduces = "-"

[profiles.smoke.defaults]
n = 2
[profiles.smoke.chapters."01"]
fail = false
'''


@pytest.fixture
def book(tmp_path):
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "a.py").write_text(NB_A)
    (tmp_path / "nb" / "b.py").write_text(NB_B)
    (tmp_path / "book.toml").write_text(TOML)
    return tmp_path


def edit(book, old, new):
    p = book / "book.toml"
    p.write_text(p.read_text().replace(old, new))


@pytest.mark.parametrize("old, new, msg", [
    ('title = "Tiny"', 'title = "Tiny', "book.toml: invalid TOML"),
    ('language = "en"', 'language = "en"\ncolour = "red"', "book.toml: book.colour: unknown key"),
    ('source = "nb/b.py"', 'source = "nb/c.py"', "book.toml: chapters[1].source: file not found: nb/c.py"),
    ('n = 2', 'n = "two"', "book.toml: profiles.smoke.defaults.n (declared in nb/a.py): expected int, got str"),
    ('n = 2', 'm = 2', "book.toml: profiles.smoke.defaults.m: parameter not declared in any chapter"),
    ('fail = false', 'n = 1', "book.toml: profiles.smoke.chapters.01.n: parameter not declared in nb/b.py"),
    ('[profiles.smoke.chapters."01"]', '[profiles.smoke.chapters."07"]', "book.toml: profiles.smoke.chapters.07: unknown chapter '07'"),
    ('id = "01"', 'id = "00"', "chapters[1].id: duplicate chapter id"),
])
def test_bad_book_toml(book, old, new, msg):
    edit(book, old, new)
    with pytest.raises(SSUIError) as e:
        load_config(book / "book.toml")
    assert msg in str(e.value)


def test_parameters_and_types(book):
    cfg = load_config(book / "book.toml")
    assert cfg.chapters[0].declared == {"profile": "smoke", "n": 3, "rate": 0.5, "label": "x"}
    assert cfg.parameters("smoke", cfg.chapters[0]) == {"profile": "smoke", "n": 2}
    assert cfg.parameters("smoke", cfg.chapters[1]) == {"profile": "smoke", "fail": False}
    with pytest.raises(SSUIError, match="unknown profile 'paper'"):
        cfg.profile("paper")


@pytest.mark.parametrize("sets, msg", [
    (["nope=1"], "--set nope: unknown parameter"),
    (["n=abc"], "--set n (declared in nb/a.py): expected int, got str"),
    (["rate=true"], "--set rate (declared in nb/a.py): expected float, got bool"),
    (["n"], "expected KEY=VALUE"),
    (["profile=paper"], "reserved"),
])
def test_bad_set_writes_nothing(book, sets, msg):
    with pytest.raises(SSUIError) as e:
        run_book("smoke", config=book / "book.toml", sets=sets, progress=False)
    assert msg in str(e.value)
    assert not (book / "papermill_runs").exists()


def test_unknown_chapter(book):
    with pytest.raises(SSUIError, match="unknown chapter '09'"):
        run_book("smoke", config=book / "book.toml", chapters=["09"], progress=False)


def test_run_resume_and_failure(book):
    cfg = book / "book.toml"
    m = run_book("smoke", config=cfg, sets=["rate=0.25", "label=hello world"], progress=False)
    man = json.loads((book / "papermill_runs/smoke/manifest.json").read_text())
    assert man["status"] == "ok" and m["status"] == "ok"
    a = man["chapters"]["00"]
    assert a["status"] == "ok" and a["figures"] == ["figures/smoke/00_line.png"]
    assert a["parameters"] == {"profile": "smoke", "n": 2, "rate": 0.25, "label": "hello world"}
    assert (book / a["output"]).is_file() and a["duration_s"] > 0
    assert "papermill" in man["packages"] and man["started"] and man["duration_s"] > 0
    executed = json.loads((book / a["output"]).read_text())
    assert any("n = 2 rate = 0.25 label = hello world" in "".join(o.get("text", "")) for c in executed["cells"]
               if c["cell_type"] == "code" for o in c.get("outputs", []))

    # --resume: nothing changed -> both skipped
    m2 = run_book("smoke", config=cfg, sets=["rate=0.25", "label=hello world"], resume=True, progress=False)
    assert all(c.get("resumed") for c in m2["chapters"].values())
    # a changed parameter re-runs only that chapter
    m3 = run_book("smoke", config=cfg, sets=["rate=0.75", "label=hello world"], resume=True, progress=False)
    assert not m3["chapters"]["00"].get("resumed") and m3["chapters"]["01"].get("resumed")

    # a failing cell: clear error naming chapter, cell and exception; manifest says failed
    with pytest.raises(SSUIError) as e:
        run_book("smoke", config=cfg, sets=["fail=true"], progress=False)
    msg = str(e.value)
    assert "chapter 01 (B) failed in cell" in msg and "ZeroDivisionError" in msg and "if fail:" in msg
    man = json.loads((book / "papermill_runs/smoke/manifest.json").read_text())
    assert man["status"] == "failed" and man["failed_chapter"] == "01"
    assert man["chapters"]["01"]["status"] == "failed" and man["chapters"]["00"]["status"] == "ok"
    # ... and --resume after the failure re-runs the failed chapter
    m4 = run_book("smoke", config=cfg, sets=["rate=0.75", "label=hello world"], resume=True, progress=False)
    assert m4["status"] == "ok" and not m4["chapters"]["01"].get("resumed")


def test_cli_errors_are_one_line(book, capsys):
    from ssui_lib.cli import main

    rc = main(["book", "run", "--profile", "smoke", "--config", str(book / "book.toml"), "--set", "zzz=1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --set zzz: unknown parameter") and err.count("\n") == 1
