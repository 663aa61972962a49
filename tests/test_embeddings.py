"""Sentence embeddings: the in-process table, the disk cache of persisted texts (keyed by model and
text, read back instead of re-encoded), corrupt cache entries, argument checks. The encoder is
replaced by a deterministic stand-in except in the one test that needs MiniLM."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.data import embeddings as emb


def fake_vector(text: str) -> np.ndarray:
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    v = np.random.default_rng(seed).normal(size=emb.DIM).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def fake_encoder(monkeypatch):
    calls: list[list[str]] = []

    def encode(texts, batch_size):
        calls.append(list(texts))
        return np.stack([fake_vector(t) for t in texts])

    monkeypatch.setattr(emb, "_encode", encode)
    emb.forget()
    emb._disk_cache.cache_clear()
    yield calls
    emb.forget()
    emb._disk_cache.cache_clear()


def test_each_distinct_text_encoded_once_per_process(fake_encoder):
    got = emb.embed_texts(["a b", "c d", "a b"])
    assert got.shape == (3, emb.DIM) and got.dtype == np.float32
    assert np.array_equal(got[0], got[2]) and fake_encoder == [["a b", "c d"]]
    emb.embed_texts(["c d", "e f"])
    assert fake_encoder[-1] == ["e f"]
    assert emb.embed_texts([]).shape == (0, emb.DIM)
    assert emb.forget() == 3 and emb.forget() == 0


def test_persisted_texts_are_read_back_from_disk(fake_encoder, tmp_path):
    first = emb.embed_texts(["a safe reply.", "a warning."], persist=True, cache_dir=tmp_path)
    assert fake_encoder == [["a safe reply.", "a warning."]]
    lines = (tmp_path / "minilm-l6-v2.jsonl").read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == [emb.text_key("a safe reply."), emb.text_key("a warning.")]
    emb.forget()  # a new process: only the disk remains
    emb._disk_cache.cache_clear()
    again = emb.embed_texts(["a warning.", "a safe reply.", "new text"], persist=True, cache_dir=tmp_path)
    assert fake_encoder[-1] == ["new text"]  # the two stored ones were not encoded again
    assert np.array_equal(again[0], first[1]) and np.array_equal(again[1], first[0])
    emb.forget()
    emb.embed_texts(["not persisted"], cache_dir=tmp_path)
    assert len((tmp_path / "minilm-l6-v2.jsonl").read_text().splitlines()) == 3
    assert emb.text_key("x") != emb.text_key("y")


def test_corrupt_cache_entry_and_bad_arguments(fake_encoder, tmp_path):
    for value, msg in (("AAAAAA==", "stored embedding has 1 values, expected 384"),  # 4 bytes: one float
                       ("AAAA", "not a stored embedding"), ("***", "not a stored embedding")):
        emb._disk_cache.cache_clear()
        (tmp_path / "minilm-l6-v2.jsonl").write_text(json.dumps({"key": emb.text_key("t"), "value": value}) + "\n")
        with pytest.raises(SSUIError, match=msg):
            emb.embed_texts(["t"], persist=True, cache_dir=tmp_path)
    with pytest.raises(SSUIError, match="batch_size"):
        emb.embed_texts(["t"], batch_size=0)
    with pytest.raises(SSUIError, match="expected strings"):
        emb.embed_texts(["t", 3])


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SSUI_CACHE_DIR", str(tmp_path))
    assert emb.embedding_cache_dir() == tmp_path / "embeddings"


def test_minilm_vectors_are_unit_length_and_deterministic(tmp_path):
    emb.forget()
    v = emb.embed_texts(["Please keep the ladder away from power lines.", "Go to the top rung."])
    assert v.shape == (2, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    emb.forget()
    assert np.allclose(emb.embed_texts(["Go to the top rung."])[0], v[1], atol=1e-6)
    assert float(v[0] @ v[1]) < 0.9
