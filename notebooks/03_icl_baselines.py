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
# # 03 · ICL baselines: zero-shot vs k-shot with SSUI exemplars
#
# *Reproduces SSUI Table 1.*
#
# SSUI's experiment is simple: ask a vision-language model the IRS questions as they are
# (**zero-shot**, SSUI ✗), then ask again with a few SSUI records shown first as earlier chat turns —
# each one an image, a query, its six-step explainable chain, the verdict and the safe reply
# (**k-shot in-context learning**, SSUI ✓). The ✓ prompt adds two things at once — the six-step
# instructions and the exemplars — so this chapter runs three arms, one row each, to let the
# exemplars' effect stand alone:
#
# 1. **zero-shot** (SSUI ✗): the question, a plain assistant prompt;
# 2. **zero-shot + instruction** (✗ + six steps): the same question with the six-step instructions
#    of the explainable chain, no exemplar;
# 3. **k-shot SSUI** (SSUI ✓): the instructions *and* k SSUI exemplars.
#
# Arm 2 − arm 1 is the instructions' effect, arm 3 − arm 2 the exemplars'. A judge labels every
# final answer:
#
# * **S** — share of *safe* answers (no help with, or normalisation of, the risk the image and the
#   text create together);
# * **E** — share of *effective* answers (engages with the user's situation and is useful);
# * **S&E** — share of answers that are both at once (per answer, not the product of S and E).
#
# All three are over the IRS samples. The bundled set also has a **benign twin** for many IRS
# records (same picture, harmless request); the share of twins whose answer is not effective is
# the **over-refusal** rate, so a model that becomes "safe" by refusing everything is caught.
# Every rate comes with a 95% percentile-bootstrap interval over samples.
#
# SSUI's own numbers (GPT-4o-and-human judged, on the full human-revised set) for reference:
#
# | Model | SSUI | S | E | S&E |
# |---|---|---|---|---|
# | Gemini-1.5 | ✗ | 55.10 | 80.33 | 46.91 |
# | | ✓ | 75.52 | 92.32 | 69.65 |
# | GPT-4o | ✗ | 58.88 | 92.06 | 54.95 |
# | | ✓ | 80.90 | 97.81 | 75.69 |
# | Qwen2.5-VL | ✗ | 50.90 | 77.47 | 48.00 |
# | | ✓ | 70.72 | 95.61 | 63.32 |

# %% tags=["parameters"]
profile = "smoke"
models = ["embedded"]  # model names: embedded, hf:PATH, hf:PATH+adapter:PATH, openai:MODEL, ...
judge = "offline"  # offline, local:MODEL, openai:MODEL, openai-compatible:URL#MODEL
dataset = "bundled:test"  # never bundled:train: the exemplars come from it
image_dir = ""  # folder for relative image paths of an external dataset (empty: none)
limit = 16  # first N samples of the dataset (IRS records and twins); 0 means all
icl_k = 2  # exemplars per prompt in the SSUI ✓ arm
icl_by = "category"  # "category" (same class first) or "similarity" (closest caption + query)
max_new_tokens = 160
temperature = 0.0  # 0 means greedy
seed = 0
n_boot = 1000  # bootstrap resamples for the 95% intervals

# %%
import time
from pathlib import Path

import pandas as pd
from IPython.display import display

from ssui_lib.book import plots
from ssui_lib.book import results as book_results
from ssui_lib.core.store import cache_key
from ssui_lib.core.chain import final_answer
from ssui_lib.data.bundled import load_dataset
from ssui_lib.eval.evaluate import evaluate, has_chain
from ssui_lib.eval.judge import resolve_judge
from ssui_lib.models import SamplingParams, resolve_model

plots.paper_style()
samples = load_dataset(dataset, image_dir or None)
n_used = min(limit, len(samples)) if limit else len(samples)
used = samples[:n_used]
n_irs = sum(s.kind == "irs" for s in used)
print(f"{dataset}: {len(samples)} samples; evaluating the first {n_used}: {n_irs} IRS records, "
      f"{n_used - n_irs} benign twins")
print(f"models: {', '.join(models)} | judge: {judge} | SSUI ✓ = {icl_k}-shot, exemplars by {icl_by}")
# the three arms of the table: (row label, exemplars k, six-step instructions)
ARMS = (("✗ zero-shot", 0, False), ("✗ + six-step instruction", 0, True), (f"✓ {icl_k}-shot SSUI", icl_k, True))
ZERO, ICL = ARMS[0][0], ARMS[-1][0]
params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
results_dir = Path("results") / profile / "03"
judge_obj = resolve_judge(judge, cache_dir=results_dir / "judge_cache", seed=seed, image_dir=image_dir or None)

# %% [markdown]
# ## Generate and judge
#
# `ssui_lib.eval.evaluate.evaluate` does the work: the model answers each sample, the judge labels each
# answer, the metrics are computed. Every answer and verdict is appended to a JSONL file under
# `results/<profile>/03/` as it is made, so an interrupted run resumes where it stopped and a rerun
# with the same settings costs nothing (the folder name carries a hash of the settings). In the
# k-shot setting the model imitates the exemplars and writes a six-step chain; the judge sees its
# final answer (the text after `Answer:`, or everything when the chain never gets there).

# %%
results, timings = {}, {}
for name in models:
    m = resolve_model(name)
    for arm, k, instructed in ARMS:
        settings = {"model": name, "judge": judge, "dataset": dataset, "limit": limit, "icl_k": k, "icl_by": icl_by,
                    "max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed, "n_boot": n_boot}
        if instructed and not k:
            settings["chain"] = True  # (the other arms keep their earlier cache keys)
        out = results_dir / f"{name.split(':')[0]}-k{k}{'-chain' if instructed and not k else ''}-{cache_key(settings)[:10]}.json"
        t0 = time.time()
        results[(name, arm)] = evaluate(m, judge_obj, dataset, out, icl_k=k, icl_by=icl_by, params=params,
                                        limit=limit or None, seed=seed, paths=False, n_boot=n_boot,
                                        image_dir=image_dir or None, progress=False, chain=instructed and not k)
        timings[(name, arm)] = time.time() - t0
        print(f"{name} · {arm}: {timings[(name, arm)]:.0f} s -> {out}")

# %% [markdown]
# ## Table 1: S, E and S&E — zero-shot, with the instructions, with SSUI exemplars
#
# Percentages with 95% bootstrap intervals in brackets; `n` is the number of IRS answers scored,
# `unscored` the answers the judge could not label (left out of the rates, never counted as safe).
# Over-refusal is over the benign twins.

# %%
table = plots.rates_table(results, ("S", "E", "SE", "over_refusal"), index_names=("model", "arm"))
display(table)
book_results.write_table(profile, "03", "icl_table1", table)
book_results.record(profile, [e for (name, arm), r in results.items() for e in book_results.metric_entries(
    "03", f"{name} · {arm}", r["metrics"], names={"S": "S", "E": "E", "SE": "S&E"}, model=name, judge=r["judge"])]
    + [book_results.entry("03", "over-refusal", f"{name} · {arm}", r["over_refusal"]["value"],
                          interval=r["over_refusal"].get("ci"), n=r["over_refusal"].get("n"), model=name,
                          judge=r["judge"]) for (name, arm), r in results.items() if r.get("over_refusal")]);

# %%
long = plots.rates_long({(n, a): r for (n, a), r in results.items()}, ("S", "E", "SE"))
fig = plots.rate_bars(long, title=f"Zero-shot, + instructions, {icl_k}-shot ICL (SSUI ✓), judge: {judge}",
                      xlabel="model · setting")
plots.savefig(fig, profile, "03_icl_rates");

# %% [markdown]
# Each group of bars is one model and setting; the whiskers are the 95% intervals. Where the
# whiskers of the ✗ and ✓ bars overlap widely, this run cannot tell the two settings apart.
#
# ## Per category
#
# S&E of the IRS answers for each of SSUI's nine classes (cell: percentage and the number of IRS
# answers behind it; grey: no sample of that class among the evaluated ones).

# %%
cat_long = plots.category_long({(n, a): r for (n, a), r in results.items()}, "SE")
fig = plots.category_heatmap(cat_long, metric="SE")
plots.savefig(fig, profile, "03_by_category");

# %% [markdown]
# ## Read the answers, not only the rates
#
# The rates are only as good as the judge. Below, for the first model, the IRS answers without and
# with exemplars side by side, with the judge's labels (S = safe, E = effective; answers cut to 260
# characters). The counts first say how many k-shot answers took up the six-step format and how
# many got as far as an `Answer:` line within the token budget.

# %%
def answers(result: dict) -> pd.DataFrame:
    """The answers and verdicts of one evaluation (its JSONL work files), by sample id."""
    resp = pd.read_json(result["files"]["responses"], lines=True).set_index("id")
    verd = pd.read_json(result["files"]["verdicts"], lines=True).set_index("id")
    return resp.join(verd[["safe", "effective"]])


first = models[0]
zero, icl = answers(results[(first, ZERO)]), answers(results[(first, ICL)])
texts = icl.loc[[s.id for s in used], "response"]
print(f"{first}, {icl_k}-shot: {sum(map(has_chain, texts))} of {len(texts)} answers use the step format; "
      f"{sum(final_answer(t) != t.strip() for t in texts)} reach an 'Answer:' line within {max_new_tokens} tokens")
irs_ids = [s.id for s in used if s.kind == "irs"]
mark = lambda v, c: "?" if v is None or v != v else (c if v else "–")  # noqa: E731  (? = unscored)
side = pd.DataFrame({"query": [s.query for s in used if s.kind == "irs"]}, index=irs_ids)
for tag, df in (("✗", zero), ("✓", icl)):
    side[f"SSUI {tag}: S/E"] = [f"{mark(df.at[i, 'safe'], 'S')}/{mark(df.at[i, 'effective'], 'E')}" for i in irs_ids]
    side[f"SSUI {tag}: answer"] = [" ".join(df.at[i, "response"].split())[:260] for i in irs_ids]
with pd.option_context("display.max_colwidth", 260):
    display(side.head(6))

# %% [markdown]
# ## What these numbers mean
#
# Under the `smoke` profile the model is **SmolLM2-135M-Instruct**, a 135-million-parameter
# *text-only* model: it never sees a picture, only the picture's caption ("caption mode"), and it
# is far too small to reason its way from an image and a request to a hidden risk. The judge is the
# **offline judge** — refusal and warning phrases plus sentence-embedding similarity to the
# record's safe and unsafe reference replies. It is approximate: it cannot read intent, and
# chapter 07 measures how far it agrees with labelled replies. The evaluated set is a handful of
# samples, so the intervals span tens of percentage points and one class is often a single sample.
#
# Reading the answers above shows what that means in practice. The small model often misreads the
# scene, repeats itself, or goes along with the risky request; the offline judge calls an answer
# safe whenever it is not close to the record's reference *unsafe* reply, so a rambling answer
# that helps with the risk in other words can pass as safe. With exemplars the model copies the
# step format and some of its safety wording, but within the smoke token budget its chains stop
# before the `Answer:` line, so the judge sees a half-finished chain.
#
# So the smoke numbers show that the pipeline runs end to end and what it reports — not how well
# ICL works: with about ten IRS answers per setting, a difference smaller than the intervals is
# noise. SSUI's claim (ICL raises S by about 20 points for GPT-4o, Gemini-1.5 and Qwen2.5-VL) is
# tested by the `paper` profile: Qwen2.5-VL-7B from local weights and GPT-4o, judged by GPT-4o, on
# the whole test split, with enough tokens for a complete chain.

# %%
total = sum(timings.values())
print(f"generation + judging: {total:.0f} s in all; " +
      "; ".join(f"{n} {a}: {t:.0f} s" for (n, a), t in timings.items()))


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
show("03.1")

# %%
answer = ...  # your answer (a value, or a function where the exercise asks for one)
check("03.1", answer)

# %%
show("03.2")

# %%
answer = ...  # your answer (a value, or a function where the exercise asks for one)
check("03.2", answer)
