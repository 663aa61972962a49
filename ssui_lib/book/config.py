"""book.toml: the book's metadata (mdBook's [book] keys), its ordered chapters and the parameter
profiles. Loading validates everything against the notebooks' own `parameters` cells, so a typo
fails before anything runs, with an error naming the file and the key.

    [book]                       title, authors, description, language  (mdBook's keys)
    [[chapters]]                 id, source, title, reproduces, reads (optional: ids of earlier
                                 chapters whose outputs it uses; part of its --resume fingerprint)
    [profiles.NAME]              description
    [profiles.NAME.defaults]     parameters for every chapter that declares them
    [profiles.NAME.chapters.ID]  per-chapter overrides
"""
from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssui_lib.core.errors import SSUIError

BOOK_KEYS = {"title": str, "authors": list, "description": str, "language": str,
             "src": str, "multilingual": bool, "text-direction": str}
CHAPTER_KEYS = {"id": str, "source": str, "title": str, "reproduces": str, "reads": list}
REQUIRED_CHAPTER_KEYS = ("id", "source", "title", "reproduces")  # reads: ids of earlier chapters whose outputs it uses
RESERVED = ("profile",)  # injected by the runner into every chapter


@dataclass
class Chapter:
    """A chapter of the book: what book.toml says of it (run by ``book.runner``), and the executed
    notebook that ``book.html`` renders (``notebook``; its page is ``href``)."""
    id: str
    source: Path  # absolute
    rel_source: str
    title: str
    reproduces: str
    declared: dict[str, Any] = field(default_factory=dict)  # parameter -> default, from the parameters cell
    reads: tuple[str, ...] = ()  # earlier chapters whose outputs (results/<profile>/<id>/) it reads
    notebook: Path | None = None  # the executed notebook (papermill_runs/<profile>/<id>.ipynb)

    @property
    def href(self) -> str:
        return f"{self.id}.html"


@dataclass
class BookConfig:
    path: Path
    root: Path
    book: dict[str, Any]
    chapters: list[Chapter]
    profiles: dict[str, dict[str, Any]]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    def chapter(self, cid: str) -> Chapter:
        for c in self.chapters:
            if c.id == cid:
                return c
        raise SSUIError(f"unknown chapter {cid!r} (chapters in {self.path.name}: {', '.join(c.id for c in self.chapters)})")

    def select(self, ids: list[str] | None) -> list[Chapter]:
        if ids is None:
            return list(self.chapters)
        if not ids or not all(isinstance(i, str) and i.strip() for i in ids):
            raise SSUIError(f"--chapters: expected comma-separated chapter ids ({', '.join(c.id for c in self.chapters)}), "
                            f"got {','.join(map(str, ids))!r}")
        wanted = [self.chapter(i) for i in ids]  # raises on an unknown id
        order = {c.id: n for n, c in enumerate(self.chapters)}
        return sorted(wanted, key=lambda c: order[c.id])

    def parameters(self, profile: str, chapter: Chapter, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The parameters papermill injects into one chapter under a profile (+ --set overrides)."""
        prof = self.profile(profile)
        params: dict[str, Any] = {"profile": profile}
        for k, v in prof.get("defaults", {}).items():
            if k in chapter.declared:
                params[k] = v
        params.update(prof.get("chapters", {}).get(chapter.id, {}))
        for k, v in (overrides or {}).items():
            if k in chapter.declared:
                params[k] = v
        return params

    def profile(self, name: str) -> dict[str, Any]:
        if name not in self.profiles:
            raise SSUIError(f"{self.path.name}: unknown profile {name!r} (profiles: {', '.join(self.profiles)})")
        return self.profiles[name]


# ----------------------------------------------------------------------------- notebooks

NOTEBOOK_SUFFIXES = (".py", ".ipynb")


def read_text_file(path: Path, what: str = "file") -> str:
    """A UTF-8 text file's content; SSUIError (naming the file and the first bad byte's line) for
    a missing file, a directory or bytes that are not UTF-8."""
    path = Path(path)
    if path.is_dir():
        raise SSUIError(f"{path}: is a directory, expected a {what}")
    if not path.is_file():
        raise SSUIError(f"{path}: file not found (expected a {what})")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise SSUIError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                        f"expected a UTF-8 {what}") from None


def read_notebook(path: Path):
    """A chapter source (a jupytext percent-format .py, or an .ipynb) as an nbformat notebook;
    SSUIError for anything else."""
    import jupytext

    path = Path(path)
    if path.suffix not in NOTEBOOK_SUFFIXES:
        raise SSUIError(f"{path}: a chapter source must be a jupytext .py or an .ipynb notebook, "
                        f"got {path.suffix or 'a file without extension'!r}")
    text = read_text_file(path, "notebook")
    try:
        return jupytext.reads(text, fmt=path.suffix[1:])
    except Exception as e:  # noqa: BLE001 - jupytext/nbformat raise many types for a broken file
        first = (str(e).splitlines() or [""])[0][:200]
        raise SSUIError(f"{path}: not a readable notebook ({type(e).__name__}: {first})") from None


def declared_parameters(path: Path) -> dict[str, Any]:
    """Names and default values assigned in the notebook's cell tagged `parameters`."""
    nb = read_notebook(path)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if not cells:
        raise SSUIError(f"{path}: no code cell tagged 'parameters' (papermill needs one)")
    out: dict[str, Any] = {}
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as e:
        raise SSUIError(f"{path}: parameters cell: {e.msg} (line {e.lineno})") from None
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    try:
                        out[t.id] = ast.literal_eval(node.value)
                    except ValueError:
                        raise SSUIError(f"{path}: parameters cell: {t.id} must be a literal value") from None
    return out


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def check_type(value: Any, default: Any, where: str) -> None:
    """A value must have the type of the notebook's default (an int is accepted for a float;
    a None default accepts anything)."""
    if default is None:
        return
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(default, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise SSUIError(f"{where}: expected {_type_name(default)}, got {_type_name(value)} ({value!r})")


# ----------------------------------------------------------------------------- loading

def _check_table(d: Any, keys: dict[str, type], where: str, required: tuple[str, ...]) -> None:
    if not isinstance(d, dict):
        raise SSUIError(f"{where}: expected a table")
    for k in required:
        if k not in d:
            raise SSUIError(f"{where}.{k}: missing")
    for k, v in d.items():
        if k not in keys:
            raise SSUIError(f"{where}.{k}: unknown key (allowed: {', '.join(keys)})")
        if not isinstance(v, keys[k]):
            raise SSUIError(f"{where}.{k}: expected {keys[k].__name__}, got {_type_name(v)}")


def load_config(path: str | Path = "book.toml") -> BookConfig:
    path = Path(path).resolve()
    name = path.name
    text = read_text_file(path, "book.toml")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SSUIError(f"{name}: invalid TOML: {e}") from None
    for k in raw:
        if k not in ("book", "chapters", "profiles"):
            raise SSUIError(f"{name}: unknown top-level key {k!r} (allowed: book, chapters, profiles)")
    _check_table(raw.get("book"), BOOK_KEYS, f"{name}: book", ("title",))
    if "authors" in raw["book"] and not all(isinstance(a, str) for a in raw["book"]["authors"]):
        raise SSUIError(f"{name}: book.authors: expected a list of strings")
    root = path.parent
    chapters_raw = raw.get("chapters")
    if not isinstance(chapters_raw, list) or not chapters_raw:
        raise SSUIError(f"{name}: chapters: expected at least one [[chapters]] entry")
    chapters: list[Chapter] = []
    for i, c in enumerate(chapters_raw):
        where = f"{name}: chapters[{i}]"
        _check_table(c, CHAPTER_KEYS, where, REQUIRED_CHAPTER_KEYS)
        if any(x.id == c["id"] for x in chapters):
            raise SSUIError(f"{where}.id: duplicate chapter id {c['id']!r}")
        for r in c.get("reads", []):
            if r not in [x.id for x in chapters]:
                raise SSUIError(f"{where}.reads: {r!r} is not the id of an earlier chapter")
        src = (root / c["source"]).resolve()
        if not src.is_file():
            raise SSUIError(f"{where}.source: file not found: {c['source']}")
        if src.suffix not in NOTEBOOK_SUFFIXES:
            raise SSUIError(f"{where}.source: {c['source']}: expected a jupytext .py or an .ipynb notebook")
        declared = declared_parameters(src)
        for r in RESERVED:
            if r not in declared:
                raise SSUIError(f"{c['source']}: parameters cell must declare {r!r}")
        chapters.append(Chapter(c["id"], src, c["source"], c["title"], c["reproduces"], declared,
                                tuple(c.get("reads", []))))
    profiles = raw.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise SSUIError(f"{name}: profiles: expected at least one [profiles.NAME] table")
    cfg = BookConfig(path, root, raw["book"], chapters, profiles, raw)
    for pname, prof in profiles.items():
        _validate_profile(cfg, pname, prof)
    return cfg


def _validate_profile(cfg: BookConfig, pname: str, prof: Any) -> None:
    name = cfg.path.name
    where = f"{name}: profiles.{pname}"
    if not isinstance(prof, dict):
        raise SSUIError(f"{where}: expected a table")
    for k in prof:
        if k not in ("description", "defaults", "chapters"):
            raise SSUIError(f"{where}.{k}: unknown key (allowed: description, defaults, chapters)")
    if not isinstance(prof.get("description", ""), str):
        raise SSUIError(f"{where}.description: expected a string, got {_type_name(prof['description'])}")
    for k in ("defaults", "chapters"):
        if not isinstance(prof.get(k, {}), dict):
            raise SSUIError(f"{where}.{k}: expected a table ([profiles.{pname}.{k}]), got {_type_name(prof[k])} "
                            f"({prof[k]!r})")
    for k, v in prof.get("defaults", {}).items():
        decl = [c for c in cfg.chapters if k in c.declared]
        if k in RESERVED:
            raise SSUIError(f"{where}.defaults.{k}: reserved (the runner sets it)")
        if not decl:
            raise SSUIError(f"{where}.defaults.{k}: parameter not declared in any chapter's parameters cell")
        for c in decl:
            check_type(v, c.declared[k], f"{where}.defaults.{k} (declared in {c.rel_source})")
    for cid, over in prof.get("chapters", {}).items():
        try:
            ch = cfg.chapter(cid)
        except SSUIError as e:
            raise SSUIError(f"{where}.chapters.{cid}: {e}") from None
        if not isinstance(over, dict):
            raise SSUIError(f"{where}.chapters.{cid}: expected a table")
        for k, v in over.items():
            if k not in ch.declared:
                raise SSUIError(f"{where}.chapters.{cid}.{k}: parameter not declared in {ch.rel_source}'s parameters cell "
                                f"(declared: {', '.join(ch.declared)})")
            if k in RESERVED:
                raise SSUIError(f"{where}.chapters.{cid}.{k}: reserved (the runner sets it)")
            check_type(v, ch.declared[k], f"{where}.chapters.{cid}.{k} (declared in {ch.rel_source})")


def parse_set(items: list[str] | None, chapters: list[Chapter]) -> dict[str, Any]:
    """`--set key=value` overrides: the value is read as a TOML literal (42, 0.5, true, "x",
    [1, 2]) or else taken as a plain string; the key must be declared by a selected chapter and
    the value must have its type."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SSUIError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        decl = [c for c in chapters if key in c.declared]
        if key in RESERVED:
            raise SSUIError(f"--set {key}: reserved (use --profile)")
        if not decl:
            raise SSUIError(f"--set {key}: unknown parameter (not declared in the parameters cell of chapter(s) "
                            f"{', '.join(c.id for c in chapters)})")
        for c in decl:
            check_type(value, c.declared[key], f"--set {key} (declared in {c.rel_source})")
        out[key] = value
    return out
