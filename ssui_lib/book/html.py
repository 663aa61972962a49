"""The offline static HTML book: executed notebooks -> one page per chapter + an index.

``build_html`` renders the notebooks that papermill executed (``papermill_runs/<profile>/<id>.ipynb``)
with nbconvert's ``HTMLExporter`` (its ``lab`` template) and wraps every page in a small shell: a
sidebar table of contents (current chapter highlighted), previous/next links and, on the index,
what each chapter reproduces.

Why not Jupyter Book / Sphinx: Jupyter Book 2 fails offline, and every tool's default loads the
widget JavaScript from a CDN that cannot be reached here, which leaves widgets blank. This module
points nbconvert's ``require_js_url``, ``widget_renderer_url`` and ``mathjax_url`` at local copies
(installed from npm into ``ssui_lib/book/js/node_modules`` by ``scripts/setup_env.sh``) that are
copied into ``<out>/_static/``. Widgets render from the widget state nbclient/papermill store in
the notebook (``metadata.widgets["application/vnd.jupyter.widget-state+json"]``).

The build is checked before it replaces the previous one: no page may load a script or a
stylesheet from ``http(s)://`` (``SSUIError`` names the page). Output is written atomically: the
whole book is built in a temporary sibling folder, then swapped into place.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ssui_lib.book.config import Chapter
from ssui_lib.book.search import index_script, page_text
from ssui_lib.core.errors import SSUIError

# ----------------------------------------------------------------------------- JS assets

BOOK_JS_DIR = Path(__file__).resolve().parent / "js"
STATIC = "_static"
# Where third-party widget modules would be looked up instead of the default CDN (jsdelivr).
# Nothing ships there: an unknown widget fails locally instead of reaching for the network.
WIDGETS_LOCAL_CDN = f"{STATIC}/npm/"


@dataclass(frozen=True)
class JsAsset:
    """One npm package's files to copy into ``_static/<dest>``; ``entry`` is the file pages load."""

    package: str
    dest: str
    entry: str
    files: tuple[str, ...]  # glob patterns relative to the package folder


JS_ASSETS: tuple[JsAsset, ...] = (
    JsAsset("requirejs", "require", "require.js", ("require.js", "LICENSE*", "README.md")),
    # embed-amd.js plus the icon fonts its CSS refers to (resolved against
    # window.__jupyter_widgets_assets_path__, set in the page head).
    JsAsset(
        "@jupyter-widgets/html-manager", "html-manager", "embed-amd.js",
        ("dist/embed-amd.js", "dist/*.woff2", "dist/*.woff", "dist/*.ttf", "dist/*.eot", "dist/*.svg",
         "dist/embed.js.LICENSE.txt", "LICENSE*"),
    ),
    # MathJax 3, the single-file TeX -> SVG build: fonts are embedded, nothing else is fetched.
    JsAsset("mathjax", "mathjax", "tex-svg-full.js", ("es5/tex-svg-full.js", "LICENSE*")),
)


def _asset_files(asset: JsAsset, node_modules: Path) -> list[tuple[Path, str]]:
    """(source file, path below ``_static/<dest>``) pairs; the entry file flattened to the top."""
    root = node_modules / asset.package
    out: list[tuple[Path, str]] = []
    for pattern in asset.files:
        for src in sorted(root.glob(pattern)):
            if src.is_file():
                out.append((src, src.name))
    if not any(name == asset.entry for _, name in out):
        raise SSUIError(
            f"HTML book: widget/math JavaScript missing ({root / asset.entry} not found); "
            f"run scripts/setup_env.sh (it runs `npm ci` in {BOOK_JS_DIR})"
        )
    return out


def copy_js_assets(static_dir: Path, book_js_dir: Path | None = None) -> dict[str, str]:
    """Copy the npm-installed JavaScript into ``static_dir``; return {package: URL relative to a page}.

    Raises SSUIError (telling the user to run scripts/setup_env.sh) if ``npm ci`` has not run."""
    node_modules = (book_js_dir or BOOK_JS_DIR) / "node_modules"
    plans = {a: _asset_files(a, node_modules) for a in JS_ASSETS}  # check everything before copying
    urls: dict[str, str] = {}
    for asset, files in plans.items():
        dest = static_dir / asset.dest
        dest.mkdir(parents=True, exist_ok=True)
        for src, name in files:
            shutil.copyfile(src, dest / name)
        urls[asset.package] = f"{STATIC}/{asset.dest}/{asset.entry}"
    return urls


# ----------------------------------------------------------------------------- chapters


_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def parse_chapters(chapters: list[dict]) -> list[Chapter]:
    """Validate the chapter dicts (keys id, title, notebook, reproduces); ids become file names."""
    if not isinstance(chapters, list) or not chapters:
        raise SSUIError("HTML book: expected a non-empty list of chapters")
    out: list[Chapter] = []
    seen: set[str] = set()
    for i, c in enumerate(chapters):
        if not isinstance(c, dict):
            raise SSUIError(f"HTML book: chapter {i}: expected a dict, got {type(c).__name__}")
        for key in ("id", "title", "notebook"):
            if key not in c or c[key] in (None, ""):
                raise SSUIError(f"HTML book: chapter {i}: field '{key}': missing")
        cid = str(c["id"])
        if not _ID_RE.match(cid) or cid == "index":
            raise SSUIError(f"HTML book: chapter {i}: field 'id': {cid!r} is not usable as a file name")
        if cid in seen:
            raise SSUIError(f"HTML book: chapter {i}: field 'id': duplicate id {cid!r}")
        seen.add(cid)
        nb = Path(c["notebook"])
        out.append(Chapter(cid, nb, str(nb), str(c["title"]), str(c.get("reproduces") or ""), notebook=nb))
    return out


# ----------------------------------------------------------------------------- page shell

# The page templates, the stylesheet and the search script are files in ``templates/`` (package data).
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
NAV_TEMPLATES = ("sidebar.html.j2", "pager.html.j2", "head.html.j2", "shell.html.j2", "index_body.html.j2",
                 "not_run_body.html.j2")


def _template_text(name: str) -> str:
    return (TEMPLATES_DIR / name).read_text(encoding="utf-8")


def _jinja_env():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=jinja2.StrictUndefined
    )


# The nbconvert template for a chapter page (templates/ssui_chapter.html.j2): the stock `lab`
# template with local JavaScript, MathJax 3 instead of the CDN MathJax 2 block, no mermaid loader
# (it imports from a CDN) and the book's sidebar, chapter header and pager around the notebook.


def _html_exporter(js_urls: dict[str, str]):
    """nbconvert's HTMLExporter (lab template) with every script URL pointing into _static/."""
    import jinja2
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.FileSystemLoader(TEMPLATES_DIR)],
        template_file="ssui_chapter.html.j2",
        require_js_url=js_urls["requirejs"],
        widget_renderer_url=js_urls["@jupyter-widgets/html-manager"],
        mathjax_url=js_urls["mathjax"],
        theme="light",
    )


# ----------------------------------------------------------------------------- no-CDN check


class _RemoteAssetFinder(HTMLParser):
    """Collect http(s) URLs a page would load as a script or a stylesheet.

    Written here because no library answers "would this page fetch code from the web?": the
    stdlib HTML parser finds <script src>/<link href>, and small regexes look inside inline
    <style> (@import, url()) and <script> (import(), .src =, script/CDN URL literals)."""

    _CSS_REMOTE = re.compile(r"""(?:@import\s+|url\(\s*)["']?(https?://[^"')\s;]+)""", re.I)
    # In inline JavaScript: a URL literal that is imported, assigned to .src/.href, or names a
    # script/stylesheet file or a CDN (e.g. the widget loader's 'https://unpkg.com/...embed-amd.js').
    _JS_URL = re.compile(r"""(\bimport\b[^"'`;]*|\.(?:src|href)\s*=\s*)?["'`](https?://[^"'`\s]+)["'`]""", re.I)
    _ASSET_URL = re.compile(r"""^https?://(?:[^/]*(?:unpkg|jsdelivr|cdnjs|cloudflare|googleapis|plot\.ly)[^/]*/|[^?#]*\.(?:m?js|css)(?:[?#]|$))""", re.I)
    _CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in: str | None = None  # "script" (JavaScript), "style", or None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "script":
            if _is_remote(a.get("src", "")):
                self.found.append(a["src"])
            kind = a.get("type", "").strip().lower()
            self._in = "script" if kind in ("", "text/javascript", "module", "application/javascript") else None
        elif tag == "link":
            rel = a.get("rel", "").lower().split()
            if _is_remote(a.get("href", "")) and ({"stylesheet", "preload", "modulepreload"} & set(rel)):
                self.found.append(a["href"])
        elif tag == "style":
            self._in = "style"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self.found += self._CSS_REMOTE.findall(self._CSS_COMMENT.sub("", data))
        elif self._in == "script":
            for context, url in self._JS_URL.findall(data):
                if context or self._ASSET_URL.match(url):
                    self.found.append(url)


def _is_remote(url: str) -> bool:
    u = url.strip().lower()
    return u.startswith(("http://", "https://", "//"))


def remote_assets(html: str) -> list[str]:
    """The http(s) script/stylesheet URLs in an HTML page (empty for an offline page)."""
    finder = _RemoteAssetFinder()
    finder.feed(html)
    finder.close()
    return finder.found


def check_offline(site_dir: Path) -> None:
    """Raise SSUIError naming the first page that would load a script or stylesheet from the web."""
    for page in sorted(site_dir.glob("*.html")):
        found = remote_assets(page.read_text(encoding="utf-8"))
        if found:
            raise SSUIError(
                f"HTML book: {page.name}: loads {found[0]} from the network "
                f"({len(found)} remote script/stylesheet URL(s)); the book must work offline"
            )


# ----------------------------------------------------------------------------- pages


def _read_notebook(path: Path):
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception as e:  # nbformat raises several types (JSON, validation, OS)
        raise SSUIError(f"{path}: not a readable notebook ({type(e).__name__}: {e})") from None


def _run_info(nb) -> dict[str, Any]:
    """What papermill recorded about the run: when, how long, whether it failed."""
    pm = nb.metadata.get("papermill", {}) or {}
    ran_at = str(pm.get("end_time") or "")[:19].replace("T", " ")
    duration = pm.get("duration")
    return {
        "ran_at": ran_at,
        "duration": f"{float(duration):.1f} s" if isinstance(duration, (int, float)) else "",
        "failed": bool(pm.get("exception")),
    }


def _has_title(nb) -> bool:
    """Whether the notebook opens with its own '# Title' (then the page adds no second h1)."""
    return any(c.cell_type == "markdown" and c.source.lstrip().startswith("# ") for c in nb.cells[:2])


def _neighbours(chapters: list[Chapter], i: int) -> tuple[Chapter | None, Chapter | None]:
    return (chapters[i - 1] if i > 0 else None, chapters[i + 1] if i + 1 < len(chapters) else None)


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def lab_css() -> str:
    """nbconvert's JupyterLab stylesheet (index.css + the light theme), from its installed lab template."""
    from jupyter_core.paths import jupyter_path

    for folder in jupyter_path("nbconvert", "templates", "lab", "static"):
        base = Path(folder)
        if (base / "index.css").is_file() and (base / "theme-light.css").is_file():
            return (base / "index.css").read_text(encoding="utf-8") + "\n" + \
                (base / "theme-light.css").read_text(encoding="utf-8")
    raise SSUIError("HTML book: nbconvert's lab template stylesheet (static/index.css) not found; "
                    "reinstall nbconvert (scripts/setup_env.sh)")


def number_figures(nb, chapter_id: str) -> int:
    """Number the chapter's figures (outputs that ``plots.savefig`` marked with ``ssui_figure``) and
    put a caption under each: "Figure 05.2. <caption>". Returns how many there are."""
    import html as _html

    import nbformat

    k = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            outputs.append(out)
            fig = (out.get("metadata") or {}).get("ssui_figure")
            if not fig:
                continue
            k += 1
            caption = _html.escape(str(fig.get("caption") or fig.get("name") or ""))
            outputs.append(nbformat.v4.new_output("display_data", data={"text/html": (
                f'<p class="ssui-figcaption" id="figure-{chapter_id}-{k}">'
                f'<strong>Figure {chapter_id}.{k}.</strong> {caption}</p>')}))
        cell.outputs = outputs
    return k


def add_solutions(nb):
    """A teacher's copy of an executed chapter: after each cell that runs ``check("NN.M", …)``, a
    Markdown cell with that exercise's reference solution (its source in ``book/exercises.py``)."""
    import nbformat

    from ssui_lib.book.exercises import EXERCISES, solution_source

    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type != "code":
            continue
        for eid in re.findall(r"""\bcheck\(\s*["']([0-9]{2}\.[0-9]+)["']""", cell.source):
            if eid in EXERCISES:
                cells.append(nbformat.v4.new_markdown_cell(
                    f"**Reference solution {eid} (teacher's copy).**\n\n```python\n{solution_source(eid)}```"))
    nb.cells = cells
    return nb


def _render_book(chapters: list[Chapter], site: Path, *, title: str, profile: str, js_urls: dict[str, str],
                 with_solutions: bool = False) -> None:
    """Write index.html and one page per chapter into ``site`` (a fresh folder)."""
    from markupsafe import Markup

    env = _jinja_env()
    css = f"{STATIC}/book.css"
    _write(site / STATIC / "book.css", _template_text("book.css"))
    ran = {c.id: c.notebook.is_file() for c in chapters}
    common = {"title": title, "profile": profile, "chapters": chapters, "ran": ran}

    def sidebar(current: str | None) -> Markup:
        return Markup(env.get_template("sidebar.html.j2").render(current=current, **common))

    def pager(prev: Chapter | None, nxt: Chapter | None) -> Markup:
        return Markup(env.get_template("pager.html.j2").render(prev=prev, next=nxt))

    shell = env.get_template("shell.html.j2")
    _write(site / "index.html", shell.render(
        page_title=title, css=css, sidebar=sidebar(None), pager=pager(None, chapters[0]),
        body=Markup(env.get_template("index_body.html.j2").render(**common)),
    ))

    _write(site / STATIC / "search.js", _template_text("search.js"))
    _write(site / STATIC / "lab.css", lab_css())
    records: list[dict[str, str]] = []
    exporter = None
    for i, ch in enumerate(chapters):
        prev, nxt = _neighbours(chapters, i)
        page_title = f"{ch.id} {ch.title} · {title}"
        if not ran[ch.id]:
            head = env.get_template("head.html.j2").render(chapter=ch, profile=profile, ran_at="", duration="",
                                                            failed=False, show_title=True)
            body = Markup(head + env.get_template("not_run_body.html.j2").render(chapter=ch, profile=profile))
            _write(site / ch.href, shell.render(page_title=page_title, css=css, sidebar=sidebar(ch.id),
                                                pager=pager(prev, nxt), body=body))
            records.append({"id": ch.id, "title": ch.title, "href": ch.href, "text": "not run yet"})
            continue
        nb = _read_notebook(ch.notebook)
        number_figures(nb, ch.id)
        if with_solutions:
            nb = add_solutions(nb)
        records.append({"id": ch.id, "title": ch.title, "href": ch.href, "text": page_text(nb)})
        if exporter is None:  # building the exporter costs ~0.5 s; only when a notebook exists
            exporter = _html_exporter(js_urls)
        head = env.get_template("head.html.j2").render(chapter=ch, profile=profile, show_title=not _has_title(nb),
                                                        **_run_info(nb))
        resources = {
            "metadata": {"name": page_title},
            "ssui": {
                "css": css,
                "sidebar": sidebar(ch.id),
                "pager": pager(prev, nxt),
                "head": Markup(head),
                "lab_css": f"{STATIC}/lab.css",
                "widgets_assets": f"{STATIC}/html-manager/",
                "widgets_cdn": WIDGETS_LOCAL_CDN,
            },
        }
        try:
            html, _ = exporter.from_notebook_node(nb, resources=resources)
        except Exception as e:  # nbconvert/jinja errors on malformed cells
            raise SSUIError(f"{ch.notebook}: could not render to HTML ({type(e).__name__}: {e})") from None
        _write(site / ch.href, html)
    _write(site / STATIC / "search-index.js", index_script(records))


def build_html(chapters: list[dict], out_dir: Path, *, title: str, profile: str,
               book_js_dir: Path | None = None, with_solutions: bool = False) -> Path:
    """Build the offline HTML book into ``out_dir`` and return the path of its ``index.html``.

    ``chapters``: dicts with ``id``, ``title``, ``notebook`` (an executed .ipynb; a missing one
    becomes a "not run yet" page) and ``reproduces``, in reading order. ``book_js_dir`` overrides
    the folder holding ``node_modules`` (default ``ssui_lib/book/js``). The new book replaces
    ``out_dir`` only once it is complete and passes the offline check. ``with_solutions`` makes a
    teacher's copy: each exercise check is followed by its reference solution.
    """
    chs = parse_chapters(chapters)
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise SSUIError(f"HTML book: output {out_dir} exists and is not a folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        js_urls = copy_js_assets(tmp / STATIC, book_js_dir)
        _render_book(chs, tmp, title=title, profile=profile, js_urls=js_urls, with_solutions=with_solutions)
        check_offline(tmp)
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / "index.html"


def _swap_into_place(new: Path, target: Path) -> None:
    """Replace ``target`` by ``new`` with two renames; the old book is deleted afterwards."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        target.rename(old)
    try:
        new.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)  # put the previous book back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
