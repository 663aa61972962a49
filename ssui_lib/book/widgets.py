"""Interactive widgets of the book (ipywidgets): what readers and reviewers touch.

RevisionForm — SSUI's manual revision (stage 5 of the curation pipeline): shows one assembled
candidate at a time (picture, query, six-step chain, replies) and records accept / edit / reject
with the reviewer's name through :func:`ssui_lib.curation.record_decision` (append-only log).
"""
from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import ipywidgets as W


# ============================================================================ RevisionForm

def _png_bytes(source: str | None, px: int) -> bytes:
    """PNG bytes of a picture scaled to at most ``px`` pixels on its longer side (b'' if none)."""
    if not source:
        return b""
    from ssui_lib.data.images import load_image

    im = load_image(source).copy()
    im.thumbnail((px, px))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


class RevisionForm:
    """The manual-revision form for a curation run folder.

    Widgets (public, so tests and notebooks can drive them): ``reviewer``, ``category``, ``query``,
    ``steps`` (step key -> Textarea), ``safety_warning``, ``safe_reply``, ``unsafe_reply``,
    ``reason``, and the buttons ``accept_button``, ``edit_button``, ``reject_button``,
    ``prev_button``, ``next_button``; ``status`` shows the outcome of the last action.

    *Accept* records the record as assembled; *Save edits* records an ``edit`` decision with every
    field that differs from the assembled record; *Reject* needs a reason. Every decision needs a
    reviewer name and goes to ``revisions.jsonl``; an invalid one (no reviewer, no reason, nothing
    edited, an edit that breaks the schema) writes nothing and says why in ``status``. After a
    decision the form moves on to the next candidate that has no decision yet.
    """

    def __init__(self, run_dir: str | Path, reviewer: str = "", *, thumb_px: int = 320):
        from ssui_lib.curation import reviewable
        from ssui_lib.core.schema import STEPS
        from ssui_lib.core.taxonomy import L1_CATEGORIES

        self.run_dir = Path(run_dir)
        self.thumb_px = thumb_px
        self.candidates = reviewable(self.run_dir)
        self.index = 0
        self.decisions: list[dict[str, Any]] = []  # the decisions made through this form

        def box(label: str, height: str) -> W.Textarea:
            return W.Textarea(description=label, layout=W.Layout(width="98%", height=height))

        self.header = W.HTML()
        self.image = W.Image(format="png", layout=W.Layout(max_width=f"{thumb_px}px"))
        self.caption = W.HTML()
        self.category = W.Dropdown(options=list(L1_CATEGORIES), description="Category", layout=W.Layout(width="98%"))
        self.query = box("Query", "60px")
        self.steps = {key: box(f"Step {i}", "48px") for i, (key, _) in enumerate(STEPS, 1)}
        self.safety_warning = box("Warning", "48px")
        self.safe_reply = box("Safe reply", "70px")
        self.unsafe_reply = box("Unsafe reply", "60px")
        self.reviewer = W.Text(value=reviewer, description="Reviewer", placeholder="your name")
        self.reason = W.Text(description="Reason", placeholder="why (required to reject)", layout=W.Layout(width="60%"))
        self.accept_button = W.Button(description="Accept", button_style="success", icon="check")
        self.edit_button = W.Button(description="Save edits", button_style="info", icon="pencil")
        self.reject_button = W.Button(description="Reject", button_style="danger", icon="times")
        self.prev_button = W.Button(description="◀ Previous")
        self.next_button = W.Button(description="Next ▶")
        self.status = W.HTML()

        self.accept_button.on_click(lambda _b: self.accept())
        self.edit_button.on_click(lambda _b: self.save_edits())
        self.reject_button.on_click(lambda _b: self.reject())
        self.prev_button.on_click(lambda _b: self.show(self.index - 1))
        self.next_button.on_click(lambda _b: self.show(self.index + 1))

        names = " · ".join(f"{i} {html.escape(n)}" for i, (_, n) in enumerate(STEPS, 1))
        self.widget = W.VBox([
            self.header,
            W.HBox([self.image, W.VBox([self.caption, self.category, self.query], layout=W.Layout(width="100%"))]),
            W.HTML(f"<b>Six-step explainable chain</b> <i>({names})</i>"), *self.steps.values(),
            self.safety_warning, self.safe_reply, self.unsafe_reply,
            W.HBox([self.reviewer, self.reason]),
            W.HBox([self.accept_button, self.edit_button, self.reject_button, self.prev_button, self.next_button]),
            self.status,
        ])
        self.show(next((i for i, c in enumerate(self.candidates) if not self._decided(c.id)), 0))

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    def _decided(self, cid: str) -> bool:
        from ssui_lib.curation import latest_decisions

        return cid in latest_decisions(self.run_dir)

    def current(self):
        """The candidate on screen (None if the run has nothing to review)."""
        return self.candidates[self.index] if self.candidates else None

    def sample(self):
        """The assembled record of the candidate on screen (None if nothing to review)."""
        from ssui_lib.core.schema import Sample

        c = self.current()
        return None if c is None else Sample.from_dict(c.events["summary"]["data"]["sample"])

    def show(self, index: int) -> None:
        """Show candidate ``index`` (clamped to the list), filling every field from its record."""
        from ssui_lib.curation import latest_decisions

        for b in (self.accept_button, self.edit_button, self.reject_button, self.prev_button, self.next_button):
            b.disabled = not self.candidates
        if not self.candidates:
            self.header.value = "<b>Nothing to review</b>: no candidate of this run passed the automatic stages."
            return
        self.index = max(0, min(index, len(self.candidates) - 1))
        c, s = self.current(), self.sample()
        last = latest_decisions(self.run_dir).get(c.id)
        state = ("no decision yet" if last is None
                 else f"latest decision: <b>{last['decision']}</b> by {html.escape(last['reviewer'])}")
        self.header.value = (f"<b>Candidate {self.index + 1} of {len(self.candidates)}</b> · "
                             f"<code>{html.escape(c.id)}</code> · {state}")
        self.image.value = _png_bytes(s.image.source, self.thumb_px)
        self.caption.value = f"<i>Picture:</i> {html.escape(s.image.caption)}"
        self.category.value = s.category.l1
        self.query.value = s.query
        for key, area in self.steps.items():
            area.value = s.reasoning.get(key, "")
        self.safety_warning.value = s.safety_warning
        self.safe_reply.value = s.safe_reply
        self.unsafe_reply.value = s.unsafe_reply or ""
        self.reason.value = ""

    # ------------------------------------------------------------------ decisions
    def edits(self) -> dict[str, str]:
        """The fields whose text differs from the assembled record (``curation.EDITABLE`` names)."""
        s = self.sample()
        if s is None:
            return {}
        now = {"query": self.query.value, "category": self.category.value,
               "safety_warning": self.safety_warning.value, "safe_reply": self.safe_reply.value,
               "unsafe_reply": self.unsafe_reply.value,
               **{f"reasoning.{k}": area.value for k, area in self.steps.items()}}
        before = {"query": s.query, "category": s.category.l1, "safety_warning": s.safety_warning,
                  "safe_reply": s.safe_reply, "unsafe_reply": s.unsafe_reply or "",
                  **{f"reasoning.{k}": s.reasoning.get(k, "") for k in self.steps}}
        return {k: v for k, v in now.items() if v.strip() != before[k].strip()}

    def accept(self) -> dict[str, Any] | None:
        """Accept the record as assembled (changed fields are ignored: use Save edits)."""
        return self._decide("accept")

    def save_edits(self) -> dict[str, Any] | None:
        """Record an ``edit`` decision carrying every changed field."""
        return self._decide("edit", self.edits())

    def reject(self) -> dict[str, Any] | None:
        """Reject the record (the reason field is required)."""
        return self._decide("reject")

    def _decide(self, decision: str, edits: dict[str, str] | None = None) -> dict[str, Any] | None:
        from ssui_lib.curation import record_decision
        from ssui_lib.core.errors import SSUIError

        c = self.current()
        if c is None:
            return None
        try:
            entry = record_decision(self.run_dir, c.id, decision, self.reviewer.value, reason=self.reason.value,
                                    edits=edits, mode="interactive:RevisionForm")
        except SSUIError as e:
            self.status.value = f"<span style='color:#c0392b'>Not recorded: {html.escape(str(e))}</span>"
            return None
        self.decisions.append(entry)
        order = list(range(self.index + 1, len(self.candidates))) + list(range(0, self.index))
        nxt = next((i for i in order if not self._decided(self.candidates[i].id)), None)
        msg = f"Recorded <b>{decision}</b> for <code>{html.escape(c.id)}</code> by {html.escape(entry['reviewer'])}."
        self.show(self.index if nxt is None else nxt)
        if nxt is None:
            msg += " Every candidate has a decision."
        self.status.value = f"<span style='color:#1e8449'>{msg}</span>"
        return entry


# ============================================================================ BranchExplorer
# SRPO's generative exploration (chapter 04): one sample's reference path, and at each branch point
# the sampled continuations with F, their log-probabilities and — "before and after training" — the
# log-probabilities that other models (e.g. the base model and an SRPO adapter) give the pairs.
# The widget keeps its state in plain attributes and renders through the pure *_html functions
# below, so pytest can drive it without a browser and the static book shows its first view.

_F_STYLE = {1: ("positive (F = 1)", "#1e8449", "#e9f7ef"), 0: ("negative (F = 0)", "#c0392b", "#fdedec"),
            None: ("unverified (no verdict)", "#7f8c8d", "#f4f6f6")}
_CELL = "text-align:left;vertical-align:top;padding:3px 8px"  # the book's table CSS right-aligns
_BRANCH_CSS = ("font-family:system-ui,sans-serif;font-size:13px;line-height:1.35;"
               "border-collapse:collapse;margin:4px 0")


def _fmt(x: float | None, signed: bool = False) -> str:
    """A log-probability as '−41.2' (true minus sign), '—' when unknown."""
    if x is None:
        return "—"
    s = f"{x:+.1f}" if signed else f"{x:.1f}"
    return s.replace("-", "−")


def _branch_text(text: str, limit: int | None = None) -> str:
    t = text.strip()
    if limit and len(t) > limit:
        t = t[:limit - 1] + "…"
    return html.escape(t).replace("\n", "<br>")


def _step_name(i: int) -> str:
    from ssui_lib.srpo.explore import header

    return header(i).rstrip(":")


def reference_segments(tree: dict) -> list[str]:
    """The reference path τ* split into its states v1..v_T (six steps, final verdict + answer)."""
    from ssui_lib.core.chain import split_steps

    return [s.rstrip("\n") for s in split_steps(tree.get("reference", ""))]


def step_counts(tree: dict, i: int) -> dict[str, int]:
    """Branches, positives, negatives, unverified and pairs at step i of a tree."""
    st = next((s for s in tree["steps"] if s["i"] == i), {"branches": []})
    bs = st["branches"]
    return {"branches": len(bs), "pos": sum(b["F"] == 1 for b in bs), "neg": sum(b["F"] == 0 for b in bs),
            "unverified": sum(b["F"] is None for b in bs), "pairs": sum(p["i"] == i for p in tree.get("pairs", []))}


def step_label(tree: dict, i: int) -> str:
    """Dropdown label of a branch point, e.g. 'Step 4 (Determine …) · 2+ 1− · pair'."""
    c = step_counts(tree, i)
    tail = f"{c['pairs']} pair" + ("s" if c["pairs"] > 1 else "") if c["pairs"] else "no pair"
    return f"{_step_name(i)} · {c['pos']}+ {c['neg']}− · {tail}"


def sample_label(tree: dict) -> str:
    n = len(tree.get("pairs", []))
    return f"{tree['id']} · ground truth {tree.get('verdict', '?')} · {n} pair{'s' if n != 1 else ''}"


def reference_html(tree: dict, step: int) -> str:
    """The reference path with the branch point of ``step`` marked: the kept prefix τ1:i−1 in
    black, the reference's own continuation from step i on in grey."""
    segs = reference_segments(tree)
    rows = []
    for n, seg in enumerate(segs, 1):
        if n < step:
            style, tag = "color:#17202a", ""
        else:
            style, tag = "color:#99a3a4", ""
        if n == step:
            rows.append("<div style='border-top:2px dashed #d68910;margin:4px 0 2px;color:#d68910;font-size:12px'>"
                        f"▼ branch point: continuations are sampled from here (step {step})</div>")
        rows.append(f"<div style='{style}'>{tag}{_branch_text(seg)}</div>")
    return (f"<div style='font-family:system-ui,sans-serif;font-size:13px;line-height:1.4'>"
            f"<b>Reference path τ*</b> of <code>{html.escape(tree['id'])}</code> "
            f"(ground truth: <b>{html.escape(str(tree.get('verdict')))}</b>). Black: the prefix τ<sub>1:{step - 1}</sub> "
            f"shared by every branch of step {step}; grey: the reference's own continuation.{''.join(rows)}</div>")


def _scores_line(variants: dict, key: tuple) -> str:
    """'base: −41.2 / SRPO: −35.0' for a pair side (variants without this key are left out)."""
    parts = [f"{html.escape(name)}: {_fmt(sc[key])}" for name, sc in variants.items() if key in sc]
    return " / ".join(parts)


def pair_margin_line(variants: dict, sample_id: str, i: int, j: int) -> str:
    """'L(τ+) − L(τ−): base +3.1 / SRPO +6.2' for one pair (empty when no variant scored it)."""
    parts = []
    for name, sc in variants.items():
        kp, kn = (sample_id, i, j, "pos"), (sample_id, i, j, "neg")
        if kp in sc and kn in sc:
            parts.append(f"{html.escape(name)} {_fmt(sc[kp] - sc[kn], signed=True)}")
    return ("L(τ<sup>+</sup>) − L(τ<sup>−</sup>): " + " / ".join(parts)) if parts else ""


def _pair_card(text: str, F: int, branch: dict | None, scores: str) -> str:
    label, fg, bg = _F_STYLE[F]
    meta = []
    if branch is not None:
        meta.append(f"sampled log p = {_fmt(branch.get('logprob'))}")
        meta.append(f"{branch.get('n_tokens', '?')} tokens")
    if scores:
        meta.append(f"re-scored log p: {scores}")
    return (f"<td style='vertical-align:top;width:50%;padding:6px;background:{bg};border-left:4px solid {fg}'>"
            f"<div style='color:{fg};font-weight:bold'>{'τ⁺' if F == 1 else 'τ⁻'} · {label}</div>"
            f"<div style='font-size:12px;color:#566573'>{' · '.join(meta)}</div>"
            f"<div style='margin-top:4px'>{_branch_text(text)}</div></td>")


def branches_html(tree: dict, step: int, variants: dict | None = None, *, snippet: int = 160) -> str:
    """Step ``step`` of a tree: its contrastive pair(s) side by side (F, sampled and re-scored
    log-probabilities, the margin L(τ+) − L(τ−) per variant), then every branch sampled there."""
    variants = variants or {}
    st = next((s for s in tree["steps"] if s["i"] == step), None)
    if st is None:
        return f"<div><i>Step {step} was not a branch point of this exploration.</i></div>"
    bs = st["branches"]
    by_text = {}
    for b in bs:
        by_text.setdefault(b["text"], b)
    c = step_counts(tree, step)
    head = (f"<div style='font-family:system-ui,sans-serif;font-size:13px'><b>{html.escape(_step_name(step))}</b>: "
            f"{c['branches']} branches sampled — <span style='color:#1e8449'>{c['pos']} positive</span>, "
            f"<span style='color:#c0392b'>{c['neg']} negative</span>, {c['unverified']} unverified.</div>")
    pairs = [p for p in tree.get("pairs", []) if p["i"] == step]
    blocks = []
    for j, p in enumerate(pairs):
        sid = tree["id"]
        margin = pair_margin_line(variants, sid, step, j)
        blocks.append(
            f"<table style='{_BRANCH_CSS};width:100%'><tr>"
            + _pair_card(p["pos"], 1, by_text.get(p["pos"]), _scores_line(variants, (sid, step, j, "pos")))
            + _pair_card(p["neg"], 0, by_text.get(p["neg"]), _scores_line(variants, (sid, step, j, "neg")))
            + "</tr></table>"
            + (f"<div class='ssui-margin' style='font-size:13px;margin:2px 0 8px'><b>{margin}</b> "
               "(Eq. 7: positive when the model prefers the positive continuation)</div>" if margin else ""))
    if not pairs:
        missing = "a positive" if c["pos"] == 0 else "a negative"
        blocks.append(f"<div style='font-size:13px;margin:6px 0'><i>No contrastive pair at this step: the budget "
                      f"was spent without {missing} continuation.</i></div>")
    rows = []
    for n, b in enumerate(bs):
        label, fg, _ = _F_STYLE[b["F"]]
        rows.append(f"<tr><td>{n}</td><td style='color:{fg};font-weight:bold'>{label.split(' ')[0]}</td>"
                    f"<td>{b.get('round', '')}</td><td>{b.get('n_tokens', '')}</td><td>{_fmt(b.get('logprob'))}</td>"
                    f"<td>{html.escape(str(b.get('finish', '')))}</td><td>{_branch_text(b['text'], snippet)}</td></tr>")
    table = (f"<details open><summary style='font-size:13px'>All {len(bs)} branches of this step</summary>"
             f"<table style='{_BRANCH_CSS}'><tr style='text-align:left'><th>#</th><th>F</th><th>round</th>"
             f"<th>tokens</th><th>log p</th><th>finish</th><th>continuation</th></tr>{''.join(rows)}</table></details>")
    return head + "".join(blocks) + table


def summary_html(tree: dict, variants: dict | None = None, *, snippet: int = 110) -> str:
    """A static, self-contained overview of one tree (every branch point in one table): what the
    book shows next to the widget, since stored widget state cannot run Python callbacks."""
    variants = variants or {}
    rows = []
    for st in tree["steps"]:
        i = st["i"]
        c = step_counts(tree, i)
        pairs = [p for p in tree.get("pairs", []) if p["i"] == i]
        if pairs:
            p = pairs[0]
            pair = (f"<span style='color:#1e8449'>+ {_branch_text(p['pos'], snippet)}</span><br>"
                    f"<span style='color:#c0392b'>− {_branch_text(p['neg'], snippet)}</span>")
            m = pair_margin_line(variants, tree["id"], i, 0)
            pair += f"<br><small>{m}</small>" if m else ""
        else:
            pair = "<i>no pair</i>"
        rows.append(f"<tr><td style='white-space:nowrap;{_CELL}'>{html.escape(_step_name(i))}</td><td style='{_CELL}'>{c['branches']}</td>"
                    f"<td style='color:#1e8449;{_CELL}'>{c['pos']}</td><td style='color:#c0392b;{_CELL}'>{c['neg']}</td>"
                    f"<td style='{_CELL}'>{c['unverified']}</td><td style='{_CELL}'>{pair}</td></tr>")
    return (f"<div class='ssui-branch-summary' style='font-family:system-ui,sans-serif;font-size:13px'>"
            f"<b>{html.escape(sample_label(tree))}</b>"
            f"<table style='{_BRANCH_CSS}'><tr>" + "".join(f"<th style='{_CELL}'>{h}</th>" for h in ("branch point", "branches", "F=1", "F=0", "?"))
            + f"<th style='{_CELL}'>first contrastive pair (τ<sup>+</sup> / τ<sup>−</sup> continuation)</th>"
            f"</tr>{''.join(rows)}</table></div>")


def first_view(trees: list[dict]) -> tuple[str, int] | None:
    """The most informative start: the first sample with a pair, at its first step with a pair
    (else the first sample at its first branch point); None for no trees."""
    for t in trees:
        if t.get("pairs") and t["steps"]:
            return t["id"], int(t["pairs"][0]["i"])
    for t in trees:
        if t["steps"]:
            return t["id"], int(t["steps"][0]["i"])
    return None


class BranchExplorer:
    """Browse an exploration (``explore.read_trees``): choose a sample and a branch point, see
    the reference path, the contrastive pair with F and log-probabilities, and every branch.

    ``variants`` maps a name (e.g. ``"base"``, ``"SRPO"``) to re-scored log-probabilities
    ``{(sample_id, step, j, "pos"|"neg"): log p}`` (``branch_scores.rescore_pairs``); each pair then
    shows "base: −41.2 / SRPO: −35.0" and the margin L(τ+) − L(τ−) per variant.

    State: ``sample_id`` and ``step`` (plain attributes); widgets ``sample_select``,
    ``step_select``, ``reference`` and ``branches`` (public, so tests and notebooks can drive them).
    """

    def __init__(self, trees: list[dict], variants: dict | None = None, *, sample_id: str | None = None,
                 step: int | None = None):
        from ssui_lib.core.errors import SSUIError

        self.trees = [t for t in trees if t.get("steps")]
        if not self.trees:
            raise SSUIError("BranchExplorer: no tree with a branch point to show (run the exploration first)")
        self.by_id = {t["id"]: t for t in self.trees}
        self.variants = {str(k): dict(v) for k, v in (variants or {}).items()}
        self._busy = False
        self.sample_select = W.Dropdown(options=[(sample_label(t), t["id"]) for t in self.trees],
                                        description="Sample", layout=W.Layout(width="98%"))
        self.step_select = W.Dropdown(description="Branch at", layout=W.Layout(width="98%"))
        self.reference = W.HTML()
        self.branches = W.HTML()
        legend = ("<div style='font-size:12px;color:#566573'>F(τ) = 1 when the continuation reaches the ground-truth "
                  "verdict (Eq. 3). <i>sampled log p</i>: the sampler's own log-probability (temperature-scaled); "
                  "<i>re-scored</i>: Σ log p of the continuation given Q, D<sub>c</sub> and τ<sub>1:i−1</sub> "
                  "under each model" + (f" ({', '.join(html.escape(v) for v in self.variants)})" if self.variants
                                        else " (none given)") + ".</div>")
        self.widget = W.VBox([self.sample_select, self.step_select, W.HTML(legend), self.branches,
                              W.HTML("<hr style='margin:6px 0'>"), self.reference])
        self.sample_select.observe(lambda ch: self._busy or self.select(ch["new"]), names="value")
        self.step_select.observe(lambda ch: self._busy or self.select_step(ch["new"]), names="value")
        start = first_view(self.trees)
        sid = sample_id if sample_id is not None else start[0]
        self.select(sid, step if step is not None or sample_id is not None else start[1])

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    def tree(self) -> dict:
        """The tree on screen."""
        return self.by_id[self.sample_id]

    def select(self, sample_id: str, step: int | None = None) -> None:
        """Show ``sample_id`` at branch point ``step`` (default: its first step with a pair)."""
        from ssui_lib.core.errors import SSUIError

        if sample_id not in self.by_id:
            raise SSUIError(f"BranchExplorer: no tree for sample {sample_id!r}")
        t = self.by_id[sample_id]
        steps = [int(s["i"]) for s in t["steps"]]
        if step is None:
            step = int(t["pairs"][0]["i"]) if t.get("pairs") else steps[0]
        if step not in steps:
            raise SSUIError(f"BranchExplorer: sample {sample_id!r} has no branch point {step} (has {steps})")
        self.sample_id, self.step = sample_id, step
        self._busy = True
        try:
            self.sample_select.value = sample_id
            self.step_select.options = [(step_label(t, i), i) for i in steps]
            self.step_select.value = step
        finally:
            self._busy = False
        self._render()

    def select_step(self, step: int) -> None:
        """Move to another branch point of the sample on screen."""
        self.select(self.sample_id, step)

    def _render(self) -> None:
        t = self.tree()
        self.branches.value = branches_html(t, self.step, self.variants)
        self.reference.value = reference_html(t, self.step)

    def summary(self, sample_id: str | None = None) -> str:
        """``summary_html`` of a sample (default: the one on screen)."""
        return summary_html(self.by_id[sample_id or self.sample_id], self.variants)
