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
# # 04 · SRPO generative exploration: branches at every reasoning step
#
# *Reproduces SRPO Eq. 1–4 and Fig. 4.*
#
# SRPO trains a model on *contrastive* reasoning paths. It first explores: a reasoning path is a
# sequence of states τ = (v₀ → v₁ → … → v_T) (Eq. 1) — here v₀ is the question Q (the picture's
# caption and the query), v₁…v₆ are the six steps of SSUI's explainable chain and v_T is the final
# verdict and answer. The model B sees the CoT prompt D_c (m ground-truth exemplars, each a
# question with its reasoning path) and Q (Eq. 2). At each step i it continues the reference prefix
# τ₁:ᵢ₋₁ at temperature T (Eq. 4); a continuation is **positive** when its final state reaches the
# ground-truth answer A, F(τ) = 1 (Eq. 3), and **negative** when it reaches the other verdict. A
# continuation with no verdict line, or one stopped by the token limit, is **unverified**: it is
# kept in the tree, counted in the statistics and shown in the browser below, but it is never a
# positive nor a negative (otherwise the alignment loss would learn "stop early", not "reason
# safely"). SRPO samples until it has one positive and one negative — the pair (τᵢ⁺, τᵢ⁻) that
# chapter 05's alignment loss pulls apart.
#
# **Branch points.** The book branches at the intermediate states i = 1..T−1, the range of Eq. 8.
# Branching at the verdict itself (i = T) would make each pair a single token, " unsafe" against
# " safe": a shifted verdict prior, not step-level reasoning. It remains available as the opt-in
# setting `verdict_branch = True` for experiments; no profile's headline run uses it.
#
# **Which path is branched.** Eq. 2 samples a path τ from B given Q, D_c (and, in SRPO's pipeline,
# the reference τ*), and Eq. 4 branches *that* path. This book branches the reference path τ*
# itself (off-policy): every prefix τ₁:ᵢ₋₁ is written by the dataset, not by the model. That keeps
# the prefixes correct by construction (a positive continuation then extends a sound chain), costs
# no extra generation, and makes the trees of two models comparable prefix by prefix; the price is
# that the prefixes are not the model's own, so the pairs teach it to continue good reasoning
# rather than to recover from its own early steps. The literal reading is the setting
# `prefix = "sampled"`: the model first writes its own path with τ* and D_c in context, and the
# branches continue *its* steps (a branch point its path does not reach is skipped and counted).
# Every profile uses `prefix = "reference"`, chosen by measurement on the embedded model:
# `python scripts/compare_prefixes.py --limit 8 --out results/prefix_compare` runs both on the first
# 8 train samples with the `cpu` profile's settings (idle 2-core machine, commit 5ce7304):
#
# | prefix | branches | generated tokens | unverified | pairs | pairs / sample | tokens / pair | wall s |
# |---|--:|--:|--:|--:|--:|--:|--:|
# | reference τ* | 188 | 16,589 | 88 (47%) | 2 | 0.25 | 8,294 | 187.5 |
# | sampled (Eq. 2) | 48 | 4,992 (3,248 of them the paths) | 30 (62%) | 1 | 0.125 | 4,992 | 153.2 |
#
# Six of the eight sampled paths reached none of the branch points 4–6 (four used their whole
# 512-token budget without a step-4 line, two stopped early out of format), so the sampled prefix
# explored two samples where the reference explored eight. Per pair it spent fewer tokens, but
# from one pair against two: on 8 samples neither difference is measurable, and the learned
# offline judge agreed with F's ordering on none of the three pairs, so pair quality could not be
# told apart either. The reference prefix gives the 135M model twice the pairs per sample from
# branch points it always reaches; a model that writes the six steps in format (the `paper`
# profile's) makes the literal reading the one worth measuring again.
#
# The search lives in `ssui_lib.srpo.explore` (this notebook only calls it). Two modes:
# `until_pair` (the paper: rounds of k continuations until a pair is found or `max_samples` are
# spent) and `fixed_k` (the RPO code SRPO's hyperparameters come from: exactly k per step).

# %% [markdown]
# The equations of this chapter (SRPO §3.2, as numbered there): a reasoning path, the sampler B given the question and the exemplars D_c, the outcome F and the branches Ω sampled after the prefix τ₁:ᵢ₋₁ at temperature T.
#
# $$
# \tau = (v_0 \rightarrow v_1 \rightarrow \dots \rightarrow v_T) \tag{1}
# $$
#
# $$
# \tau \sim B(\cdot \mid Q, D_c) \tag{2}
# $$
#
# $$
# \mathcal{F}(\tau) = \begin{cases} 1, & \text{if } A \in v_T \\ 0, & \text{otherwise} \end{cases} \tag{3}
# $$
#
# $$
# \Omega \sim B(\cdot \mid Q, D_c, \tau_{1:i-1} \mid T) \tag{4}
# $$

# %% tags=["parameters"]
profile = "smoke"
model = "embedded"  # embedded, hf:PATH, hf:PATH+adapter:PATH, openai-compatible:URL#MODEL (with prefix support)
dataset = "bundled:train"  # exploration data: SRPO explores its training split
n_samples = 6  # the first N samples of the dataset, 0 for all
mode = "until_pair"  # "until_pair" (the paper) | "fixed_k" (the RPO code)
k = 4  # continuations per round (until_pair) or per step (fixed_k)
max_samples = 4  # until_pair: budget of continuations per branch point
temperature = 0.5  # T of Eq. 4 (SRPO: 0.5)
max_new_tokens = 48  # per continuation (it stops at the verdict line anyway)
shots = 0  # m, ground-truth exemplars in D_c (from the train split, never the sample or its twin)
steps = [6]  # branch points i: the intermediate states 1..6 (the six steps)
verdict_branch = False  # opt-in: also allow step 7 (T, the verdict token itself) as a branch point
prefix = "reference"  # branch the reference path (off-policy) or "sampled": a path the model writes with it in context
batch_samples = 8  # samples explored together in one generate call (no effect on the result)
seed = 0
rescore = True  # score every pair's two continuations with the base model (and trained adapters, if any)
adapters_dir = ""  # chapter 05 adapters/<method>/ folders; empty: results/<profile>/05/adapters
example_id = ""  # the sample of the tree figure; empty: the first with the most pairs

# %%
import inspect
import time
from pathlib import Path

import pandas as pd
from IPython.display import HTML, Markdown, display

from ssui_lib.srpo import branch_scores
from ssui_lib.book import plots
from ssui_lib.book import results as book_results
from ssui_lib.srpo import explore as ex
from ssui_lib.data.bundled import load_dataset
from ssui_lib.models import resolve_model
from ssui_lib.book.widgets import BranchExplorer

plots.paper_style()
samples = load_dataset(dataset)
samples = samples[:n_samples] if n_samples else samples
pool = [s for s in load_dataset("bundled:train") if s.split == "train"] if shots else []
cfg = ex.ExploreConfig(mode=mode, k=k, max_samples=max_samples, temperature=temperature,
                       max_new_tokens=max_new_tokens, shots=shots, steps=tuple(steps),
                       verdict_branch=verdict_branch, batch_samples=batch_samples, seed=seed, prefix=prefix)
out_dir = Path("results") / profile / "04"
trees_path = out_dir / "trees.jsonl"
print(f"{dataset}: exploring {len(samples)} samples ({sum(s.kind == 'irs' for s in samples)} IRS, "
      f"{sum(s.kind == 'twin' for s in samples)} benign twins) at steps {list(cfg.steps)}")
print(f"mode {cfg.mode}, k = {cfg.k}, budget {cfg.max_samples} per step, T = {cfg.temperature}, m = {cfg.shots} shots")

# %% [markdown]
# ## F: does a path reach the ground truth?
#
# The ground-truth answer A of an SSUI record is its verdict (`unsafe` for an IRS record, `safe`
# for its benign twin), written on the path's `Final verdict:` line. F reads that line only, so a
# continuation can stop at `Answer:` — the answer text never changes F and is not generated. F is
# three-valued: `True`, `False`, or `None` when there is no verdict line (the copied placeholder
# "safe or unsafe" is none); the search also treats a continuation stopped by the token limit as
# unverified, whatever it wrote.

# %%
display(Markdown(f"```python\n{inspect.getsource(ex.verdict_F)}```"))
ex_sample = samples[0]
print("τ1:i−1 for i = 6 (the prefix every branch of step 6 continues), last lines:")
print("…" + ex.step_prefix(ex_sample, 6)[-260:])

# %% [markdown]
# ## Explore
#
# Every (sample, step) prefix of a group of samples goes into one batched `generate` call with k
# continuations each; later rounds serve only the branch points still missing a positive or a
# negative. Each finished tree is appended to `results/<profile>/04/trees.jsonl`, so an
# interrupted run resumes where it stopped and a rerun costs nothing. The same file is the input of
# chapter 05 (`ssui train --data results/<profile>/04`).

# %%
m = resolve_model(model)
# trees.jsonl explored with other parameters is moved aside (trees.stale-<time>.jsonl) and redone;
# stats.json is the same summary `ssui explore` writes: chapter 05 reads the dataset and pool from it
trees, info = ex.run_exploration(m, samples, out_dir, cfg, model_name=model, dataset=dataset, exemplar_pool=pool,
                                 shots_from="bundled:train", limit=n_samples or None, progress=False,
                                 on_stale="reset")
explore_s = info["wall_s"]
stats = info["statistics"]
print(f"{len(trees)} trees in {explore_s:.0f} s (0 s means every tree was already in {trees_path})")

# %% [markdown]
# ## What the exploration found
#
# Pairs per sample, the share of samples with at least one pair, the positive rate (over verified
# branches; a continuation with no verdict line is *unverified*, kept but never counted) and the
# cost: generated tokens per contrastive pair.

# %%
summary = pd.Series({
    "samples": stats["samples"], "branches sampled": stats["branches"], "generated tokens": stats["tokens"],
    "contrastive pairs": stats["pairs"], "pairs per sample": stats["pairs_per_sample"],
    "samples with a pair": f"{stats['samples_with_pair']} of {stats['samples']}",
    "positive rate (verified branches)": stats["positive_rate"], "unverified branches": stats["unverified"],
    "generated tokens per pair": stats["tokens_per_pair"],
}, name="value").to_frame()
display(summary)
step_df = ex.step_frame(trees)
display(step_df.style.format({"positive_rate": "{:.2f}"}, na_rep="–").hide(axis="index"))
book_results.write_table(profile, "04", "summary", summary)
book_results.write_table(profile, "04", "steps", step_df, index=False)
book_results.record(profile, [book_results.entry("04", metric, f"prefix {cfg.prefix}", stats[key], n=stats["samples"],
                                                 model=model, judge=None)
                              for metric, key in (("pairs per sample", "pairs_per_sample"),
                                                  ("generated tokens per pair", "tokens_per_pair"),
                                                  ("positive rate (verified branches)", "positive_rate"),
                                                  ("samples with a pair (share)", "samples_with_pair_rate"),
                                                  ("unverified branches", "unverified"))]);

# %%
fig = plots.positive_rate_figure(step_df, title=f"Positive continuations per branch point ({model}, T = {temperature})")
plots.savefig(fig, profile, "04_positive_rate");

# %% [markdown]
# A branch point yields a pair only when the model sometimes reaches the ground truth and sometimes
# does not. Where all verified continuations agree, the budget is spent without a pair: from that
# prefix the model is either never right or never wrong. That is why `until_pair` stops early where
# it can, and why the number of pairs — not the number of branches — is what training gets.

# %%
points = [(t["id"], st["i"], {b["F"] for b in st["branches"]} - {None}) for t in trees for st in t["steps"]]
print(f"{sum(fs == {1} for *_, fs in points)} branch points with only positive continuations, "
      f"{sum(fs == {0} for *_, fs in points)} with only negative ones, "
      f"{sum(fs == {0, 1} for *_, fs in points)} with both (a pair), of {len(points)}")
display(ex.sample_frame(trees).style.hide(axis="index"))

# %% [markdown]
# ## One sample's branches (SRPO Fig. 4)
#
# The reference path runs left to right; the branches of step i leave from state v_{i−1} (they
# continue τ₁:ᵢ₋₁ from the header of step i), colored by F. Thick lines are the pair kept for
# training.

# %%
example = next((t for t in trees if t["id"] == example_id), None) or max(trees, key=lambda t: len(t["pairs"]))
fig = plots.branch_tree_figure(example)
plots.savefig(fig, profile, "04_branch_tree");

# %% [markdown]
# ## Before and after training: the log-likelihood margin of each pair
#
# Chapter 05's alignment loss, −k · log σ(L(τᵢ⁺) − L(τᵢ⁻)) (Eq. 6), depends on the margin
# L(τᵢ⁺) − L(τᵢ⁻). The two paths share τ₁:ᵢ₋₁, so the margin is the difference of the two
# continuations' log-probabilities given that prefix (Eq. 7). Below, the base model re-scores every
# pair (at temperature 1, unlike the sampler's log-probabilities stored in the tree); once chapter 05
# has saved adapters under `results/<profile>/05/adapters/<method>/`, a rerun of this chapter adds
# one variant per trained method.

# %%
variants = {}
if rescore:
    by_id = {s.id: s for s in samples}
    pool_by_id = {s.id: s for s in pool}

    def cot_prompt_fn(tree):
        return ex.cot_prompt(by_id[tree["id"]], [pool_by_id[e] for e in tree["exemplar_ids"]],
                             load_image=m.supports_images)

    t0 = time.time()
    variants["base"] = branch_scores.rescore_pairs(m, trees, cot_prompt_fn)
    trained = branch_scores.trained_variants(model, adapters_dir or Path("results") / profile / "05" / "adapters")
    for method, name in trained.items():
        variants[method.upper()] = branch_scores.rescore_pairs(resolve_model(name), trees, cot_prompt_fn)
    print(f"re-scored {len(variants['base']) // 2} pairs with {', '.join(variants)} in {time.time() - t0:.0f} s"
          + ("" if trained else "; no trained adapter found yet (chapter 05 writes them)"))
    margin_df = branch_scores.margin_frame(variants)
    if len(margin_df):
        display(margin_df.groupby(["variant", "step"])["margin"].describe()[["count", "mean", "50%", "min", "max"]]
                .rename(columns={"50%": "median"}).round(2))
        fig = plots.margin_figure(margin_df)
        plots.savefig(fig, profile, "04_pair_margins");

# %% [markdown]
# For the base model a margin below zero means it already finds the *negative* continuation more
# likely than the positive one — exactly the pairs where the alignment loss has the most to do.
#
# ## Browse the branches
#
# Choose a sample and a branch point: the pair is shown side by side with F, the sampler's
# log-probability and the re-scored log-probabilities of each model variant, then every branch of
# that step, then the reference path with the branch point marked. In the static HTML book the
# widget shows its first view only (there is no Python kernel behind it to switch samples); the
# table under it lists every branch point of the same sample. Run the notebook in Jupyter to browse.

# %%
explorer = BranchExplorer(trees, variants)
display(explorer)
display(HTML(explorer.summary()))

# %% [markdown]
# ## What these numbers mean
#
# Under the `smoke` profile B is **SmolLM2-135M-Instruct**, a 135-million-parameter text-only model
# that reads the picture as its caption, and the exploration is deliberately small: a few training
# samples, one branch point at the last intermediate step (continuations from earlier steps run
# through the remaining steps, past the 48-token budget, and would all be unverified), k = 4 continuations and the
# m = 2 exemplars in D_c, as the `paper` profile (SRPO does not state m; without them the small model copies the instructions'
# placeholder "Final verdict: safe or unsafe", which is no verdict, and finds no pair). The numbers show that the search, F, the tree
# file, the statistics and the re-scoring work end to end — not how often a capable model reasons
# its way to the right verdict. Even with the reference path's own reasoning in its prefix, the
# small model's verdict often does not follow from it (a prefix whose step 6 argues for a
# refusal can still be continued to `Final verdict: safe`), and at one prefix its sampled verdicts tend to agree with
# each other, so pairs are few. SRPO explores Qwen2.5-VL-7B and LLaVA-NeXT-LLaMA3 at every step,
# which the `paper` profile sets (`model = "hf:weights/Qwen2.5-VL-7B-Instruct"`,
# steps 1–6, T = 0.5; SRPO does not state its sampling budget per step, the profile allows 16).
# Unverified branches are counted in the tables above: under the smoke budget they are the
# continuations the token limit cut off.
#
# How the batched search compares with the paper's one-continuation-at-a-time loop (generate calls,
# tokens and seconds per contrastive pair) is measured by `benchmarks/explore_bench.py`, outside the
# book.

# %%
print(f"exploration {explore_s:.0f} s; trees in {trees_path}")


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
show("04.1")

# %%
answer = ...  # your answer (a value, or a function where the exercise asks for one)
check("04.1", answer)

# %%
show("04.2")

# %%
answer = ...  # your answer (a value, or a function where the exercise asks for one)
check("04.2", answer)
