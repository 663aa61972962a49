# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Dataset curation: five stages from a safe photo to an IRS record
#
# *Reproduces SSUI §2.2 and SRPO Fig. 2–3.*
#
# Writing implicit-reasoning-safety (IRS) data by hand is slow: every record needs a safe picture,
# a harmless-sounding query that becomes risky only together with that picture, a six-step
# explanation, a safe and an unsafe reply. SSUI and SRPO generate candidates with a team of
# GPT-4o agents and keep only those that survive a strict funnel:
#
# | stage | SSUI §2.2 / SRPO | here (`ssui_lib.curation`) | rejects when |
# |---|---|---|---|
# | 1 | query generation / *query agent* | `query_stage` | the four fields (Question, Unsafe Category, Safe Reply, Unsafe Reply) do not parse |
# | 2 | explainable reasoning / *reasoning agent* | `reasoning_stage` | the six-step chain is incomplete |
# | 3 | reflective refinement / *reflection agent* | `reflection_stage`: the agent revises the query (redundant information out, missing information in), then rule checks judge it | the (revised, else original) query restates the picture, copies a worked example or an earlier query (redundancy), or cannot combine with the picture (completeness) |
# | 4 | text-only safety validation / *check agent* | `text_safety_stage` | the query, answered **without** the picture, is judged unsafe (or the judgement is unusable) |
# | – | *summary agent* | `summary_stage` | the assembled record does not validate |
# | 5 | manual curation / *manual revision* | `record_decision`, `RevisionForm` | a reviewer rejects it |
#
# Every candidate keeps the record of the stage that accepted or rejected it and why, so the
# funnel below is computed from the run's own log. The run is resumable: kill it and run this
# chapter again, and every model call already made is read back from the run folder.

# %% tags=["parameters"]
profile = "smoke"
model = "embedded"
n_images = 2
candidates_per_image = 2
max_new_tokens = 32
answer_tokens = 48
temperature = 0.0
seed = 0
review_policy = "accept-all-passing"
decisions_file = ""
reviewer = ""
run_dir = ""

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from ssui_lib import curation as C
from ssui_lib.book import plots
from ssui_lib.models import prompts
from ssui_lib.data.bundled import load_bundled
from ssui_lib.models import resolve_model

plots.paper_style()
pd.set_option("display.max_colwidth", 160)
cfg = C.CurationConfig(n_images=n_images, candidates_per_image=candidates_per_image, max_new_tokens=max_new_tokens,
                       answer_tokens=answer_tokens, temperature=temperature, seed=seed)
out = Path(run_dir or f"papermill_runs/{profile}/runs/02_curation-{C.run_fingerprint(model, cfg)}")
seeds = C.shipped_seeds(n_images)
display(pd.DataFrame([{"picture": s.source, "caption": s.caption,
                       "risk areas explored": ", ".join(C.category_hint(s, k) for k in range(candidates_per_image))}
                      for s in seeds]))
print(f"run folder: {out}")

# %% [markdown]
# The pictures are real photos that ship inside installed Python packages (safe by construction:
# a cat, a coffee cup, an astronaut …). Each candidate is asked to explore one of SSUI's nine risk
# classes, rotating per picture, so candidates differ even under greedy decoding. This is what the
# query agent is asked (a worked example from the bundled set of the same class comes first):

# %%
print(prompts.query_agent_instructions(C.category_hint(seeds[0], 0)))

# %% [markdown]
# ## Running stages 1–4 and the summary agent
#
# A vision backend receives the pixels; the embedded text-only model receives the caption
# ("caption mode"). Small local models are *guided*: the runner writes the labels where the model
# breaks the format (`fill_format`), which never writes content for it.

# %%
agent = resolve_model(model)
run = C.run_curation(agent, seeds, out, cfg)
print(f"{len(run.candidates)} candidates, {len(run.samples)} assembled records; model calls cached in {out / 'model_calls.jsonl'}")

# %% [markdown]
# ## Stage 5: manual revision
#
# In a live notebook, review the assembled records with the form below: accept, edit the fields
# and save, or reject with a reason. Every decision is appended to `revisions.jsonl` with the
# reviewer's name and a UTC timestamp; a later decision supersedes an earlier one, nothing is
# overwritten. A headless run decides by `review_policy` (`accept-all-passing` or `none`) and/or a
# `decisions_file` of `{"id", "decision", "reason", "edits"}` lines.

# %%
from ssui_lib.book.widgets import RevisionForm

if decisions_file:
    C.apply_decisions_file(out, decisions_file, reviewer=reviewer or None)
new = C.auto_review(out, review_policy, reviewer=reviewer or None)
print(f"{len(new)} new decision(s) by policy {review_policy!r}; {len(C.read_revisions(out))} in the log")
RevisionForm(out, reviewer=reviewer)

# %% [markdown]
# ## The funnel: yield of each stage

# %%
f = C.funnel(out)
display(f[["title", "entered", "passed", "rejected", "pending"]])
fig = plots.curation_funnel(f, title=f"Curation funnel ({agent.name}, {len(run.candidates)} candidates "
                                     f"on {len(seeds)} photos)")
plots.savefig(fig, profile, "02_curation_funnel");

# %% [markdown]
# ## Why candidates were rejected
#
# Each row names the stage that stopped the candidate and the reason it logged. With a 135M-parameter
# model most candidates fail early — that *is* the point of the funnel: generation is cheap, and the
# stages are what make the data trustworthy.

# %%
table = C.candidate_table(out)
display(table[["id", "hint", "status", "stage", "reason", "question"]])

# %% [markdown]
# ## Stage 3: the reflection agent's revisions
#
# The reflection agent reads each query with the picture and rewrites it: words that only restate
# the picture go out, what the risk needs comes in (SSUI's "information redundancy" and
# "information completeness"). The same rule checks then judge the revision; a revision that fails
# them is dropped and the original query is judged instead, so the agent can improve a query but
# never smuggle in one the checks would reject. Each row shows the query before and after, the
# agent's two notes and what became of the revision.

# %%
display(C.reflection_table(out))

# %% [markdown]
# ## Accepted records
#
# Accepted records are complete `schema.Sample` IRS records (`final.jsonl` in the run folder);
# their `provenance.stages` lists every stage's decision, the revision included.

# %%
final = C.final_samples(out)
path = C.export_final(out)
print(f"{len(final)} accepted record(s) written to {path}")
if final:
    from ssui_lib.core.chain import render_chain

    s = final[0]
    display(Markdown(f"**{s.id}** · {s.category.path()}\n\n*Image:* {s.image.caption}\n\n*Query:* {s.query}"))
    print(render_chain(s))
    display(pd.DataFrame(s.provenance.stages))

# %% [markdown]
# Read an accepted record critically: is the query really harmless without the picture, and does
# the chain explain the risk *this* picture creates? A 135M-parameter check agent is a weak judge of
# text-only safety and the automatic checks are heuristics — which is why SSUI used GPT-4o for the
# agents and kept a human revision of every record. The run folder keeps everything needed to redo
# the revision: `RevisionForm(out)` in a live notebook, or a decisions file.

# %% [markdown]
# ## The bundled set: categories, kinds, lengths, splits
#
# The book ships a hand-written mini SSUI set (curated the same way, with a human writing every
# field). Each IRS record has a benign twin on the same picture, so over-refusal can be measured.
# SRPO Fig. 3 shows SSUI's three-level taxonomy; the same structure for the bundled set:

# %%
bundled = load_bundled("all")
display(plots.category_kind_counts(bundled).assign(total=lambda d: d.sum(axis=1)))
plots.savefig(plots.taxonomy_figure(bundled), profile, "02_taxonomy")
plots.savefig(plots.category_kind_figure(bundled), profile, "02_categories_by_kind")
plots.savefig(plots.query_length_figure(bundled), profile, "02_query_lengths")
plots.savefig(plots.split_figure(bundled), profile, "02_splits");

# %% [markdown]
# ## Running this chapter with GPT-4o (the papers' agents)
#
# The paper profile runs the same code with GPT-4o as every agent, on all shipped photos:
#
# ```bash
# export OPENAI_API_KEY=sk-...          # read from the environment only; never written anywhere
# ssui book run --profile paper --chapters 02
# # or change a bound:  ssui book run --profile paper --chapters 02 --set n_images=8
# ```
#
# `book.toml` sets `model = "openai:gpt-4o"` for this chapter in the paper profile (any
# OpenAI-compatible server works too: `model = "openai-compatible:http://host:8000/v1#MODEL"`).
# GPT-4o receives the pixels, writes each agent's answer in one call (API models are not guided)
# and longer lines (`max_new_tokens` per line). Every request is cached in the run folder, so an
# interrupted run costs nothing to resume, and a rerun costs no API call at all. The paper's
# text-only answers came from deepseek-r1: pass another model as `answerer=` to `run_curation`,
# or a `ssui_lib.eval.judge` judge as `text_judge=`, to reproduce that split.


# %% [markdown]
# ## Exercises
#
# For readers and courses. Each exercise shows its task; write your answer in place of `...` and
# run the check below it: it says *right*, or what is wrong or missing — never the answer itself.
# The reference solutions live in `ssui_lib/book/exercises.py` and in the teacher's copy of the
# HTML book (`ssui book build --profile smoke --with-solutions`).

# %%
from ssui_lib.book.exercises import check, show

# %%
show("02.1")

# %%
answer = ...  # your answer (a value, or a function where the exercise asks for one)
check("02.1", answer)

# %%
show("02.2")

# %%
answer = ...  # your answer (a value, or a function where the exercise asks for one)
check("02.2", answer)
