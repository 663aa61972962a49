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
# # 06 · The loss weight λ
#
# *Reproduces SRPO Fig. 7.*
#
# SRPO's objective J = J_ref + λ · Σ_i J_align,i (Eq. 9) balances two things: a small λ grounds the
# model in the reference path τ* (the SSUI chain that reaches the safe answer); a large λ puts the
# weight on the step-level contrast between the explored positive and negative branches. SRPO
# swept λ ∈ {0.1, 0.3, 0.5, 0.7, 0.9} on RSBench and chose 0.3: too small a λ ignores what
# exploration found, too large a λ loosens the grounding in the reference path.
#
# Here every λ trains SRPO on the same exploration (chapter 04), with the same optimizer steps,
# the same seed and the same example order; only λ changes. Each adapter is then evaluated on the
# same held-out samples as chapter 05: verdict accuracy of its chains and the judged SER of its
# reasoning paths, with 95% bootstrap intervals.

# %% [markdown]
# The objective this chapter varies (SRPO §3.3, as numbered there): the step terms J_align,i, their sum over the intermediate steps, and the weight λ between the reference path and the alignment term.
#
# $$
# \mathcal{J}_{\text{Align},i}(\theta) = -k \cdot \log \sigma\big(\mathcal{L}(\tau_i^+ \mid \theta) - \mathcal{L}(\tau_i^- \mid \theta)\big) \tag{6}
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
model = "embedded"  # the base model (embedded or hf:PATH)
judge = "offline"
exploration_dir = ""  # the output of chapter 04 (trees.jsonl), empty for results/<profile>/04
train_dataset = ""  # dataset spec of the explored samples, empty for the one the exploration recorded
heldout = "bundled:test"
heldout_limit = 8  # first N held-out samples, 0 for all
lambdas = [0.1, 0.3, 0.5, 0.7, 0.9]
only_paired = False  # train only on samples with an explored pair (λ changes nothing for the others)
paper_lambda = 0.3  # marked in the figure
k = 1.0
variant = "loglik"  # loglik (Eq. 6) | odds_ratio
lr = 5e-5
batch_size = 8
epochs = 1
init_from = ""  # sft: every λ starts from chapter 05's SFT adapter (as chapter 05's SRPO does); empty: from the base model
max_steps = 0  # 0 for the full epochs
lora_rank = 8
max_len = 0  # 0 for no truncation
max_new_tokens = 256
force_verdict = False  # a chain cut off before its verdict line is asked for one (see ssui_lib.eval.heldout)
seed = 0
n_boot = 1000

# %%
import time
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from ssui_lib.book import plots
from ssui_lib.book import results as book_results
from ssui_lib.data.bundled import load_dataset
from ssui_lib.core.errors import SSUIError
from ssui_lib.srpo.explore import load_pairs
from ssui_lib.eval import paired
from ssui_lib.eval.heldout import compare, results_frame
from ssui_lib.eval.heldout_items import item_verdicts
from ssui_lib.eval.judge import resolve_judge
from ssui_lib.models import SamplingParams
from ssui_lib.srpo.runs import exploration_data, heldout_variants, read_log, train_run
from ssui_lib.srpo.config import TrainConfig

plots.paper_style()
results_dir = Path("results") / profile / "06"
judge_obj = resolve_judge(judge, cache_dir=results_dir / "judge_cache", seed=seed)
data_dir = exploration_data(profile, exploration_dir)
if not lambdas or any(not isinstance(x, (int, float)) or x < 0 for x in lambdas):
    raise SSUIError(f"parameter 'lambdas': expected a non-empty list of numbers >= 0, got {lambdas!r}")

# %% [markdown]
# ## Train one SRPO adapter per λ
#
# Adapters go to `results/<profile>/06/lambda_<λ>/`; a finished run is reused, an interrupted one
# continues from its checkpoint. With `only_paired = True` (the `smoke` profile) only the samples
# where exploration found a pair are trained on: J_align is zero for the others, so λ cannot
# change what they teach, and the smoke budget goes where λ acts.

# %%
pair_rows, _ = load_pairs(data_dir)
if only_paired and not pair_rows:
    print(f"exploration {data_dir} found no contrastive pair: J_align is zero for every sample and λ changes "
          "nothing; training on all explored samples (J_ref only) so that the sweep still runs")
    only_paired = False
if init_from not in ("", "sft"):
    raise SSUIError(f"parameter 'init_from': expected \"\" or \"sft\", got {init_from!r}")
start_adapter = Path("results") / profile / "05" / "adapters" / "sft" / "adapter"
if init_from and not (start_adapter / "adapter_model.safetensors").is_file():
    raise SSUIError(f"parameter 'init_from': {start_adapter} is missing: run chapter 05 first "
                    f"(ssui book run --profile {profile} --chapters 05)")
summaries, train_s = {}, {}
for lam in lambdas:
    cfg = TrainConfig(method="srpo", lam=lam, k=k, variant=variant, lr=lr, batch_size=batch_size, epochs=epochs,
                      init_adapter=str(start_adapter) if init_from else None,
                      max_steps=max_steps or None, lora_rank=lora_rank, max_len=max_len or None, seed=seed)
    t0 = time.time()
    summaries[lam] = train_run(model, data_dir, cfg, results_dir / f"lambda_{lam:g}", dataset=train_dataset or None,
                               restart_stale=True, progress=False, only_paired=only_paired)
    train_s[lam] = time.time() - t0
    s = summaries[lam]
    print(f"λ = {lam:g}: {s['steps']} steps on {s['n_examples']} samples ({s['n_pairs']} pairs), loss "
          f"{s['first_loss']:.3f} → {s['final_loss']:.3f}; " + ("reused" if s["reused"] else f"{train_s[lam]:.0f} s"))

# %%
logs = {f"λ = {lam:g}": read_log(results_dir / f"lambda_{lam:g}") for lam in lambdas}
loss_table = (pd.DataFrame({name: log.set_index("step")[["ref", "align", "margin"]].astype(float).mean()
                      for name, log in logs.items()}).T
        .rename(columns={"ref": "mean J_ref (nats/token)", "align": "mean Σ_i J_align,i",
                         "margin": "mean margin L(τ⁺) − L(τ⁻) (nats)"}).round(4))
display(loss_table)
book_results.write_table(profile, "06", "loss_parts", loss_table)

# %% [markdown]
# Every λ sees the same batches; J_ref and Σ J_align are logged separately, so the table shows the
# two parts of the objective each run optimised (the loss is J_ref + λ · Σ J_align). The margin
# column says how strongly the model already prefers the positive continuation: J_align,i =
# −k · log σ(margin) is about e^(−margin) for a large margin, so when the explored pairs are
# already ranked right by many nats, J_align ≈ 0 and λ has almost nothing to weigh — the curve
# below is then flat by construction, not because λ does not matter.
#
# ## Held-out metrics per λ (SRPO Fig. 7)

# %%
params = SamplingParams(max_new_tokens=max_new_tokens, seed=seed)
test = load_dataset(heldout)
test = test[:heldout_limit] if heldout_limit else test
results, eval_s = heldout_variants(
    model, {lam: (f"λ = {lam:g}", results_dir / f"lambda_{lam:g}" / "adapter", results_dir / "eval" / f"lambda_{lam:g}")
            for lam in lambdas},
    test, judge=judge_obj, params=params, n_boot=n_boot, seed=seed, force_verdict=force_verdict)

# %%
table = plots.rates_table({f"λ = {lam:g}": r for lam, r in results.items()}, ("ACC", "SR", "ER", "SER"),
                          index_names=("λ",)).rename(columns={"ACC": "verdict accuracy", "n": "n (held-out samples)"})
table.insert(1, "no verdict line", [r["unparseable"] for r in results.values()])
table.insert(2, "forced", [r["forced"] for r in results.values()])
table.insert(3, "verdicts unsafe / safe / none", ["{unsafe} / {safe} / {none}".format(**r["predicted"]) for r in results.values()])
display(table)
long = results_frame(results, ("ACC", "SER")).rename(columns={"key": "lambda"})
long["metric"] = long["metric"].replace({"ACC": "verdict accuracy (all held-out)", "SER": "SER (judged IRS paths)"})
fig = plots.sweep_figure(long, x="lambda", chosen=paper_lambda,
                         title=f"SRPO: influence of λ ({heldout}, n = {len(test)})")
plots.savefig(fig, profile, "06_lambda");
book_results.write_table(profile, "06", "lambda", table)
book_results.record(profile, [e for lam, r in results.items() for e in book_results.metric_entries(
    "06", f"λ = {lam:g}", r["metrics"], names={"ACC": "verdict accuracy" + (" (forced)" if force_verdict else ""),
                                               "SER": "SER"}, model=model, judge=r["judge"])]);

# %% [markdown]
# ## What the numbers say

# %%
best = max(results, key=lambda lam: -1 if results[lam]["metrics"]["ACC"]["value"] is None
           else results[lam]["metrics"]["ACC"]["value"])
ref = results.get(paper_lambda, results[best])
others = [lam for lam in results if lam != paper_lambda]
verdicts = {lam: compare(results[lam]["metrics"]["ACC"], ref["metrics"]["ACC"]) for lam in others}
display(Markdown(
    f"Highest verdict accuracy at λ = {best:g}. Against λ = {paper_lambda:g}: "
    + ", ".join(f"λ = {lam:g} {v}" for lam, v in verdicts.items())
    + (". No λ is distinguishable from the paper's choice on these samples."
       if all(v in ("indistinguishable", "undefined") for v in verdicts.values()) else ".")))

# %% [markdown]
# ## Paired comparisons between λ values
#
# Every λ answered the same held-out items, so each λ is compared item by item with a reference:
# λ = 0 when the sweep has it — J_ref alone on the same samples, batches and steps, the control
# that separates "more training on the explored samples" from J_align — else the paper's λ.
# The difference in verdict accuracy has a paired bootstrap 95% interval and an exact McNemar
# test (`ssui_lib.eval.paired`), for the model's own verdicts and, with `force_verdict`, the forced ones.

# %%
control = 0.0 if 0.0 in results else paper_lambda if paper_lambda in results else lambdas[0]
readings = ("unforced", "forced") if force_verdict else ("unforced",)
lam_items = {f"λ = {lam:g}": item_verdicts(test, results_dir / "eval" / f"lambda_{lam:g}") for lam in results}
lam_paired = pd.concat([paired.comparison_frame(al, name, [f"λ = {control:g}"], n_boot=n_boot, seed=seed).assign(reading=rd)
                        for rd in readings
                        for al in [paired.align({n: it[f"correct_{rd}"].to_dict() for n, it in lam_items.items()})]
                        for name in lam_items if name != f"λ = {control:g}"]
                       or [pd.DataFrame(columns=paired.COLUMNS + ["reading"])], ignore_index=True)
display(lam_paired.style.format({c: "{:+.1%}" for c in ("diff", "lo", "hi")} | {"acc_a": "{:.1%}", "acc_b": "{:.1%}",
                                                                                 "p": "{:.3g}"}).hide(axis="index"))
display(Markdown("\n".join(f"* {row['reading']}: " + paired.describe(row) for _, row in lam_paired.iterrows())))
book_results.write_table(profile, "06", "paired", lam_paired, index=False)
judge_name = next(iter(results.values()))["judge"]
book_results.record(profile, [e for _, row in lam_paired.iterrows() for e in (
    book_results.entry("06", f"verdict accuracy difference ({row['reading']})", f"{row['a']} - {row['b']}", row["diff"],
                       interval=[row["lo"], row["hi"]], n=row["n"], model=model, judge=judge_name),
    book_results.entry("06", f"McNemar exact p ({row['reading']})", f"{row['a']} - {row['b']}", row["p"], n=row["n"],
                       model=model, judge=judge_name))]);

# %% [markdown]
# Read this figure with its error bars, and the "verdicts" column of the table: a model that
# answers "safe" to everything scores the share of benign twins whatever λ is. Under the `smoke` profile each λ is a few LoRA steps of a
# 135M text-only model on a few explored samples, evaluated on a few held-out ones: the intervals
# span tens of points, and a few steps at a small learning rate barely move the adapter away from
# the base model, so the curve is expected to be flat within noise. SRPO's trade-off — worse at
# λ = 0.1 and at large λ, best at 0.3 — is a claim about Qwen2.5-VL-7B trained on the full SSUI
# set; the `paper` profile runs that sweep.

# %%
print(f"training: {sum(train_s.values()):.0f} s; held-out evaluation: {sum(eval_s.values()):.0f} s; "
      + "; ".join(f"λ = {lam:g}: {train_s[lam]:.0f} + {eval_s[lam]:.0f} s" for lam in lambdas))


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
show("06.1")

# %%
answer = ...  # your answer (a value, or a function where the exercise asks for one)
check("06.1", answer)

# %%
show("06.2")

# %%
answer = ...  # your answer (a value, or a function where the exercise asks for one)
check("06.2", answer)
