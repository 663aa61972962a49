"""The content-addressed, append-only JSONL cache (ssui_lib.core.store)."""
from __future__ import annotations

import json
import threading
import warnings
from dataclasses import dataclass

import pytest
from PIL import Image

from ssui_lib.core.store import JsonlCache, cache_key, canonical_json, hash_image
from ssui_lib.core.errors import SSUIError


def _img(color=(10, 20, 30), size=(8, 6)) -> Image.Image:
    return Image.new("RGB", size, color)


# ----------------------------------------------------------------------------- keys

def test_cache_key_is_canonical():
    a = {"b": 1, "a": [1, 2, {"y": "é", "x": None}]}
    b = {"a": [1, 2, {"x": None, "y": "é"}], "b": 1}
    assert cache_key(a) == cache_key(b)
    assert len(cache_key(a)) == 64 and int(cache_key(a), 16) >= 0
    assert canonical_json(a) == '{"a":[1,2,{"x":null,"y":"é"}],"b":1}'  # ensure_ascii=False
    assert cache_key(a) != cache_key({**a, "b": 2})
    assert cache_key((1, 2)) == cache_key([1, 2])


def test_cache_key_hashes_bytes_and_images_by_content():
    assert cache_key({"x": b"abc"}) == cache_key({"x": bytearray(b"abc")})
    assert cache_key({"x": b"abc"}) != cache_key({"x": b"abd"})
    one, same, other = _img(), _img(), _img(color=(10, 20, 31))
    assert one is not same
    assert hash_image(one) == hash_image(same) != hash_image(other)
    assert cache_key({"im": one}) == cache_key({"im": same}) != cache_key({"im": other})
    assert hash_image(_img(size=(6, 8))) != hash_image(_img(size=(8, 6)))  # size is part of content
    assert hash_image(one.convert("RGBA")) != hash_image(one)  # so is the mode


def test_hash_image_survives_png_round_trip(tmp_path):
    im = Image.effect_noise((16, 16), 40).convert("RGB")
    im.save(tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as back:
        assert hash_image(back.convert("RGB")) == hash_image(im)


def test_cache_key_dataclass_and_bad_values():
    @dataclass
    class Ref:
        caption: str
        pil: object = None

    assert cache_key(Ref("c", _img())) == cache_key(Ref("c", _img()))
    assert cache_key(Ref("c", _img())) != cache_key(Ref("d", _img()))
    with pytest.raises(SSUIError, match="cache key"):
        cache_key({"x": object()})
    with pytest.raises(SSUIError, match="cache key"):
        cache_key({"x": float("nan")})


# ----------------------------------------------------------------------------- store

def test_put_get_round_trip_and_reopen(tmp_path):
    path = tmp_path / "sub" / "c.jsonl"  # parent folders are created on first put
    c = JsonlCache(path)
    assert len(c) == 0 and c.get("k") is None and "k" not in c
    value = {"text": "réponse — ok", "n": [1, 2.5, None, True], "t": (1, 2)}
    c.put("k", value)
    c.put_many([("a", 1), ("b", [])])
    assert "k" in c and len(c) == 3
    assert c.get("k") == {"text": "réponse — ok", "n": [1, 2.5, None, True], "t": [1, 2]}  # as read back
    again = JsonlCache(path)
    assert len(again) == 3 and again.get("k") == c.get("k") and again.get("b") == []
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(ln)["key"] for ln in lines] == ["k", "a", "b"]
    assert "réponse" in lines[0]  # UTF-8 kept readable


def test_duplicate_keys_last_wins(tmp_path):
    c = JsonlCache(tmp_path / "c.jsonl")
    c.put("k", 1)
    c.put("k", 2)
    assert c.get("k") == 2 and len(c) == 1
    assert JsonlCache(tmp_path / "c.jsonl").get("k") == 2
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 2  # append-only


def test_truncated_last_line_is_ignored_then_replaced(tmp_path):
    path = tmp_path / "c.jsonl"
    c = JsonlCache(path)
    c.put("a", {"x": 1})
    c.put("b", {"x": 2})
    with open(path, "ab") as f:  # a run killed in the middle of a write
        f.write(b'{"key": "c", "value": {"x"')
    with pytest.warns(UserWarning, match=r"c\.jsonl:3: ignoring a truncated"):
        resumed = JsonlCache(path)
    assert len(resumed) == 2 and resumed.get("b") == {"x": 2} and "c" not in resumed
    resumed.put("c", {"x": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the corrupt tail is gone: no warning, no error
        final = JsonlCache(path)
    assert [final.get(k) for k in "abc"] == [{"x": 1}, {"x": 2}, {"x": 3}]


def test_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"key": "a", "value": 1}\n{"key": "b", "value": 2}', encoding="utf-8")
    c = JsonlCache(path)
    assert c.get("b") == 2
    c.put("c", 3)
    assert [JsonlCache(path).get(k) for k in "abc"] == [1, 2, 3]


def test_corrupt_line_elsewhere_is_an_error(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"key": "a", "value": 1}\nnot json\n{"key": "b", "value": 2}\n', encoding="utf-8")
    with pytest.raises(SSUIError, match=r"c\.jsonl:2: corrupt cache line"):
        JsonlCache(path)
    path.write_text('{"key": "a", "value": 1}\n{"value": 2}\n\n{"key": "b", "value": 2}\n', encoding="utf-8")
    with pytest.raises(SSUIError, match=r"c\.jsonl:2: corrupt"):
        JsonlCache(path)


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('\n{"key": "a", "value": 1}\n\n', encoding="utf-8")
    assert JsonlCache(path).get("a") == 1


def test_bad_values_and_keys_write_nothing(tmp_path):
    path = tmp_path / "c.jsonl"
    c = JsonlCache(path)
    with pytest.raises(SSUIError, match="not JSON-serialisable"):
        c.put("k", object())
    with pytest.raises(SSUIError, match="must be a string"):
        c.put(1, "v")  # type: ignore[arg-type]
    assert len(c) == 0 and not path.exists()


def test_threads_share_one_cache(tmp_path):
    path = tmp_path / "c.jsonl"
    c = JsonlCache(path)
    n_threads, per_thread = 8, 40
    barrier = threading.Barrier(n_threads)

    def writer(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            c.put(f"{t}-{i}", {"t": t, "i": i, "pad": "x" * (i * 37 % 300)})

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(c) == n_threads * per_thread
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == n_threads * per_thread  # no interleaved or lost lines
    back = JsonlCache(path)
    assert len(back) == n_threads * per_thread
    assert back.get("7-39")["i"] == 39
