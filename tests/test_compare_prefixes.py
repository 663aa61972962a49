"""scripts/compare_prefixes.py: both exploration prefixes on the same samples, one table."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))


def load_script():
    spec = importlib.util.spec_from_file_location("compare_prefixes", ROOT / "scripts" / "compare_prefixes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_compare_prefixes_runs_both_explorations_and_prints_the_table(tmp_path, capsys, monkeypatch):
    from tiny_vlms import build_tiny_llama

    mod = load_script()
    monkeypatch.setitem(mod.CPU_04, "max-new-tokens", "8")  # a tiny random model: keep it short
    monkeypatch.setitem(mod.CPU_04, "max-samples", "4")
    model = f"hf:{build_tiny_llama(tmp_path / 'tiny')}"
    assert mod.main(["--model", model, "--limit", "1", "--judge", "offline-rules", "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "reference" in text and "sampled" in text and "pairs / sample" in text
    for prefix in ("reference", "sampled"):
        assert (tmp_path / "out" / prefix / "trees.jsonl").is_file()
        assert (tmp_path / "out" / prefix / "stats.json").is_file()
