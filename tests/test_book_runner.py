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
def book(tmp_path, monkeypatch):
    # The library is snapshotted: other work on the checkout must not change the fingerprint
    # between two runs of one test (the tests that are about the library hash patch it themselves).
    from ssui_lib.book import runner

    snapshot = runner.library_files()
    monkeypatch.setattr(runner, "library_files", lambda: dict(snapshot))
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


# ----------------------------------------------------------------------------- bad input: one line, nothing written

@pytest.mark.parametrize("old, new, msg", [
    ('[profiles.smoke.defaults]\nn = 2', '[profiles.smoke]\ndefaults = 3', "profiles.smoke.defaults: expected a table"),
    ('[profiles.smoke.chapters."01"]\nfail = false', '[profiles.other]\nchapters = "x"',
     "profiles.other.chapters: expected a table ([profiles.other.chapters]), got str ('x')"),
    ('[profiles.smoke.chapters."01"]\nfail = false', '[profiles.other]\nchapters = ["01"]',
     "profiles.other.chapters: expected a table"),
    ('source = "nb/b.py"', 'source = "nb/notes.txt"', "chapters[1].source: nb/notes.txt: expected a jupytext .py or an .ipynb"),
    ('source = "nb/b.py"', 'source = "nb"', "chapters[1].source: file not found: nb"),
    ('reproduces = "-"\n\n[profiles', 'reproduces = "-"\nreads = ["07"]\n\n[profiles',
     "chapters[1].reads: '07' is not the id of an earlier chapter"),
])
def test_bad_book_toml_shapes(book, old, new, msg):
    (book / "nb" / "notes.txt").write_text("not a notebook\n")
    edit(book, old, new)
    with pytest.raises(SSUIError) as e:
        load_config(book / "book.toml")
    assert msg in str(e.value)


def test_book_toml_not_utf8_or_a_directory(book):
    p = book / "book.toml"
    p.write_bytes(p.read_bytes().replace(b'title = "Tiny"', b'title = "Ti\xffny"'))
    with pytest.raises(SSUIError, match=r"book.toml:3: not UTF-8 text \(byte 0xff at offset \d+\)"):
        load_config(p)
    with pytest.raises(SSUIError, match="is a directory, expected a book.toml"):
        load_config(book / "nb")


def test_chapter_source_not_utf8_or_not_a_notebook(book):
    from ssui_lib.book.config import read_notebook

    (book / "nb" / "b.py").write_bytes(b"# %%\nx = '\xe9'\n")
    with pytest.raises(SSUIError, match=r"nb/b.py:2: not UTF-8 text"):
        load_config(book / "book.toml")
    (book / "nb" / "c.ipynb").write_text("{not json")
    with pytest.raises(SSUIError, match=r"c.ipynb: not a readable notebook \(NotJSONError"):
        read_notebook(book / "nb" / "c.ipynb")


def test_empty_chapter_selection_is_refused(book):
    cfg = load_config(book / "book.toml")
    with pytest.raises(SSUIError, match=r"--chapters: expected comma-separated chapter ids \(00, 01\), got ''"):
        cfg.select([])
    assert [c.id for c in cfg.select(None)] == ["00", "01"]


NB_P = '''# %% tags=["parameters"]
profile = "smoke"
model = "embedded"
judge = "offline"
dataset = "bundled:test"
mode = "until_pair"
k = 4
methods = ["sft", "srpo"]
steps = [6, 7]
# %%
print(model)
'''


@pytest.mark.parametrize("sets, msg", [
    (["model=hf:/nope"], "chapter 02 (nb/p.py): parameter model = 'hf:/nope': model folder '/nope' not found"),
    (["model=gpt"], "parameter model = 'gpt': unknown model name 'gpt'"),
    (["judge=openai-compatible:http://10.0.0.5/v1#j"], "plain http:// to 10.0.0.5"),
    (["judge=banana"], "parameter judge = 'banana': unknown judge"),
    (["dataset=nope"], "parameter dataset = 'nope': expected a dataset spec KIND:ARG"),
    (["dataset=bundled:nope"], "unknown bundled split 'nope'"),
    (["dataset=jsonl:missing.jsonl"], "dataset file 'missing.jsonl' not found"),
    (["dataset=csv:x"], "unknown dataset kind 'csv'"),
    (["k=-5"], "parameter k = -5: expected a value > 0"),
    (["mode=banana"], "parameter mode = 'banana': expected one of until_pair, fixed_k"),
    (['methods=["sft", "ppo"]'], "parameter methods = ['sft', 'ppo']: item 1 ('ppo'): expected one of srpo, sft, dpo, orpo"),
    (['methods=["sft", "sft"]'], "expected no repeated entries"),
    (["steps=[0, 7]"], "item 0 (0): expected a value >= 1 and <= 7"),
])
def test_parameter_values_checked_before_the_first_chapter(book, sets, msg):
    (book / "nb" / "p.py").write_text(NB_P)
    edit(book, '[profiles.smoke.defaults]', '[[chapters]]\nid = "02"\nsource = "nb/p.py"\ntitle = "P"\nreproduces = "-"\n\n'
                                            '[profiles.smoke.defaults]')
    with pytest.raises(SSUIError) as e:
        run_book("smoke", config=book / "book.toml", sets=sets, progress=False)
    assert msg in str(e.value)
    assert not (book / "papermill_runs").exists() and not (book / "figures").exists()  # chapter 00 never ran


def test_enumerations_match_the_library():
    from ssui_lib.book import params
    from ssui_lib.curation import REVIEW_POLICIES
    from ssui_lib.eval.icl import BY
    from ssui_lib.srpo.explore import MODES
    from ssui_lib.srpo.config import METHODS
    from ssui_lib.srpo.losses import VARIANTS

    assert set(params.TRAIN_METHODS) == set(METHODS) and set(params.LOSS_VARIANTS) == set(VARIANTS)
    assert params.EXPLORE_MODES == MODES and params.ICL_BY == BY and params.REVIEW_POLICIES == REVIEW_POLICIES


def test_the_shipped_smoke_profile_passes_value_checks(root):
    from ssui_lib.book.runner import plan_book

    plan = plan_book("smoke", config=root / "book.toml", runs_dir=root / "nonexistent-runs")
    assert [p["id"] for p in plan] == ["00", "01", "02", "03", "04", "05", "06", "07", "08"]
    assert all(p["action"] == "run" and p["reason"] == "no earlier run recorded" for p in plan[:5])
    assert plan[5]["reason"] == "it reads chapter 04, which would run"


def test_papermill_reads_every_parameter_of_every_chapter(root):
    """papermill injects only what its parser finds in the parameters cell (a comment it cannot parse
    makes it skip that line with a warning): every assignment of every shipped chapter is found."""
    import jupytext
    from papermill.translators import PythonTranslator

    for f in sorted((root / "notebooks").glob("0*.py")):
        cell = next(c for c in jupytext.read(f).cells if "parameters" in c.get("metadata", {}).get("tags", []))
        names = [ln.split("=")[0].strip() for ln in cell.source.splitlines()
                 if ln and ln[0].isalpha() and "=" in ln.split("#")[0]]
        assert [p.name for p in PythonTranslator.inspect(cell)] == names, f.name


# ----------------------------------------------------------------------------- fingerprint and --dry-run

NB_W = '''# %% tags=["parameters"]
profile = "smoke"
n = 3
# %%
from pathlib import Path
d = Path("results") / profile / "00"
d.mkdir(parents=True, exist_ok=True)
(d / "out.txt").write_text(str(n))
'''
NB_R = '''# %% tags=["parameters"]
profile = "smoke"
# %%
from pathlib import Path
print(Path("results", profile, "00", "out.txt").read_text())
'''
TOML3 = TOML.replace('[profiles.smoke.defaults]', '''[[chapters]]
id = "02"
source = "nb/r.py"
title = "R"
reproduces = "-"
reads = ["00"]

[profiles.smoke.defaults]''')


def test_library_fingerprint_covers_package_data_and_not_node_modules():
    from ssui_lib.book.runner import library_files, library_hash

    files = library_files()  # not patched: this test takes no `book`
    assert "book/runner.py" in files and "core/lock.py" in files
    assert any(f.startswith("data/bundled/parts/") and f.endswith(".jsonl") for f in files)
    assert not any("node_modules" in f or "__pycache__" in f or f.endswith(".pyc") for f in files)
    assert len(library_hash(files)) == 64 and library_hash(files) != library_hash({**files, "x.py": "0"})


def test_dry_run_names_the_changed_input(book, monkeypatch, capsys):
    from ssui_lib.book import runner
    from ssui_lib.book.runner import plan_book
    from ssui_lib.cli import main

    (book / "nb" / "a.py").write_text(NB_W)
    (book / "nb" / "r.py").write_text(NB_R)
    (book / "book.toml").write_text(TOML3)
    cfg = book / "book.toml"
    plan = lambda **kw: {p["id"]: (p["action"], p["reason"]) for p in plan_book("smoke", config=cfg, **kw)}  # noqa: E731
    assert plan()["02"] == ("run", "it reads chapter 00, which would run")
    run_book("smoke", config=cfg, progress=False)
    assert {k: v[0] for k, v in plan().items()} == {"00": "skip", "01": "skip", "02": "skip"}
    assert plan(resume=False)["01"] == ("run", "--resume not given: every selected chapter runs")

    # a chapter-00 parameter: 00 runs (naming it), 02 (which reads 00) runs, 01 is skipped
    p = plan(sets=["n=5"])
    assert p["00"] == ("run", "parameters changed: n (2 -> 5)")
    assert p["01"][0] == "skip" and p["02"] == ("run", "it reads chapter 00, which would run")
    rc = main(["book", "run", "--profile", "smoke", "--config", str(cfg), "--set", "n=5", "--resume", "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and out[0] == "00 would run  parameters changed: n (2 -> 5)" and out[1].startswith("01 skip")
    assert not (book / "papermill_runs/smoke/.00.running.ipynb").exists()

    # the output a later chapter reads, changed by hand: only that chapter runs
    (book / "results/smoke/00/out.txt").write_text("99")
    p = plan()
    assert p["00"][0] == "skip" and p["02"] == ("run", "the outputs of chapter 00 (which it reads) changed")

    # one bundled record edited: every chapter runs, naming the file
    real = runner.library_files()
    edited = dict(real, **{"data/bundled/parts/dangerous.jsonl": "0" * 64})
    monkeypatch.setattr(runner, "library_files", lambda: edited)
    p = plan()
    assert p["01"] == ("run", "library changed: ssui_lib/data/bundled/parts/dangerous.jsonl")

    # a real resumed run agrees with the plan: 00 skipped, 02 re-run with the new input
    monkeypatch.setattr(runner, "library_files", lambda: real)
    m = run_book("smoke", config=cfg, resume=True, progress=False)
    assert m["chapters"]["00"].get("resumed") and not m["chapters"]["02"].get("resumed")
    assert m["chapters"]["02"]["ran_because"] == "the outputs of chapter 00 (which it reads) changed"
    assert {k: v[0] for k, v in plan().items()} == {"00": "skip", "01": "skip", "02": "skip"}


def test_outputs_do_not_make_git_dirty(book):
    import subprocess

    from ssui_lib.book.runner import git_state

    git = lambda *a: subprocess.run(["git", *a], cwd=book, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    for d in ("papermill_runs/smoke", "figures/smoke", "results/smoke"):
        (book / d).mkdir(parents=True)
        (book / d / "x.txt").write_text("1")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "x")
    for d in ("papermill_runs/smoke", "figures/smoke", "results/smoke"):
        (book / d / "x.txt").write_text("2")  # what a run rewrites
    assert git_state(book)["dirty"] is False
    (book / "nb" / "a.py").write_text(NB_A + "\n# edited\n")
    assert git_state(book)["dirty"] is True


def test_a_second_run_of_the_same_profile_refuses(book):
    import subprocess
    import sys

    hold = ("import sys, time\nfrom ssui_lib.core.lock import output_lock\n"
            "with output_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", hold, str(book / "papermill_runs" / "smoke")], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(SSUIError, match=rf"another run is writing this output \(pid {p.pid} "):
            run_book("smoke", config=book / "book.toml", progress=False)
        assert not (book / "papermill_runs/smoke/manifest.json").exists()
    finally:
        p.kill()
        p.wait()
