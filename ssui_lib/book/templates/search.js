// Client-side search over the book (index: _static/search-index.js, built by ssui_lib/book/search.py).
(function () {
  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"}[c];
    });
  }
  function snippet(text, term) {
    var i = text.toLowerCase().indexOf(term);
    var start = Math.max(0, i - 60), end = Math.min(text.length, i + term.length + 80);
    var s = escapeHtml(text.slice(start, i)) + "<mark>" + escapeHtml(text.slice(i, i + term.length)) + "</mark>" +
            escapeHtml(text.slice(i + term.length, end));
    return (start > 0 ? "… " : "") + s + (end < text.length ? " …" : "");
  }
  function search(query) {
    var terms = query.toLowerCase().split(/\s+/).filter(function (t) { return t.length > 1; });
    if (!terms.length) { return []; }
    return (window.SSUI_SEARCH_INDEX || []).filter(function (page) {
      var hay = (page.title + " " + page.text).toLowerCase();
      return terms.every(function (t) { return hay.indexOf(t) >= 0; });
    }).map(function (page) {
      var text = page.title + " — " + page.text;
      return {page: page, snippet: snippet(text, terms[0])};
    });
  }
  function setup() {
    var input = document.getElementById("ssui-search");
    var out = document.getElementById("ssui-search-results");
    if (!input || !out) { return; }
    var timer = null;
    function run() {
      var hits = search(input.value);
      if (!input.value.trim()) { out.innerHTML = ""; return; }
      out.innerHTML = "<div class=\"ssui-search-count\">" + hits.length + (hits.length === 1 ? " page" : " pages") +
        "</div>" + hits.map(function (h) {
          return "<a class=\"ssui-search-hit\" href=\"" + h.page.href + "\"><strong>" + escapeHtml(h.page.id) +
                 " " + escapeHtml(h.page.title) + "</strong><br><small>" + h.snippet + "</small></a>";
        }).join("");
    }
    input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(run, 80); });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter") { var first = out.querySelector("a"); if (first) { window.location.href = first.href; } }
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", setup); } else { setup(); }
  window.ssuiSearch = search;
}());
