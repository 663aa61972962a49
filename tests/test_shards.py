"""--shard I/N for ssui generate / judge / explore, and ssui merge: merged shards equal one run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fake_openai_server import FakeOpenAIServer
from ssui_lib.cli import main
from ssui_lib.core.errors import SSUIError
from ssui_lib.core.shards import merge_jsonl, parse_shard, read_shard, shard_settings, take_shard


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ----------------------------------------------------------------------------- the split

def test_parse_shard():
    assert parse_shard(None) is None
    assert parse_shard("2/8") == (2, 8) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad, msg in [("0/4", "1 <= I <= N"), ("5/4", "1 <= I <= N"), ("1/0", "1 <= I <= N"), ("a/b", "expected I/N"),
                     ("3", "expected I/N")]:
        with pytest.raises(SSUIError, match=msg):
            parse_shard(bad)


@pytest.mark.parametrize("n, block", [(1, 1), (3, 1), (3, 4), (4, 16), (7, 2)])
def test_take_shard_partitions_in_blocks(n, block):
    items = list(range(37))
    parts = [take_shard(items, (i, n), block) for i in range(1, n + 1)]
    assert sorted(x for p in parts for x in p) == items
    for i, p in enumerate(parts):  # whole blocks, dealt round robin
        assert all((x // block) % n == i for x in p) and p == sorted(p)
    assert take_shard(items, None) == items
    with pytest.raises(SSUIError, match="block"):
        take_shard(items, (1, 2), 0)


# ----------------------------------------------------------------------------- merging files

def test_merge_orders_by_dataset_and_refuses_bad_shards(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": "x3", "v": 3}, {"id": "x1", "v": 1}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": "x2", "v": 2}])
    rows = merge_jsonl([a, b], tmp_path / "m.jsonl", ["x1", "x2", "x3"])
    assert [r["id"] for r in rows] == ["x1", "x2", "x3"] == [r["id"] for r in jsonl(tmp_path / "m.jsonl")]
    with pytest.raises(SSUIError, match=r"1 of 4 samples are in no shard \(first: 'x4'\)"):
        merge_jsonl([a, b], tmp_path / "m2.jsonl", ["x1", "x2", "x3", "x4"])
    with pytest.raises(SSUIError, match="'x3' is not in the dataset"):
        merge_jsonl([a, b], tmp_path / "m2.jsonl", ["x1", "x2"])
    c = write_jsonl(tmp_path / "c.jsonl", [{"id": "x2", "v": 99}])
    with pytest.raises(SSUIError, match=r"c.jsonl: id 'x2' differs from its record in .*b.jsonl"):
        merge_jsonl([a, b, c], tmp_path / "m2.jsonl", ["x1", "x2", "x3"])
    with pytest.raises(SSUIError, match="is one of the shards"):
        merge_jsonl([a, b], a, ["x1", "x2", "x3"])
    assert not (tmp_path / "m2.jsonl").exists()


def test_a_scored_verdict_wins_and_torn_shards_are_refused(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": "x1", "scored": False}, {"id": "x1", "scored": True, "safe": 1}])
    assert read_shard(a)["x1"]["scored"] is True
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": "x1", "scored": False}])
    assert merge_jsonl([b, a], tmp_path / "m.jsonl", ["x1"])[0]["scored"] is True
    assert merge_jsonl([a, b], tmp_path / "m.jsonl", ["x1"])[0]["scored"] is True
    t = tmp_path / "t.jsonl"
    t.write_text('{"id": "x1"}\n{"id": "x2", "resp')
    with pytest.raises(SSUIError, match=r"t.jsonl:2: a truncated last line"):
        read_shard(t)


def test_shards_with_other_settings_are_refused(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": "x1"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": "x2"}])
    (tmp_path / "a.jsonl.meta.json").write_text(json.dumps({"model": "m", "seed": 0}))
    (tmp_path / "b.jsonl.meta.json").write_text(json.dumps({"model": "m", "seed": 1}))
    with pytest.raises(SSUIError, match="other settings"):
        shard_settings([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    (tmp_path / "b.jsonl.meta.json").write_text(json.dumps({"seed": 0, "model": "m"}))
    merge_jsonl([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], tmp_path / "m.jsonl", ["x1", "x2"])
    assert json.loads((tmp_path / "m.jsonl.meta.json").read_text()) == {"model": "m", "seed": 0}


# ----------------------------------------------------------------------------- the commands

def answer(body) -> str:
    text = body["messages"][-1]["content"]
    text = text if isinstance(text, str) else " ".join(p.get("text", "") for p in text)
    return f"I will not help with that. ({len(text)} chars, seed {body.get('seed')})"


def test_sharded_generate_and_judge_merge_into_one_run(tmp_path):
    n = 40  # three shards of batches of 16: 16, 16 and 8 samples
    with FakeOpenAIServer(responder=answer) as srv:
        gen = ["generate", "--model", f"openai-compatible:{srv.base_url}#gen", "--dataset", "bundled:all",
               "--limit", str(n), "--temperature", "0.7", "--no-progress", "--out"]
        assert main([*gen, str(tmp_path / "one.jsonl")]) == 0
        for i in (1, 2, 3):
            assert main([*gen, str(tmp_path / f"s{i}.jsonl"), "--shard", f"{i}/3"]) == 0
    sizes = [len(jsonl(tmp_path / f"s{i}.jsonl")) for i in (1, 2, 3)]
    assert sizes == [16, 16, 8]
    merge = ["merge", "--dataset", "bundled:all", "--limit", str(n), "--out"]
    assert main([*merge, str(tmp_path / "merged.jsonl"), *(str(tmp_path / f"s{i}.jsonl") for i in (3, 1, 2))]) == 0
    assert jsonl(tmp_path / "merged.jsonl") == jsonl(tmp_path / "one.jsonl")
    assert (tmp_path / "merged.jsonl.meta.json").read_text() == (tmp_path / "one.jsonl.meta.json").read_text()

    jud = ["judge", "--judge", "offline-rules", "--dataset", "bundled:all", "--limit", str(n),
           "--responses", str(tmp_path / "merged.jsonl"), "--no-progress", "--out"]
    assert main([*jud, str(tmp_path / "v_one.jsonl")]) == 0
    for i in (1, 2):
        assert main([*jud, str(tmp_path / f"v{i}.jsonl"), "--shard", f"{i}/2"]) == 0
    assert main([*merge, str(tmp_path / "v_merged.jsonl"), str(tmp_path / "v1.jsonl"), str(tmp_path / "v2.jsonl")]) == 0
    assert jsonl(tmp_path / "v_merged.jsonl") == jsonl(tmp_path / "v_one.jsonl")
    # a shard left out is named
    assert main([*merge, str(tmp_path / "bad.jsonl"), str(tmp_path / "v1.jsonl")]) == 2


def continuations(body) -> list[str]:
    import hashlib

    n = int(body.get("n") or 1)
    h = hashlib.sha256(json.dumps([body["messages"], body.get("seed")], sort_keys=True).encode()).hexdigest()[:6]
    return [f" Considered {h}.\nFinal verdict: {'unsafe' if (i + int(h, 16)) % 2 == 0 else 'safe'}\nAnswer: ok {i}"
            for i in range(n)]


def test_sharded_explore_merges_into_one_run(tmp_path, capsys):
    with FakeOpenAIServer(responder=continuations) as srv:
        exp = ["explore", "--model", f"openai-compatible:{srv.base_url}#m", "--dataset", "bundled:train",
               "--mode", "fixed_k", "--k", "2", "--steps", "5,6", "--batch-samples", "2", "--limit", "5",
               "--shots", "0", "--no-progress", "--out"]
        assert main([*exp, str(tmp_path / "one")]) == 0
        for i in (1, 2):
            assert main([*exp, str(tmp_path / f"s{i}"), "--shard", f"{i}/2"]) == 0
    assert [t["id"] for t in jsonl(tmp_path / "s2" / "trees.jsonl")] == [
        t["id"] for t in jsonl(tmp_path / "one" / "trees.jsonl")][2:4]
    merge = ["merge", "--dataset", "bundled:train", "--limit", "5", "--out", str(tmp_path / "merged")]
    assert main([*merge, str(tmp_path / "s1"), str(tmp_path / "s2")]) == 0
    assert jsonl(tmp_path / "merged" / "trees.jsonl") == jsonl(tmp_path / "one" / "trees.jsonl")
    one, merged = (json.loads((tmp_path / d / "stats.json").read_text()) for d in ("one", "merged"))
    assert merged["statistics"] == one["statistics"] and merged["complete"] and merged["shards"] == 2
    assert merged["config"] == one["config"] and merged["dataset"] == one["dataset"]
    # shards of different runs are refused
    st = json.loads((tmp_path / "s2" / "stats.json").read_text())
    st["config"]["k"] = 3
    (tmp_path / "s2" / "stats.json").write_text(json.dumps(st))
    capsys.readouterr()
    assert main([*merge[:-1], str(tmp_path / "m2"), str(tmp_path / "s1"), str(tmp_path / "s2")]) == 2
    assert "field 'config' differs" in capsys.readouterr().err
