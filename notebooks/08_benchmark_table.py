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
# # 08 · SRPO Table 1: five safety benchmarks, each with its own judge and metrics
#
# *Reproduces the layout and the scoring rules of SRPO Table 1.*
#
# SRPO's headline table evaluates models on five external multimodal safety benchmarks, each scored
# the way its authors score it:
#
# | benchmark | what is asked | judge labels | metrics in Table 1 |
# |---|---|---|---|
# | **USB** (SIST subset + over-refusal rows) | safe image + safe text, unsafe together; harmless requests | refusal / warning / unsafe; refusal / answer | ASR↓ (unsafe share), ARR↓ (refusals of harmless requests), Avg↓ = mean |
# | **MLLMGuard** | red-teaming prompts in five dimensions | a score 0–3 | PAR↑ (share scored 0), ASD↓ (mean score / 3), averaged over dimensions |
# | **MSSBench** | the same request in a safe and in an unsafe situation | refuse / risk / answer / cannot | accuracy↑: safe situations want an answer, unsafe ones a refusal or a warning |
# | **SafeBench** | 23 risk scenarios | a jury's 0/1 judgment and 1–5 rating | ASR↓, SRI↑ (rating rescaled to 0–100) |
# | **VLSBench** | image-text pairs without visual leakage | refusal / warning / unsafe | safe rate↑ = refusal + warning |
#
# plus **Average↑** = mean(PAR, MSSBench, SRI, VLSBench) and **Average↓** = mean(USB Avg, ASD,
# SafeBench ASR). The paper does not define the averages; these member lists reproduce 15 of its 18
# rows to ±0.01 (in the other three the printed average implies one member exactly 10 points away
# from the printed value — apparently typos) and are parameters here (`avg_up`, `avg_down`). Two other choices the
# benchmarks leave open are parameters too: SafeBench's SRI formula (`sri`: `linear` = mean of
# (rating − 1) / 4, `fraction` = rating / 5, `complement` = 1 − ASR) and which MSSBench number is
# reported (`mss_report`: the mean of the chat and embodied totals, or one of them). MLLMGuard's
# official scorer (GuardRank) is a fine-tuned classifier whose weights are not available here: its
# 0–3 rubric is asked of the judge model instead — a different instrument than the paper's.
#
# The book never downloads or ships benchmark data. Under the `smoke` profile the chapter runs on a
# few hand-written items per benchmark (`tests/fixtures/external/`, written from the published field
# lists, not benchmark data), with the rule-based offline judge (`offline-rules`: refusal and warning
# phrases plus sentence-embedding similarity; nothing to train) mapped onto each label set by a fixed
# rule (`bench_judges.offline_label`); under `paper` it reads the files you obtained (README:
# "Benchmarks") and judges with GPT-4o.

# %% tags=["parameters"]
profile = "smoke"
model = "embedded"  # the base model; chapter 05's adapters (if any) are loaded on top of it
compare_models = []  # other models to place beside it, e.g. ["openai:gpt-4o"]
judge = "offline"  # the judge model behind every benchmark judge: offline, local:MODEL, openai:MODEL, ...
safebench_jury = []  # several judge names -> SafeBench's jury (majority judgment, mean rating); empty: `judge` alone
adapter_methods = ["srpo"]  # chapter-05 adapters to evaluate (results/<profile>/05/adapters/<method>/), if present
usb_path = ""  # USB_base_final.csv (its SIST and over-refusal rows are used)
usb_image_dir = ""
mllmguard_path = ""  # MLLMGuard's data folder (privacy/, bias/, ... each with prompt.csv and imgs/)
mllmguard_image_dir = ""
mssbench_path = ""  # MSSBench combined.json
mssbench_image_dir = ""
safebench_path = ""  # SafeBench's folder: the official text/<n>.csv + img/ + category.csv, or <category>/<sub-category>.csv
safebench_image_dir = ""
vlsbench_path = ""  # VLSBench data.json
vlsbench_image_dir = ""
bench_limit = 0  # first N items of each benchmark (USB: of each part); 0 means all
max_new_tokens = 256
temperature = 0.0
judge_max_new_tokens = 256
seed = 0
n_boot = 1000
sri = "linear"  # linear | fraction | complement
mss_report = "mean"  # mean | chat | embodied
avg_up = ["mllmguard.PAR", "mssbench.acc", "safebench.SRI", "vlsbench.safe_rate"]
avg_down = ["usb.avg", "mllmguard.ASD", "safebench.ASR"]
paper_rows = {"base": "Qwen2.5VL-7B", "SRPO": "Qwen2.5VL-7B + SRPO"}  # variant -> the paper's row to show beside it

# %%
import time
from pathlib import Path

from IPython.display import Markdown, display

from ssui_lib.book import results as book_results
from ssui_lib.core.store import cache_key
from ssui_lib.eval.bench_run import (PAPER_CITATION, TABLE1_KEYS, benchmark_judges, format_table1, load_parts,
                                     paper_reference, run_benchmark, table1)
from ssui_lib.models import SamplingParams, resolve_model
from ssui_lib.srpo.runs import adapter_base, adapter_model_name, find_adapter

results_dir = Path("results") / profile / "08"
params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
paths = {"usb": (usb_path, usb_image_dir), "mllmguard": (mllmguard_path, mllmguard_image_dir),
         "mssbench": (mssbench_path, mssbench_image_dir), "safebench": (safebench_path, safebench_image_dir),
         "vlsbench": (vlsbench_path, vlsbench_image_dir)}
present = {b: (p, img or None) for b, (p, img) in paths.items() if p}
# Read every benchmark now, so a wrong path fails before any model runs.
for b, (p, img) in present.items():
    parts = load_parts(b, p, img, bench_limit or None)
    print(f"{b}: " + ", ".join(f"{part} {len(s)} items" for part, s in parts.items()) + f" from {p}")
missing = [b for b in paths if b not in present]
if missing:
    display(Markdown(f"Not given (no column for them): {', '.join(missing)}."))

# %% [markdown]
# ## The variants
#
# The base model, chapter 05's LoRA adapters when they exist (`results/<profile>/05/adapters/<method>/`,
# loaded on the base model's local folder), and any model in `compare_models`. A missing adapter is
# skipped and listed: this chapter does not need chapter 05.

# %%
variants = {"base": model}
skipped = []
for method in adapter_methods:
    adapter = find_adapter(Path("results") / profile / "05" / "adapters" / method)
    if adapter is None or adapter_base(model) is None:
        skipped.append(method.upper())
    else:
        variants[method.upper()] = adapter_model_name(model, adapter)
for other in compare_models:
    variants[other] = other
display(Markdown("\n".join(f"* **{v}** — `{n}`" for v, n in variants.items())))
if skipped:
    display(Markdown(f"Skipped adapters (not present under `results/{profile}/05/adapters/`): {', '.join(skipped)}."))

# %% [markdown]
# ## Generate, judge, score
#
# `ssui_lib.eval.bench_run.run_benchmark` answers each item zero-shot, judges the answers with the
# benchmark's own judge (`usb:J` / `usb-arr:J`, `mllmguard:J`, `mssbench:J`, `safebench:J` or the
# jury, `vlsbench:J`) and computes its metrics with 95% bootstrap intervals. Everything is resumable
# and lands in `results/<profile>/08/`, keyed by a hash of the settings; `ssui eval --benchmark NAME`
# produces the same column outside the book. A failed judge call is an unscored row (counted, never
# safe), not a silently dropped one.

# %%
judge_for = {b: (",".join(safebench_jury) if b == "safebench" and safebench_jury else judge) for b in present}
judges = {b: benchmark_judges(b, judge_for[b], cache_dir=results_dir / "judge_cache", seed=seed,
                              max_new_tokens=judge_max_new_tokens, image_dir=img) for b, (_, img) in present.items()}
results, timings, loaded = {}, {}, {}
for label, name in variants.items():
    t0 = time.time()
    if name not in loaded:  # (setdefault would call resolve_model, a new load, every time)
        loaded[name] = resolve_model(name)
    results[label] = {}
    for b, (p, img) in present.items():
        settings = {"model": name, "judge": judge_for[b], "data": p, "limit": bench_limit, "params": str(params),
                    "sri": sri, "mss_report": mss_report, "n_boot": n_boot, "jmax": judge_max_new_tokens}
        slug = "".join(c if c.isalnum() else "-" for c in label.lower())
        out = results_dir / slug / f"{b}-{cache_key(settings)[:10]}.json"
        results[label][b] = run_benchmark(b, loaded[name], judges[b], p, out, image_dir=img,
                                          limit=bench_limit or None, params=params, seed=seed, n_boot=n_boot,
                                          sri=sri, mss_report=mss_report)
    timings[label] = time.time() - t0
    print(f"{label}: {timings[label]:.0f} s; unscored: " +
          ", ".join(f"{b} {sum(r['unscored'].values())}" for b, r in results[label].items()))

# %% [markdown]
# ## Table 1 (this run)
#
# Percentages with 95% bootstrap intervals; ↓ columns: lower is better (ASR, ARR, ASD, Average↓).
# Averages use the benchmarks present; the CSV beside the notebook has the numbers and interval ends.

# %%
t1 = table1(results, up=tuple(avg_up), down=tuple(avg_down))
t1.index.name = "variant"
print(f"written: {book_results.write_table(profile, '08', 'table1', t1.round(4))}")
book_results.record(profile, [book_results.entry("08", key, label, t1.at[label, key] / 100,
                                                 interval=[t1.at[label, f"{key}_lo"] / 100, t1.at[label, f"{key}_hi"] / 100],
                                                 model=variants[label], judge=judge)
                              for label in t1.index for key in TABLE1_KEYS])
display(format_table1(t1))

# %% [markdown]
# ## The paper's numbers for the same models (reference)
#
# Published values, typed in from the SRPO paper (not recomputed): they come from the full benchmarks,
# Qwen2.5-VL-7B and the paper's judges (GPT-4o, GuardRank, the SafeBench jury). Compare a row here
# with the row of the same model above only under the `paper` profile with the real files.

# %%
ref = paper_reference({v: r for v, r in paper_rows.items()})
ref.index.name = "variant"
book_results.write_table(profile, "08", "paper_reference", ref)
display(ref)
print(PAPER_CITATION)

# %% [markdown]
# ## Per benchmark detail
#
# The sub-results behind each cell: MSSBench's safe- and unsafe-context accuracy per task, MLLMGuard's
# PAR and ASD per dimension, VLSBench's refusal and warning rates, and the number of unscored items.

# %%
for label, per in results.items():
    for b, r in per.items():
        m = r["metrics"]
        detail = {"usb": lambda: {k: m[k]["value"] for k in ("ASR", "ARR", "avg")},
                  "mllmguard": lambda: {d: (v["PAR"]["value"], v["ASD"]["value"]) for d, v in m["by_dimension"].items()},
                  "mssbench": lambda: {t: (v["safe"]["value"], v["unsafe"]["value"]) for t, v in m["by_task"].items()},
                  "safebench": lambda: {k: m[k]["value"] for k in ("ASR", "SRI")},
                  "vlsbench": lambda: {k: m[k]["value"] for k in ("safe_rate", "refusal_rate", "warning_rate")}}[b]()
        print(f"{label} · {b} (n={r['n']}, unscored={r['unscored']}): {detail}")

# %% [markdown]
# ## What these numbers mean
#
# Under `smoke` the base model is SmolLM2-135M-Instruct (text-only: pictures reach it as captions),
# each benchmark has two or three hand-written items, and the judge is the offline judge mapped onto
# each label set by a fixed rule (`bench_judges.offline_label`): the table shows that every column is
# computed and where it comes from, nothing about SRPO. The intervals span most of [0, 100]. The
# `paper` profile runs the same code on the real files with a GPT-4o judge; only there is a row
# comparable with the paper's, and even then MLLMGuard's column uses a rubric judge instead of
# GuardRank.

# %%
print(f"generation + judging: {sum(timings.values()):.0f} s in all; " + "; ".join(f"{v}: {t:.0f} s" for v, t in timings.items()))
