"""run_exploration (the one call behind ``ssui explore`` and chapter 04): trees + stats.json, and a
folder explored with other settings moved aside (chapter 04) or refused (the CLI)."""
import json

import pytest

from ssui_lib.core.errors import SSUIError
from ssui_lib.srpo import explore as ex
from test_explore import POOL, SAMPLES, ScriptedModel, cfg, flip, truth


def script(sid, i, k):
    return truth(sid) if k == 0 else flip(truth(sid))


def test_run_exploration_writes_trees_and_stats(tmp_path):
    trees, info = ex.run_exploration(ScriptedModel(script), SAMPLES, tmp_path, cfg(), model_name="scripted",
                                     dataset="jsonl:x", exemplar_pool=POOL, limit=3, progress=False)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats == info and stats["complete"] and stats["limit"] == 3 and stats["dataset"] == "jsonl:x"
    assert stats["statistics"] == ex.statistics(trees) and [t["id"] for t in trees] == [s.id for s in SAMPLES]
    assert [t["id"] for t in ex.read_trees(tmp_path / "trees.jsonl")] == [s.id for s in SAMPLES]
    m = ScriptedModel(script)
    again, _ = ex.run_exploration(m, SAMPLES, tmp_path, cfg(), model_name="scripted", dataset="jsonl:x",
                                  exemplar_pool=POOL, progress=False)
    assert not m.calls and again == trees  # resumed: nothing left to explore


def test_other_settings_are_refused_or_moved_aside(tmp_path):
    ex.run_exploration(ScriptedModel(script), SAMPLES, tmp_path, cfg(), model_name="s", dataset="d",
                       exemplar_pool=POOL, progress=False)
    with pytest.raises(SSUIError, match="field 'settings': made with other settings"):
        ex.run_exploration(ScriptedModel(script), SAMPLES, tmp_path, cfg(k=3), model_name="s", dataset="d",
                           exemplar_pool=POOL, progress=False)
    m = ScriptedModel(script)
    with pytest.warns(UserWarning, match="moved to trees.stale-"):
        trees, _ = ex.run_exploration(m, SAMPLES, tmp_path, cfg(k=3), model_name="s", dataset="d",
                                      exemplar_pool=POOL, progress=False, on_stale="reset")
    assert m.calls and len(trees) == 3 and len(list(tmp_path.glob("trees.stale-*.jsonl"))) == 1
    settings = {t["stats"]["settings"] for t in ex.read_trees(tmp_path / "trees.jsonl")}
    assert settings == {ex.settings_key(cfg(k=3), m, ex.verdict_F, (p.id for p in POOL))}
