"""The durable run store (ssui_lib.core.store): appends, torn-line reads, atomic writes, the
same-settings guard."""
import json

import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.store import (
    append_jsonl, append_text, atomic_write_dir, atomic_write_text, check_settings, guard_settings_file,
    read_jsonl, read_settings, write_json,
)


def test_append_and_read_back(tmp_path):
    p = tmp_path / "sub" / "rows.jsonl"
    append_jsonl(p, [{"id": "a"}, {"id": "b", "x": "é"}])
    append_jsonl(p, [])
    append_jsonl(p, [{"id": "c"}])
    rows, torn = read_jsonl(p)
    assert [n for n, _ in rows] == [1, 2, 3] and [r["id"] for _, r in rows] == ["a", "b", "c"] and torn is None
    assert "é" in p.read_text(encoding="utf-8")  # UTF-8 kept as is


def test_a_last_line_without_newline_gets_one(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"id": "a"}')
    append_jsonl(p, [{"id": "b"}])
    assert p.read_text() == '{"id": "a"}\n{"id": "b"}\n'


def test_torn_last_line_is_skipped_warned_and_repaired(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"id": "a"}\n{"id": "b", "x')
    with pytest.warns(UserWarning, match=r"r\.jsonl:2: ignoring a truncated last line"):
        rows, torn = read_jsonl(p)
    assert [r["id"] for _, r in rows] == ["a"] and torn == (12, b'{"id": "b", "x')
    assert p.read_text().endswith('"x')  # reading alone changes nothing
    append_text(p, '{"id": "c"}\n', cut=torn)  # the next append cuts the torn tail first
    assert p.read_text() == '{"id": "a"}\n{"id": "c"}\n'
    p.write_text('{"id": "a"}\n{oops')
    rows, torn = read_jsonl(p, repair=True, warn=False)
    assert torn is None and p.read_text() == '{"id": "a"}\n'


def test_a_corrupt_middle_line_is_an_error_naming_file_and_line(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"id": "a"}\n{oops\n{"id": "b"}\n')
    with pytest.raises(SSUIError, match=r"r\.jsonl:2: corrupt line"):
        read_jsonl(p)

    def need_id(obj):
        if "id" not in obj:
            raise ValueError("no id")
        return obj["id"]

    p.write_text('{"x": 1}\n{"id": "b"}\n')
    with pytest.raises(SSUIError, match=r"r\.jsonl:1: bad row \(no id\)"):
        read_jsonl(p, parse=need_id, what="bad row")
    assert read_jsonl(tmp_path / "none.jsonl") == ([], None)
    with pytest.raises(SSUIError, match="file not found"):
        read_jsonl(tmp_path / "none.jsonl", missing_ok=False)


def test_atomic_writes(tmp_path):
    atomic_write_text(tmp_path / "a" / "t.txt", "one")
    atomic_write_text(tmp_path / "a" / "t.txt", "two")
    assert (tmp_path / "a" / "t.txt").read_text() == "two"
    write_json(tmp_path / "j.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "j.json").read_text()) == {"b": 1, "a": [1, 2]}

    def fill(d):
        (d / "f").write_text("new")

    atomic_write_dir(tmp_path / "d", fill)
    assert (tmp_path / "d" / "f").read_text() == "new"

    def fail(d):
        (d / "f").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write_dir(tmp_path / "d", fail)
    assert (tmp_path / "d" / "f").read_text() == "new"  # untouched
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a", "d", "j.json"]  # no temporary left


def test_check_settings_errors_or_resets(tmp_path):
    assert check_settings(tmp_path, None, {"a": 1})  # nothing recorded yet
    assert check_settings(tmp_path, {"a": (1, 2)}, {"a": [1, 2]})  # compared as JSON
    with pytest.raises(SSUIError, match=r"field 'a': made with other settings \(1 there, 2 now; differing: a, b\)"):
        check_settings(tmp_path, {"a": 1, "b": 1}, {"a": 2})
    calls = []
    assert not check_settings(tmp_path, {"a": 1}, {"a": 2}, on_mismatch="reset", reset=lambda: calls.append(1))
    assert calls == [1]
    with pytest.raises(SSUIError, match="on_mismatch"):
        check_settings(tmp_path, {"a": 1}, {"a": 2}, on_mismatch="ignore")  # type: ignore[arg-type]


def test_guard_settings_file(tmp_path):
    f = tmp_path / "run" / "config.json"
    assert guard_settings_file(f, {"k": 1}) and read_settings(f) == {"k": 1}
    assert guard_settings_file(f, {"k": 1})
    with pytest.raises(SSUIError, match=r"config\.json: field 'k'"):
        guard_settings_file(f, {"k": 2})
    assert read_settings(f) == {"k": 1}  # an error records nothing
    assert not guard_settings_file(f, {"k": 2}, on_mismatch="reset") and read_settings(f) == {"k": 2}
    f.write_text("{oops")
    with pytest.raises(SSUIError, match="not valid JSON"):
        guard_settings_file(f, {"k": 2})
    assert not guard_settings_file(f, {"k": 2}, on_mismatch="reset", unreadable="reset")
    assert read_settings(f) == {"k": 2} and read_settings(tmp_path / "none.json") is None
    f.write_text("[1]")
    with pytest.raises(SSUIError, match="JSON object"):
        read_settings(f)


def test_json_safe():
    import numpy as np

    from ssui_lib.core.store import json_safe

    out = json_safe({"a": float("nan"), "b": [np.float32(0.5), np.int64(3), (1, np.nan)], "c": "x", "d": None})
    assert out == {"a": None, "b": [0.5, 3, [1, None]], "c": "x", "d": None}
    assert type(out["b"][1]) is int and type(out["b"][0]) is float
    json.dumps(out, allow_nan=False)


def test_read_json_names_the_file_on_bad_json(tmp_path):
    from ssui_lib.core.store import read_json

    good, bad = tmp_path / "g.json", tmp_path / "b.json"
    good.write_text('{"a": [1, 2]}')
    bad.write_text('{"a": ')
    assert read_json(good) == {"a": [1, 2]}
    with pytest.raises(SSUIError, match=r"b\.json: not a JSON run manifest"):
        read_json(bad, "a JSON run manifest")
