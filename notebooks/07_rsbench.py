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
# # 07 · RSBench and the safety benchmark table
#
# *Reproduces SRPO Eq. 10–11, Fig. 5 and the layout of SRPO Table 1.*
#
# Most safety benchmarks judge only a model's final answer. SRPO's **RSBench** judges the
# *reasoning path* — the six-step chain a model writes before it answers — because a chain can
# talk itself into helping with a risk even when it ends in a careful sentence, and a good chain is
# what SRPO trains. A judge labels each path with two indicators: f_h = 1 if the path is safe and
# f_r = 1 if it is effective (useful). Over N paths (SRPO Eq. 10–11):
#
# * **SR** = (1/N) Σ f_h — safety rate;
# * **ER** = (1/N) Σ f_r — effectiveness rate;
# * **SER** = (1/N) Σ f_h · f_r — the share of paths that are safe *and* effective at once.
#
# Each is computed over the IRS samples with a 95% bootstrap interval. The variants compared:
#
# * **base** — the model asked for the six-step chain with no examples (zero-shot chain prompt);
# * **ICL k-shot** — the same with k SSUI exemplars shown first (chapter 03's SSUI ✓ setting);
# * **SFT, DPO, ORPO, SRPO** — the LoRA adapters chapter 05 trained on this model, when they exist;
# * any other models named in `compare_models` (SRPO Fig. 5 compares with GPT-4o and others).

# %% [markdown]
# RSBench's rates (SRPO §4, Eq. 10–11): f_h(i) = 1 when response i is harmless (safe), f_r(j) = 1 when it is effective; N counts every response, so an unscored one is neither.
#
# $$
# SR = \frac{1}{N} \sum_{i=1}^{N_h} f_h(i), \qquad ER = \frac{1}{N} \sum_{j=1}^{N_r} f_r(j) \tag{10}
# $$
#
# $$
# SER = \frac{1}{N} \sum_{k=1}^{N} \big[f_h(k) \cdot f_r(k)\big] \tag{11}
# $$

# %% tags=["parameters"]
profile = "smoke"
model = "embedded"  # the base model; chapter 05's adapters are loaded on top of it
compare_models = []  # other models to place beside it, e.g. ["openai:gpt-4o"]
judge = "offline"  # offline, local:MODEL, openai:MODEL, openai-compatible:URL#MODEL
dataset = "bundled:test"  # RSBench questions (never bundled:train: exemplars and training data come from it)
image_dir = ""
limit = 16  # first N samples (IRS records and twins); 0 means all
icl_k = 2
icl_by = "category"
adapter_methods = ["sft", "dpo", "orpo", "srpo"]  # looked up under results/<profile>/05/adapters/<method>/
max_new_tokens = 192
temperature = 0.0  # 0 means greedy
seed = 0
n_boot = 1000
# External safety benchmarks (SRPO Table 1): paths to data you obtained yourself (empty: not present)
siuo_gen_path = ""  # SIUO siuo_gen.json
siuo_image_dir = ""
vlsbench_path = ""  # VLSBench data.json
vlsbench_image_dir = ""
mssbench_path = ""  # MSSBench combined.json
mssbench_image_dir = ""
bench_limit = 0  # first N samples of each benchmark; 0 means all
bench_variants = ["base", "SRPO"]  # variants run on the external benchmarks (empty list: every variant)

# %%
import json
import time
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from ssui_lib.book import plots
from ssui_lib.book import results as book_results
from ssui_lib.core.store import cache_key
from ssui_lib.data.bundled import load_dataset
from ssui_lib.eval.evaluate import evaluate
from ssui_lib.eval.judge import resolve_judge
from ssui_lib.eval.judge_validation import (agreement_table, format_agreement, judge_validation, load_validation,
                                            ranking_table)
from ssui_lib.models import SamplingParams, resolve_model
from ssui_lib.srpo.runs import adapter_base, adapter_model_name, find_adapter

plots.paper_style()
results_dir = Path("results") / profile / "07"
params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
samples = load_dataset(dataset, image_dir or None)
used = samples[:limit] if limit else samples
print(f"{dataset}: {len(samples)} samples; RSBench on the first {len(used)} "
      f"({sum(s.kind == 'irs' for s in used)} IRS records, {sum(s.kind == 'twin' for s in used)} benign twins)")

# The external benchmarks are read now, so a wrong path fails before any model runs.
BENCHMARKS = {"SIUO": ("siuo-gen", siuo_gen_path, siuo_image_dir), "VLSBench": ("vlsbench", vlsbench_path, vlsbench_image_dir),
              "MSSBench": ("mssbench", mssbench_path, mssbench_image_dir)}
bench_data = {b: (f"{kind}:{path}", img or None, load_dataset(f"{kind}:{path}", img or None))
              for b, (kind, path, img) in BENCHMARKS.items() if path}
for b, (spec, _, data) in bench_data.items():
    print(f"{b}: {len(data)} samples from {spec}")
# the judge name resolved once per image folder (a model judge that looks at pictures finds them there)
judges = {img: resolve_judge(judge, cache_dir=results_dir / "judge_cache", seed=seed, image_dir=img)
          for img in dict.fromkeys([image_dir or None, *(img for _, img, _ in bench_data.values())])}

# %% [markdown]
# ## The variants
#
# Chapter 05 saves its adapters under `results/<profile>/05/adapters/<method>/`. An adapter is
# loaded on top of the base model's local folder (`hf:<base>+adapter:<adapter>`); for the embedded
# model that folder is its float32 copy. Missing adapters are skipped and listed.

# %%
def training_note(adapter: Path) -> str:
    """How much an adapter was trained, from chapter 05's summary.json when it is there."""
    for f in (adapter / "summary.json", adapter.parent / "summary.json"):
        if f.is_file():
            s = json.loads(f.read_text())
            return f" (trained {s.get('steps', '?')} optimizer steps on {s.get('n_examples', '?')} examples)"
    return ""


variants = {"base": (model, 0), f"ICL {icl_k}-shot": (model, icl_k)}
notes, missing = {}, []
base = adapter_base(model)
for method in adapter_methods:
    adapter = find_adapter(Path("results") / profile / "05" / "adapters" / method)
    if adapter is None or base is None:
        missing.append(method.upper())
    else:
        variants[method.upper()] = (adapter_model_name(model, adapter), 0)
        notes[method.upper()] = training_note(adapter)
for other in compare_models:
    variants[other] = (other, 0)
display(Markdown("\n".join(f"* **{v}** — `{n}`" + (f", {k}-shot" if k else ", zero-shot chain") + notes.get(v, "")
                           for v, (n, k) in variants.items())))
if missing:
    why = ("not present: run chapter 05 first (`ssui book run --profile " + profile + " --chapters 05`)"
           if base is not None else f"not applicable: {model} is an API model and takes no LoRA adapter")
    display(Markdown(f"Skipped adapters: {', '.join(missing)} — {why}."))

# %% [markdown]
# ## Generate and judge
#
# `ssui_lib.eval.evaluate.evaluate` generates the answers, the reasoning paths (for the zero-shot
# variants a second generation with the chain prompt; for ICL the k-shot answers already are
# chains) and judges both — final answers for S / E / S&E, whole paths for SR / ER / SER. Outputs
# go to `results/<profile>/07/`, resumable and keyed by a hash of the settings.

# %%
def settings_out(label: str, name: str, k: int, data: str, lim: int, tag: str) -> Path:
    settings = {"model": name, "judge": judge, "dataset": data, "limit": lim, "icl_k": k, "icl_by": icl_by,
                "max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed, "n_boot": n_boot}
    slug = "".join(c if c.isalnum() else "-" for c in label.lower())
    return results_dir / tag / f"{slug}-{cache_key(settings)[:10]}.json"


rsbench, timings, loaded = {}, {}, {}
for label, (name, k) in variants.items():
    t0 = time.time()
    if name not in loaded:  # (setdefault would call resolve_model, a new load, every time)
        loaded[name] = resolve_model(name)
    rsbench[label] = evaluate(loaded[name], judges[image_dir or None], dataset, settings_out(label, name, k, dataset, limit, "rsbench"),
                              icl_k=k, icl_by=icl_by, params=params, limit=limit or None, seed=seed, paths=True,
                              n_boot=n_boot, image_dir=image_dir or None, progress=False)
    timings[label] = time.time() - t0
    print(f"{label}: {timings[label]:.0f} s; {rsbench[label]['paths_without_chain']} of {rsbench[label]['n']} "
          "paths without any step line")

# %% [markdown]
# ## RSBench: SR, ER and SER per variant (SRPO Fig. 5)

# %%
rs_table = plots.rates_table(rsbench, ("SR", "ER", "SER", "S", "E", "SE"), index_names=("variant",))
display(rs_table)
book_results.write_table(profile, "07", "rsbench", rs_table)
book_results.record(profile, [e for label, r in rsbench.items() for e in book_results.metric_entries(
    "07", label, r["metrics"], names={"SR": "SR", "ER": "ER", "SER": "SER"}, model=r["model"], judge=r["judge"])]);
fig = plots.rate_bars(plots.rates_long(rsbench, ("SR", "ER", "SER")),
                      title=f"RSBench on {dataset} (judge: {judge})", xlabel="variant")
plots.savefig(fig, profile, "07_rsbench");

# %% [markdown]
# SR / ER / SER judge the whole reasoning path; S / E / S&E (right-hand columns) judge only the
# final answer of the same variant, for comparison. A path that never produces step lines is still
# judged as the model's reasoning (the count is printed above): a model that ignores the format is
# not excused.
#
# One IRS question and the reasoning path of each variant, with the judge's labels — worth reading
# before trusting any bar above:

# %%
ex = next(s for s in used if s.kind == "irs")
print(f"{ex.id} ({ex.category.l1})\nimage: {ex.image.caption}\nquery: {ex.query}\n")
for label, res in rsbench.items():
    path = pd.read_json(res["files"]["paths"], lines=True).set_index("id").at[ex.id, "response"]
    v = pd.read_json(res["files"]["path_verdicts"], lines=True).set_index("id").loc[ex.id]
    print(f"--- {label}: safe={v['safe']}, effective={v['effective']}\n{path.strip()[:900]}\n")

# %% [markdown]
# ## Per category
#
# SER of the reasoning paths by SSUI class (cell: percentage and the number of IRS paths behind it).

# %%
fig = plots.category_heatmap(plots.category_long(rsbench, "SER"), metric="SER")
plots.savefig(fig, profile, "07_ser_by_category");

# %% [markdown]
# ## How far to trust the judge
#
# Every number above is a judge's verdict, so the judges are measured too, on responses none of
# them has seen. The validation set (`ssui_lib/data/judge_validation/responses.jsonl`) holds
# responses written by the project for the records of the **test split**, in the styles models
# really produce — bare refusal, refusal then compliance, help with a warning, partial compliance,
# off-topic, empty, a reply quoting the unsafe reply, helpful answers of many lengths, answers to
# benign twins — each labelled safe / effective by hand with a one-line reason. No judge is trained
# or tuned on it: the learned `offline` judge learns from material written from the train split
# only (`ssui_lib.eval.offline_judge`). Scored here: the learned `offline` judge, the rule-based
# `offline-rules` (the book's offline judge before it, kept for this comparison) and the chapter's
# `judge` when it is a model judge. Accuracy counts an unscored verdict as wrong; Cohen's κ is
# agreement beyond chance (1 = perfect, 0 = chance); both with 95% bootstrap intervals. The second
# table asks what a benchmark comparison needs: for pairs of responses to the same record, one correct
# (safe and effective by hand) and one not, how often does the judge score the correct one higher?
# (50% is chance; a tie counts half. The learned judge scores by its calibrated P(safe) · P(effective),
# the others by their verdicts, so they tie more.)

# %%
val_rows = load_validation()
val_tables, val_seconds = {}, {}
for name in dict.fromkeys(["offline", "offline-rules", judge]):
    val_tables[name] = judge_validation(resolve_judge(name, cache_dir=results_dir / "judge_cache", seed=seed),
                                        val_rows)
    val_seconds[name] = val_tables[name].attrs["seconds"]
val_overall = agreement_table(val_tables, n_boot=n_boot, seed=seed)
val_ranking = ranking_table(val_tables, n_boot=n_boot, seed=seed)
val_by_style = agreement_table(val_tables, by="style", n_boot=n_boot, seed=seed)
val_by_category = agreement_table(val_tables, by="category", n_boot=n_boot, seed=seed)
results_dir.mkdir(parents=True, exist_ok=True)
pd.concat([t.assign(by=b) for b, t in (("all", val_overall), ("style", val_by_style),
                                         ("category", val_by_category))]).to_csv(
    results_dir / "judge_validation.csv", index=False)
print(f"{len(val_rows)} hand-labelled responses for {len({r['record_id'] for r in val_rows})} test-split records; "
      + "; ".join(f"{n}: {t:.1f} s" for n, t in val_seconds.items()))
display(format_agreement(val_overall))
book_results.write_table(profile, "07", "judge_validation_ranking", val_ranking, index=False)
book_results.record(profile, [book_results.entry(
    "07", "judge pairwise ranking", r.judge, r.ranking, interval=[r.ranking_lo, r.ranking_hi], n=int(r.pairs),
    model=None, judge=r.judge) for r in val_ranking.itertuples()]);
display(val_ranking.assign(**{
    "correct ranked above wrong (%)": [f"{100 * v:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]" for v, lo, hi in
                                       zip(val_ranking.ranking, val_ranking.ranking_lo, val_ranking.ranking_hi)],
    "ties (%)": (100 * val_ranking.ties).round(1)})[["judge", "correct ranked above wrong (%)", "pairs", "ties (%)",
                                                     "records"]].set_index("judge"))
for _by, _t in (("overall", val_overall), ("by_style", val_by_style), ("by_category", val_by_category)):
    book_results.write_table(profile, "07", f"judge_validation_{_by}", _t, index=False)
book_results.record(profile, [book_results.entry(
    "07", f"judge {r.criterion} {stat}", r.judge, getattr(r, stat), interval=[getattr(r, f"{stat}_lo"),
                                                                            getattr(r, f"{stat}_hi")],
    n=int(r.n), model=None, judge=r.judge) for r in val_overall.itertuples() for stat in ("accuracy", "kappa")]);

# %% [markdown]
# Per response style (n is small in each row: read the intervals), then per category.

# %%
display(format_agreement(val_by_style))
display(format_agreement(val_by_category))

# %%
def _judge_line(name: str) -> str:
    rows = val_overall[val_overall.judge == name].set_index("criterion")
    return (f"**{name}**: safe {100 * rows.loc['safe', 'accuracy']:.0f}% (κ {rows.loc['safe', 'kappa']:.2f}), "
            f"effective {100 * rows.loc['effective', 'accuracy']:.0f}% (κ {rows.loc['effective', 'kappa']:.2f}), "
            f"correct above wrong in {100 * val_ranking.set_index('judge').loc[name, 'ranking']:.0f}% of pairs")


display(Markdown("On the hand-labelled validation set: " + "; ".join(_judge_line(n) for n in val_tables) + "."))

# %% [markdown]
# The offline judges read no pixels and no intent; they compare a response with the record's own
# safe and unsafe replies, its warning and its request, and look for refusal and warning phrases.
# The styles where they fail above are the ones to distrust in the tables of this book: typically
# a reply that warns and then helps with the risk anyway, or one that is safe but too thin to
# help. A model judge (the `paper` profile: GPT-4o, as in SRPO; a local model reads its verdict
# from the log-probabilities of the four answer options) is scored on the same rows when it is the
# chapter's `judge`, and should be trusted only as far as its κ here allows. The table is also
# written to `results/<profile>/07/judge_validation.csv`.
#
# ## Safety benchmarks (SRPO Table 1)
#
# SRPO Table 1 reports five external benchmarks. This book reads three of them when you have the
# data — SIUO (generation set), VLSBench and MSSBench — and reports S, E and S&E of the final
# answers (over-refusal on MSSBench's safe-situation twins), with the same judge. The benchmarks'
# own metrics (ASR, PAR, …) depend on their official scorers and are not reproduced here.

# %%
bench_results = {}
chosen = {v: variants[v] for v in (bench_variants or list(variants)) if v in variants}
for b, (spec, img, _) in bench_data.items():
    for label, (name, k) in chosen.items():
        out = settings_out(label, name, k, spec, bench_limit, f"bench-{b.lower()}")
        if name not in loaded:  # (setdefault would call resolve_model, a new load, every time)
            loaded[name] = resolve_model(name)
        bench_results[(label, b)] = evaluate(loaded[name], judges[img], spec, out, icl_k=k, icl_by=icl_by, params=params,
                                             limit=bench_limit or None, seed=seed, paths=False, n_boot=n_boot,
                                             image_dir=img, progress=False)
if bench_results:
    bench_table = plots.benchmark_table(bench_results, ("S", "E", "SE"))
    display(bench_table)
    book_results.write_table(profile, "07", "benchmarks", bench_table)
    book_results.record(profile, [e for (label, b), r in bench_results.items() for e in book_results.metric_entries(
        "07", f"{label} · {b}", r["metrics"], names={"S": "S", "E": "E", "SE": "S&E"}, model=r["model"],
        judge=r["judge"])]);
    mss = {k: r for k, r in bench_results.items() if k[1] == "MSSBench" and "over_refusal" in r}
    if mss:
        display(plots.rates_table(mss, ("over_refusal",), index_names=("variant", "benchmark")))
else:
    display(Markdown(
        "**No external benchmark data is present** (`siuo_gen_path`, `vlsbench_path` and `mssbench_path` are "
        "empty), so this table is not produced. The book never downloads or ships benchmark data: obtain "
        "each benchmark from its authors under its licence, then point the chapter at your copy, e.g.\n\n"
        "```\nssui book run --profile paper --chapters 07 \\\n"
        "  --set siuo_gen_path=/data/SIUO/siuo_gen.json --set siuo_image_dir=/data/SIUO/images \\\n"
        "  --set vlsbench_path=/data/VLSBench/data.json --set vlsbench_image_dir=/data/VLSBench \\\n"
        "  --set mssbench_path=/data/MSSBench/combined.json --set mssbench_image_dir=/data/MSSBench\n```\n\n"
        "Without an image folder, VLSBench and MSSBench run in caption mode on their own text descriptions; "
        "SIUO has none and needs its images. These benchmarks are held out: nothing in the book is tuned on them."))

# %% [markdown]
# ## What these numbers mean
#
# Under the `smoke` profile the base model is SmolLM2-135M-Instruct: 135 million parameters,
# text-only (pictures reach it as captions), judged by the approximate offline judge on about ten
# IRS questions. Asked for the six steps without examples, it ignores the format (see the count of
# paths without step lines above) and just answers; with exemplars it copies the step headings and
# much of their wording, but stops within the token budget before its verdict. The offline judge
# rewards that copied wording in path mode, so the gap between **base** and **ICL** here is largely
# a gap in *form*, not evidence of safer reasoning, and the intervals are tens of points wide. The
# adapters chapter 05 trains under `smoke` are a few LoRA steps on a few examples (listed under
# "The variants"): a difference between them and the base model says little about SRPO. The smoke run shows the pipeline and the
# shape of the comparison; SRPO's claim — Qwen2.5-SRPO gains more than 20 points in both SR and ER
# over Qwen2.5-VL — is tested by the `paper` profile.

# %%
print(f"RSBench generation + judging: {sum(timings.values()):.0f} s in all; " +
      "; ".join(f"{v}: {t:.0f} s" for v, t in timings.items()))


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
show("07.1")

# %%
answer = ...  # your answer (a value, or a function where the exercise asks for one)
check("07.1", answer)

# %%
show("07.2")

# %%
answer = ...  # your answer (a value, or a function where the exercise asks for one)
check("07.2", answer)
