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


@dataclass(frozen=True)
class Chapter:
    id: str
    title: str
    notebook: Path
    reproduces: str

    @property
    def href(self) -> str:
        return f"{self.id}.html"


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
        out.append(Chapter(cid, str(c["title"]), Path(c["notebook"]), str(c.get("reproduces") or "")))
    return out


# ----------------------------------------------------------------------------- page shell

BOOK_CSS = """\
:root { --ssui-sidebar: 17rem; --ssui-accent: #1a5fb4; --ssui-muted: #5e6470; }
body.ssui-page { margin: 0; padding: 0 0 0 var(--ssui-sidebar); overflow: visible;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.ssui-sidebar { position: fixed; top: 0; left: 0; bottom: 0; width: var(--ssui-sidebar);
  box-sizing: border-box; overflow-y: auto; padding: 1.2rem 1rem; background: #f6f7f9;
  border-right: 1px solid #dde1e6; font-size: 14px; line-height: 1.4; }
.ssui-sidebar .ssui-home { display: block; font-weight: 700; font-size: 16px; color: #111;
  text-decoration: none; margin-bottom: .2rem; }
.ssui-sidebar .ssui-profile { color: var(--ssui-muted); font-size: 12px; margin-bottom: 1rem; }
.ssui-sidebar ol { list-style: none; margin: 0; padding: 0; }
.ssui-sidebar li a { display: block; padding: .35rem .5rem; border-radius: 4px; color: #222;
  text-decoration: none; }
.ssui-sidebar li a:hover { background: #e8ebef; }
.ssui-sidebar li.ssui-not-run a { color: var(--ssui-muted); font-style: italic; }
.ssui-sidebar li.ssui-current a { background: var(--ssui-accent); color: #fff; font-weight: 600; }
.ssui-num { display: inline-block; min-width: 1.8em; font-variant-numeric: tabular-nums; }
main.ssui-main { max-width: 62rem; margin: 0 auto; padding: 1.5rem 2rem 3rem; box-sizing: border-box; }
.ssui-chapter-head { border-bottom: 1px solid #dde1e6; margin-bottom: 1rem; padding-bottom: .6rem;
  color: var(--ssui-muted); font-size: 13px; }
.ssui-chapter-head h1 { color: #111; font-size: 1.6rem; margin: 0 0 .3rem; }
.ssui-banner { border-left: 4px solid #c01c28; background: #fdecee; padding: .6rem 1rem; margin: 1rem 0; }
.ssui-banner.ssui-info { border-color: var(--ssui-accent); background: #eaf1fb; }
.ssui-pager { display: flex; justify-content: space-between; gap: 1rem; margin-top: 2.5rem;
  padding-top: 1rem; border-top: 1px solid #dde1e6; }
.ssui-pager a { color: var(--ssui-accent); text-decoration: none; max-width: 48%; }
.ssui-pager a[rel="next"] { margin-left: auto; text-align: right; }
.ssui-pager small { display: block; color: var(--ssui-muted); }
table.ssui-toc { border-collapse: collapse; width: 100%; margin-top: 1rem; }
table.ssui-toc th, table.ssui-toc td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid #dde1e6;
  vertical-align: top; }
table.ssui-toc a { color: var(--ssui-accent); text-decoration: none; }
table.ssui-toc a:hover { text-decoration: underline; }
table.ssui-toc th { font-size: 13px; color: var(--ssui-muted); }
@media (max-width: 800px) { body.ssui-page { padding-left: 0; }
  .ssui-sidebar { position: static; width: auto; border-right: 0; border-bottom: 1px solid #dde1e6; } }
"""

# Pieces shared by every page; rendered with Jinja's autoescaping.
NAV_TEMPLATES = {
    "sidebar.html.j2": """\
<nav class="ssui-sidebar" aria-label="Table of contents">
<a class="ssui-home" href="index.html">{{ title }}</a>
<div class="ssui-profile">profile: {{ profile }}</div>
<ol>
{%- for c in chapters %}
<li{% if c.id == current or not ran[c.id] %} class="{{ 'ssui-current' if c.id == current }}{{ ' ssui-not-run' if not ran[c.id] }}"{% endif %}>
<a href="{{ c.href }}"{% if c.id == current %} aria-current="page"{% endif %}>
<span class="ssui-num">{{ c.id }}</span> {{ c.title }}</a></li>
{%- endfor %}
</ol>
</nav>
""",
    "pager.html.j2": """\
<nav class="ssui-pager" aria-label="Previous and next chapter">
{%- if prev %}
<a rel="prev" href="{{ prev.href }}"><small>&larr; previous</small>{{ prev.title }}</a>
{%- endif %}
{%- if next %}
<a rel="next" href="{{ next.href }}"><small>next &rarr;</small>{{ next.title }}</a>
{%- endif %}
</nav>
""",
    "head.html.j2": """\
<header class="ssui-chapter-head">
{%- if show_title %}
<h1>{{ chapter.id }} &middot; {{ chapter.title }}</h1>
{%- else %}
<div><strong>Chapter {{ chapter.id }}</strong> &middot; {{ chapter.title }}</div>
{%- endif %}
{%- if chapter.reproduces and chapter.reproduces not in ('-', '–') %}
<div>Reproduces: {{ chapter.reproduces }}</div>
{%- endif %}
<div>profile {{ profile }}{% if ran_at %} &middot; executed {{ ran_at }}{% endif %}{% if duration %} in {{ duration }}{% endif %}</div>
</header>
{%- if failed %}
<div class="ssui-banner">This chapter stopped with an error when it was run; the output below ends at the failing cell.</div>
{%- endif %}
""",
    # The standalone shell: the index page and "not run yet" pages (no notebook to render).
    "shell.html.j2": """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{{ page_title }}</title>
<link rel="stylesheet" href="{{ css }}">
</head>
<body class="ssui-page">
{{ sidebar }}
<main class="ssui-main">
{{ body }}
{{ pager }}
</main>
</body>
</html>
""",
    "index_body.html.j2": """\
<h1>{{ title }}</h1>
<p>Executed notebooks of the <strong>{{ profile }}</strong> profile, rendered for reading offline.</p>
<table class="ssui-toc">
<thead><tr><th>Chapter</th><th>Reproduces</th><th>Status</th></tr></thead>
<tbody>
{%- for c in chapters %}
<tr><td><a href="{{ c.href }}"><span class="ssui-num">{{ c.id }}</span> {{ c.title }}</a></td>
<td>{{ c.reproduces or '–' }}</td><td>{{ 'executed' if ran[c.id] else 'not run yet' }}</td></tr>
{%- endfor %}
</tbody>
</table>
""",
    "not_run_body.html.j2": """\
<div class="ssui-banner ssui-info">This chapter has <strong>not run yet</strong> in the {{ profile }} profile
(no executed notebook at <code>{{ chapter.notebook }}</code>).
Run it with <code>ssui book run --profile {{ profile }} --chapters {{ chapter.id }}</code>, then rebuild.</div>
""",
}


def _jinja_env():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.DictLoader(NAV_TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )


# The nbconvert template for a chapter page: the stock `lab` template with local JavaScript,
# MathJax 3 instead of the CDN MathJax 2 block, no mermaid loader (it imports from a CDN) and
# the book's sidebar, chapter header and pager around the notebook.
CHAPTER_TEMPLATE = """\
{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}
<script>window.__jupyter_widgets_assets_path__ = "{{ resources.ssui.widgets_assets }}";</script>
<script src="{{ resources.require_js_url }}" data-jupyter-widgets-cdn="{{ resources.ssui.widgets_cdn }}"></script>
{%- endblock html_head_js_requirejs -%}
{%- block extra_css -%}
<link rel="stylesheet" href="{{ resources.ssui.css }}">
{%- endblock extra_css -%}
{%- block html_head_js_mathjax -%}
<script>
(function () {
  // ipywidgets typesets widget labels through the MathJax 2 API (MathJax.Hub.Queue), which
  // MathJax 3 does not have: a small Hub that forwards to typesetPromise (queued until ready).
  var pending = [];
  function hub() {
    return {Queue: function (job) {
      var el = Array.isArray(job) ? job[2] : undefined;
      if (window.MathJax && window.MathJax.typesetPromise) {
        window.MathJax.typesetPromise(el ? [el] : undefined).catch(function () {});
      } else {
        pending.push(el);
      }
    }};
  }
  window.MathJax = {
    tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],
          processEscapes: true, processEnvironments: true, tags: 'ams'},
    options: {ignoreHtmlClass: 'jp-CodeCell', processHtmlClass: 'jp-RenderedMarkdown|jp-RenderedLatex|jupyter-widgets'},
    svg: {fontCache: 'global'},
    startup: {ready: function () {
      window.MathJax.startup.defaultReady();
      window.MathJax.Hub = hub();
      window.MathJax.startup.promise.then(function () {
        pending.forEach(function (el) { window.MathJax.Hub.Queue(['Typeset', null, el]); });
        pending = [];
      });
    }}
  };
  window.MathJax.Hub = hub();
}());
</script>
<script src="{{ resources.mathjax_url }}" defer></script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block body_header -%}
<body class="jp-Notebook ssui-page" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.ssui.sidebar }}
<main class="ssui-main">
{{ resources.ssui.head }}
{%- endblock body_header -%}
{%- block body_footer -%}
{{ resources.ssui.pager }}
</main>
</body>
{%- endblock body_footer -%}
"""


def _html_exporter(js_urls: dict[str, str]):
    """nbconvert's HTMLExporter (lab template) with every script URL pointing into _static/."""
    import jinja2
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"ssui_chapter.html.j2": CHAPTER_TEMPLATE})],
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


def _render_book(chapters: list[Chapter], site: Path, *, title: str, profile: str, js_urls: dict[str, str]) -> None:
    """Write index.html and one page per chapter into ``site`` (a fresh folder)."""
    from markupsafe import Markup

    env = _jinja_env()
    css = f"{STATIC}/book.css"
    _write(site / STATIC / "book.css", BOOK_CSS)
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
            continue
        nb = _read_notebook(ch.notebook)
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
                "widgets_assets": f"{STATIC}/html-manager/",
                "widgets_cdn": WIDGETS_LOCAL_CDN,
            },
        }
        try:
            html, _ = exporter.from_notebook_node(nb, resources=resources)
        except Exception as e:  # nbconvert/jinja errors on malformed cells
            raise SSUIError(f"{ch.notebook}: could not render to HTML ({type(e).__name__}: {e})") from None
        _write(site / ch.href, html)


def build_html(chapters: list[dict], out_dir: Path, *, title: str, profile: str,
               book_js_dir: Path | None = None) -> Path:
    """Build the offline HTML book into ``out_dir`` and return the path of its ``index.html``.

    ``chapters``: dicts with ``id``, ``title``, ``notebook`` (an executed .ipynb; a missing one
    becomes a "not run yet" page) and ``reproduces``, in reading order. ``book_js_dir`` overrides
    the folder holding ``node_modules`` (default ``ssui_lib/book/js``). The new book replaces
    ``out_dir`` only once it is complete and passes the offline check.
    """
    chs = parse_chapters(chapters)
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise SSUIError(f"HTML book: output {out_dir} exists and is not a folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        js_urls = copy_js_assets(tmp / STATIC, book_js_dir)
        _render_book(chs, tmp, title=title, profile=profile, js_urls=js_urls)
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
