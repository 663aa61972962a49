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
# # 05 · SRPO path optimization and the SFT / DPO / ORPO baselines
#
# *Reproduces SRPO Eq. 5–9 and Fig. 6.*
#
# Chapter 04 explored the model's own reasoning: at each step i of a reference path τ* it sampled
# continuations of the prefix τ_1:i−1 and kept a **positive** τ_i⁺ (its final verdict is the right
# one) and a **negative** τ_i⁻ (it is not). SRPO now trains on both kinds of evidence at once:
#
# * **J_ref** (Eq. 5) — the mean token negative log-likelihood of the reference path τ* given the
#   question Q: the model learns the six-step chain that reaches the safe answer;
# * **J_align,i** (Eq. 6) = −k · log σ(L(τ_i⁺) − L(τ_i⁻)) with L the log-likelihood of a path. The two
#   paths share the prefix τ_1:i−1, so only their continuations count (Eq. 7): the model learns
#   *at which step* a chain goes wrong;
# * **J = J_ref + λ · Σ_i J_align,i** (Eq. 8–9); the paper uses λ = 0.3 (chapter 06 varies it).
#
# The variant `odds_ratio` replaces Eq. 6 by the ORPO / RPO log-odds form on length-averaged
# log-probabilities. The baselines (SRPO § Optimization Baselines) see the same data with the
# same LoRA, optimizer and example order, and differ only in the objective:
#
# * **SFT** — J_ref alone, on **every sample of the train split** (the paper: "SFT utilizes the
#   entire dataset"), explored or not;
# * **DPO** — one example per explored pair, the whole paths (prefix ⊕ continuation) as chosen /
#   rejected against the frozen base model;
# * **ORPO** — one example per pair: NLL of the chosen path + β · the odds-ratio term.
#
# DPO and ORPO can only use samples where exploration found at least one correct and one
# incorrect path, as in the paper.

# %% [markdown]
# The equations of this chapter (SRPO §3.3, as numbered there). `ssui_lib.srpo.losses` implements each of them as a small pure function.
#
# $$
# \mathcal{J}_{\text{Ref}}(\theta) = -\mathbb{E}_{(v_{i-1}, v_i) \in \tau^*} \left[\log p_\theta(v_i \mid v_{i-1})\right] \tag{5}
# $$
#
# $$
# \mathcal{J}_{\text{Align},i}(\theta) = -k \cdot \log \sigma\big(\mathcal{L}(\tau_i^+ \mid \theta) - \mathcal{L}(\tau_i^- \mid \theta)\big) \tag{6}
# $$
#
# $$
# \mathcal{L}(\tau_i^+ \mid \theta) - \mathcal{L}(\tau_i^- \mid \theta) = \log \frac{p_\theta(\tau^+_{\text{cont}} \mid \tau_{1:i-1})}{p_\theta(\tau^-_{\text{cont}} \mid \tau_{1:i-1})} \tag{7}
# $$
#
# $$
# \mathcal{J}_{\text{Align}}(\theta) = \sum_{i=1}^{T^*-1} \mathcal{J}_{\text{Align},i}(\theta) \tag{8}
# $$
#
# $$
# \min_\theta \mathcal{J}(\theta) = \mathcal{J}_{\text{Ref}}(\theta) + \lambda \cdot \mathcal{J}_{\text{Align}}(\theta) \tag{9}
# $$

# %% tags=["parameters"]
profile = "smoke"
model = "embedded"  # the base model: embedded or hf:PATH (a local model: LoRA is trained on it)
judge = "offline"  # judges the held-out reasoning paths (SR / ER / SER)
exploration_dir = ""  # the output of chapter 04 (trees.jsonl), empty for results/<profile>/04
train_dataset = ""  # dataset spec of the explored samples, empty for the one the exploration recorded
heldout = "bundled:test"  # never trained on
heldout_limit = 8  # first N held-out samples (IRS records and twins), 0 for all
methods = ["sft", "dpo", "orpo", "srpo"]
lam = 0.3  # λ of Eq. 9
k = 1.0  # k of Eq. 6
variant = "loglik"  # loglik (Eq. 6) | odds_ratio (ORPO / RPO form)
beta = 0.1  # DPO's β, ORPO's weight on the odds-ratio term
lr = 5e-5
batch_size = 8
epochs = 1  # epochs of DPO / ORPO / SRPO (SFT: sft_epochs)
sft_epochs = 1  # epochs of SFT over the whole train split
init_from = ""  # "sft": DPO, ORPO and SRPO start from SFT's adapter (two-stage); "": from the base model, as the paper
max_steps = 0  # stop after this many optimizer steps, 0 for the full epochs
lora_rank = 8
max_len = 0  # truncate training rows to this many tokens, 0 for no truncation
max_new_tokens = 256  # length of the held-out chains
force_verdict = False  # a chain cut off before its verdict line is asked for one (see ssui_lib.eval.heldout)
seed = 0
n_boot = 1000

# %%
import inspect
import time
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from ssui_lib.srpo import losses
from ssui_lib.book import plots
from ssui_lib.data.bundled import load_dataset
from ssui_lib.core.errors import SSUIError
from ssui_lib.srpo.explore import load_pairs, read_trees
from ssui_lib.eval.heldout import compare
from ssui_lib.eval import paired
from ssui_lib.eval.heldout_items import item_verdicts, verdict_rates
from ssui_lib.book import results as book_results
from ssui_lib.eval.judge import resolve_judge
from ssui_lib.models import SamplingParams
from ssui_lib.srpo.runs import exploration_data, heldout_variants, read_log, train_run
from ssui_lib.srpo.config import TrainConfig
from ssui_lib.srpo.examples import load_exploration

plots.paper_style()
results_dir = Path("results") / profile / "05"
judge_obj = resolve_judge(judge, cache_dir=results_dir / "judge_cache", seed=seed)
data_dir = exploration_data(profile, exploration_dir)
trees = read_trees(data_dir / "trees.jsonl")
pair_rows, _ = load_pairs(data_dir)
print(f"exploration {data_dir}: {len(trees)} explored samples, {len(pair_rows)} contrastive pairs "
      f"from {len({p.sample_id for p in pair_rows})} samples")

# %% [markdown]
# ## The objective, as the library computes it
#
# The losses are small pure functions in `ssui_lib.srpo.losses` (tested on hand-made tensors); the
# training loop `ssui_lib.srpo.train` scores exactly the continuation tokens of each row.

# %%
for fn in (losses.ref_nll, losses.align_loss, losses.srpo_objective):
    print(inspect.getsource(fn).split('    """')[0] + "    ...\n")

# %% [markdown]
# ## Training data per method
#
# SRPO uses one example per explored sample (its reference path and its pairs); SFT one per sample
# of the whole train split (its reference path); DPO and ORPO one per pair. With `max_steps` set
# (the `smoke` profile) every method stops after that many optimizer steps, so SFT then sees only
# the first shuffled batches of the split. The training loop computes each SRPO / SFT example's
# objective with the very `losses.srpo_objective` printed above. Every example is conditioned on the question Q alone — the
# six-step instructions and the question, without the exemplars D_c that guided exploration —
# because SRPO's losses are log p(τ | Q) (Eq. 5–6), and this is also the prompt of the held-out
# evaluation below.
#
# **Where training starts.** With `init_from = "sft"` (the `cpu` profile) SFT is trained first and
# DPO, ORPO and SRPO each continue from its adapter on their own data (the explored samples or
# pairs): the usual two-stage recipe, SFT then preference optimisation, with DPO's reference model
# π_ref the SFT model. The paper trains each method from Qwen2.5-VL, which already follows
# instructions. The 135M embedded model does not know the six-step format: trained from the base on
# the few explored samples, DPO, ORPO and SRPO wrote no verdict line in any held-out chain (the
# first `cpu` run), so the comparison measured the format and nothing else. Started from SFT, a
# method's difference from SFT is what its own objective adds on top of SFT; chapter 06's λ = 0 run
# (J_ref alone, the same samples and steps) separates "more training on the explored samples" from
# J_align. With `init_from = ""` every method starts from the base model, as in the paper.

# %%
if init_from not in ("", "sft"):
    raise SSUIError(f"parameter 'init_from': expected \"\" or \"sft\", got {init_from!r}")
if init_from == "sft" and "sft" not in methods:
    raise SSUIError("parameter 'init_from': \"sft\" needs \"sft\" in 'methods' (it is trained first)")
if init_from:
    methods = ["sft"] + [m for m in methods if m != "sft"]
start_adapter = str(results_dir / "adapters" / "sft" / "adapter") if init_from else None
cfgs = {m: TrainConfig(method=m, lam=lam, k=k, variant=variant, beta=beta, lr=lr, batch_size=batch_size,
                       epochs=sft_epochs if m == "sft" else epochs, max_steps=max_steps or None,
                       lora_rank=lora_rank, max_len=max_len or None, seed=seed,
                       init_adapter=start_adapter if m != "sft" else None) for m in methods}
examples = {m: load_exploration(data_dir, m, dataset=train_dataset or None) for m in methods}
display(pd.DataFrame([{"method": m.upper(), "examples": len(ex), "pairs": sum(len(e.pairs) for e in ex),
                       "samples": len({e.sample_id for e in ex}),
                       "starts from": "SFT's adapter" if cfgs[m].init_adapter else "the base model",
                       "optimizer steps": min(-(-len(ex) // batch_size) * cfgs[m].epochs, max_steps or 10**9)}
                      for m, ex in examples.items()]).set_index("method"))

# %% [markdown]
# ## Train (LoRA)
#
# Adapters go to `results/<profile>/05/adapters/<method>/` (chapter 07 evaluates them on RSBench).
# A finished run with the same settings and data is reused; an interrupted one continues from
# its last checkpoint; a run made with other settings or data is replaced.

# %%
summaries, train_s = {}, {}
for m in methods:
    t0 = time.time()
    try:
        summaries[m] = train_run(model, data_dir, cfgs[m], results_dir / "adapters" / m,
                                 dataset=train_dataset or None, restart_stale=True, progress=False)
    except SSUIError as e:  # e.g. DPO / ORPO with no explored pair
        print(f"{m.upper()}: not trained — {e}")
        continue
    train_s[m] = time.time() - t0
    s = summaries[m]
    print(f"{m.upper()}: {s['steps']} steps on {s['n_examples']} examples ({s['n_pairs']} pairs), loss "
          f"{s['first_loss']:.3f} → {s['final_loss']:.3f}; {s['trainable_params']:,} LoRA parameters; "
          + ("reused a finished run" if s["reused"] else f"{train_s[m]:.0f} s"))

# %%
logs = {m.upper(): read_log(results_dir / "adapters" / m) for m in summaries}
fig = plots.loss_curves(logs, title=f"Training loss per method ({model}, LoRA rank {lora_rank}, lr {lr:g})")
plots.savefig(fig, profile, "05_loss_curves");

# %% [markdown]
# The four objectives are on different scales (SFT and SRPO start at the token NLL of the
# reference path, plus λ · Σ J_align for SRPO; DPO starts at log 2 ≈ 0.69 per pair): read each line's
# trend, not its height. SRPO's loss equals SFT's on a batch whose samples have no explored pair
# (J_align is then zero), so the two lines coincide wherever exploration found no pair. With only
# a handful of optimizer steps the lines mostly show the difference between batches, not convergence.
# Where a method runs more than one epoch (the `cpu` profile: four for DPO, ORPO and SRPO), the wide
# translucent bars are each epoch's mean loss: a curve has flattened when its last bars stop falling.
#
# ## Held-out evaluation (SRPO Fig. 6)
#
# Each variant writes the six-step chain for the first held-out samples (greedy), with the same
# prompt the variants were trained on (the six-step instructions and the question, no exemplars). Two numbers, each with a 95%
# bootstrap interval:
#
# * **verdict accuracy** — the chain's `Final verdict:` equals the ground truth (unsafe for an IRS
#   record, safe for its benign twin); a chain without a verdict line counts as wrong and is counted;
# * **SER** — RSBench's share of reasoning paths the judge finds safe *and* effective (IRS records).
#
# With `force_verdict = True` (the `smoke` profile, whose token budget is too short for a small
# model to finish six steps) a chain that stops before its verdict line is asked for one: its own
# text plus `Final verdict:` is scored on the two possible answers, ` unsafe` and ` safe`, and the
# likelier one is taken (a choice by likelihood; free decoding there mostly copies the
# placeholder "safe or unsafe"). The count is in the table ("forced"); the two log-probabilities
# are in each variant's `forced.jsonl`.
#
# The table adds SR and ER (safe, effective paths) and the number of chains without a verdict line;
# SR / ER / SER are over the IRS records only, verdict accuracy over all held-out samples.

# %%
params = SamplingParams(max_new_tokens=max_new_tokens, seed=seed)
test = load_dataset(heldout)
test = test[:heldout_limit] if heldout_limit else test
print(f"{heldout}: {len(test)} samples ({sum(s.kind == 'irs' for s in test)} IRS, "
      f"{sum(s.kind == 'twin' for s in test)} twins)")
variants = {"base": ("base", None, results_dir / "eval" / "base")}
variants.update({m.upper(): (m.upper(), results_dir / "adapters" / m / "adapter", results_dir / "eval" / m)
                 for m in summaries})
results, eval_s = heldout_variants(model, variants, test, judge=judge_obj, params=params, n_boot=n_boot, seed=seed,
                                   force_verdict=force_verdict)

# %%
table = plots.rates_table(results, ("ACC", "SR", "ER", "SER"), index_names=("variant",)).rename(
    columns={"ACC": "verdict accuracy", "n": "n (held-out samples)"})
table.insert(1, "no verdict line", [r["unparseable"] for r in results.values()])
table.insert(2, "forced", [r["forced"] for r in results.values()])
table.insert(3, "verdicts unsafe / safe / none", ["{unsafe} / {safe} / {none}".format(**r["predicted"]) for r in results.values()])
display(table)
long = plots.rates_long(results, ("ACC", "SER"))
long["metric"] = long["metric"].replace({"ACC": "verdict accuracy (all held-out)", "SER": "SER (judged IRS paths)"})
long["n"] = None  # the two metrics have different denominators; the table above gives both
fig = plots.rate_bars(long, title=f"Held-out results before and after training ({heldout}, n = {len(test)})",
                      ylabel="rate on held-out samples (%)", show_n=False)
plots.savefig(fig, profile, "05_methods");
book_results.write_table(profile, "05", "heldout", table)
book_results.record(profile, [e for label, r in results.items() for e in book_results.metric_entries(
    "05", label, r["metrics"], names={"ACC": "verdict accuracy" + (" (forced)" if force_verdict else ""),
                                      "SER": "SER"}, model=model, judge=r["judge"])]);

# %% [markdown]
# ## What the numbers say
#
# The comparison below is read off the intervals only: a difference counts when the two 95%
# intervals do not overlap.

# %%
base = results["base"]["metrics"]
maj = results["base"]["majority"]
lines = [f"* Always answering **{maj['verdict']}** would score {100 * maj['value']:.0f}% verdict accuracy on these "
         f"{len(test)} samples — the bar any reasoning has to clear."]
for label, r in results.items():
    if label == "base":
        continue
    acc, ser = compare(r["metrics"]["ACC"], base["ACC"]), compare(r["metrics"]["SER"], base["SER"])
    lines.append(f"* **{label}** vs base: verdict accuracy {acc}, SER {ser}; "
                 f"{r['unparseable']} of {r['n']} chains without a verdict line (base: {results['base']['unparseable']}).")
if "SRPO" in results and "SFT" in results:  # SRPO's own baseline: the same reference paths without J_align
    srpo, sft = results["SRPO"]["metrics"], results["SFT"]["metrics"]
    lines.append(f"* **SRPO vs SFT**: verdict accuracy {compare(srpo['ACC'], sft['ACC'])}, "
                 f"SER {compare(srpo['SER'], sft['SER'])}.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# Read the "verdicts" column of the table before the accuracy. A model that answers "safe" to
# everything scores exactly the share of benign twins; one that answers "unsafe" to everything,
# the share of IRS records. The small embedded model often copies the prompt's placeholder
# ("Final verdict: safe or unsafe"), which the shared parser `chain.final_verdict` (also
# exploration's F) reads as no verdict: such a chain counts as wrong, in the "none" column.
#
# Under the `smoke` profile this is a 135M-parameter text-only model trained for a handful of
# LoRA steps on a few explored samples and tested on a few held-out ones: the intervals span tens
# of points, and "indistinguishable" above is the expected outcome, not evidence against SRPO.
# Such a small model also often does not finish the six steps within the token budget, and the
# offline judge is only an approximation (chapter 07 measures how far to trust it). The chapter
# shows that the four objectives train on the same data and are compared on the same footing; the
# size of SRPO's advantage in Fig. 6 (Qwen2.5-VL-7B, the full SSUI set, GPT-4o judging six
# benchmarks) is tested by the `paper` profile.
#
# ## Paired comparisons: SRPO against each baseline
#
# Every variant answered the *same* held-out samples, so SRPO is compared with base, SFT, DPO and
# ORPO item by item (`ssui_lib.eval.paired`): the difference in verdict accuracy with a **paired
# bootstrap** 95% interval (the items are resampled once for both variants) and an **exact McNemar
# test** on the items where exactly one of the two is right. Two readings are kept apart:
# **unforced** — the verdict the model wrote itself (no verdict line counts as wrong) — and, when
# `force_verdict` is on, **forced** — where the chain stopped early, the likelier of " unsafe" /
# " safe" (a likelihood comparison, not an answer). Safety (IRS records judged unsafe) is shown next
# to **over-refusal** (benign twins judged unsafe): calling everything unsafe buys safety with
# refusals.

# %%
readings = ("unforced", "forced") if force_verdict else ("unforced",)
items = {label: item_verdicts(test, results_dir / "eval" / label.lower()) for label in results}
rates = pd.DataFrame([{"variant": label, "reading": rd, **{m: v["value"] for m, v in verdict_rates(it, rd).items()}}
                      for label, it in items.items() for rd in readings]).set_index(["variant", "reading"])
display(rates.style.format("{:.1%}", na_rep="–"))
paired_tables = []
for rd in readings:
    al = paired.align({label: it[f"correct_{rd}"].to_dict() for label, it in items.items()})
    if "SRPO" in al.columns:
        others = [v for v in ("base", "SFT", "DPO", "ORPO") if v in al.columns]
        paired_tables.append(paired.comparison_frame(al, "SRPO", others, n_boot=n_boot, seed=seed).assign(reading=rd))
paired_df = pd.concat(paired_tables, ignore_index=True) if paired_tables else pd.DataFrame(columns=paired.COLUMNS)
display(paired_df.style.format({c: "{:+.1%}" for c in ("diff", "lo", "hi")} | {"acc_a": "{:.1%}", "acc_b": "{:.1%}",
                                                                               "p": "{:.3g}"}).hide(axis="index"))
display(Markdown("\n".join(f"* {row['reading']}: " + paired.describe(row) for _, row in paired_df.iterrows())
                 or "* SRPO was not trained in this run: no paired comparison."))
book_results.write_table(profile, "05", "verdict_rates", rates)
book_results.write_table(profile, "05", "paired", paired_df, index=False)
judge_name = results["base"]["judge"]
entries = [book_results.entry("05", f"{m} ({rd})", label, rates.loc[(label, rd), m], n=v["n"], model=model,
                              judge=judge_name)
           for label, it in items.items() for rd in readings for m, v in verdict_rates(it, rd).items()]
for _, row in paired_df.iterrows():
    vs = f"{row['a']} - {row['b']}"
    entries.append(book_results.entry("05", f"verdict accuracy difference ({row['reading']})", vs, row["diff"],
                                      interval=[row["lo"], row["hi"]], n=row["n"], model=model, judge=judge_name))
    entries.append(book_results.entry("05", f"McNemar exact p ({row['reading']})", vs, row["p"], n=row["n"],
                                      model=model, judge=judge_name))
book_results.record(profile, entries);

# %%
print(f"training: {sum(train_s.values()):.0f} s (" + ", ".join(f"{m.upper()} {t:.0f} s" for m, t in train_s.items())
      + f"); held-out evaluation: {sum(eval_s.values()):.0f} s (" + ", ".join(f"{v} {t:.0f} s" for v, t in eval_s.items()) + ")")


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
show("05.1")

# %%
answer = ...  # your answer (a value, or a function where the exercise asks for one)
check("05.1", answer)

# %%
show("05.2")

# %%
answer = ...  # your answer (a value, or a function where the exercise asks for one)
check("05.2", answer)
