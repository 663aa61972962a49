"""Offline, client-side search over the HTML book.

Every page's text (Markdown cells, the text outputs of code cells, figure captions) goes into one
``_static/search-index.js`` that sets ``window.SSUI_SEARCH_INDEX``; ``templates/search.js`` filters
it as the reader types and lists the pages that contain every word, with a snippet. It is a
script, not a JSON file fetched at run time, because browsers refuse ``fetch`` of ``file://``
URLs and the book must work opened straight from disk. A plain substring match over a few hundred
kilobytes is instant, so no search library (lunr and the like) is needed.
"""
from __future__ import annotations

import json
import re
from typing import Any

MAX_CHARS_PER_PAGE = 60_000  # long tables and logs add little to search and a lot to every page load

_MD_NOISE = re.compile(r"(<[^>]+>|[#*_`>|]+|\$+|\\\(|\\\))")


def _plain(text: str) -> str:
    return " ".join(_MD_NOISE.sub(" ", text).split())


def page_text(nb) -> str:
    """The searchable text of an executed notebook: Markdown, text outputs and figure captions."""
    parts: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(_plain(cell.source))
            continue
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(_plain(out.get("text", "")))
            data = out.get("data") or {}
            if "text/markdown" in data:
                parts.append(_plain(data["text/markdown"]))
            elif "text/plain" in data and "image/png" not in data and not any(k.startswith("application/vnd.jupyter.widget")
                                                                           for k in data):
                parts.append(_plain(data["text/plain"]))
            fig = (out.get("metadata") or {}).get("ssui_figure")
            if fig:
                parts.append(_plain(str(fig.get("caption", ""))))
    return " ".join(p for p in parts if p)[:MAX_CHARS_PER_PAGE]


def index_script(records: list[dict[str, Any]]) -> str:
    """The JavaScript file holding the index (``</`` escaped so no text can close the script)."""
    body = json.dumps(records, ensure_ascii=False).replace("</", "<\\/")
    return f"window.SSUI_SEARCH_INDEX = {body};\n"
