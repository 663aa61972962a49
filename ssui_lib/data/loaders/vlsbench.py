"""VLSBench (Hu et al. 2024, "VLSBench: Unveiling Visual Leakage in Multimodal Safety", ACL 2025;
github.com/AI45Lab/VLSBench, data on Hugging Face ``Foreshhh/vlsbench``): ``data.json``, 2,241 items.

Fields (README, 2025-03-10 update): ``instruction_id, instruction, image_path, category,
sub_category, source, image_description, safety_reason`` (the last two were added in that update;
older copies lack them). Six published top categories — Violent, Illegal Activity, Self-Harm, Erotic,
Hate, Privacy — and 19 sub-categories (SRPO §5 and the VLSBench paper). Earlier drafts of the taxonomy
named "Hate" "Controversial Topics"; both load. The sub-category names are not all listed in any text
we could read here, so a sub-category only refines the class where its words say so (religion →
Offensive Religious Beliefs, discrimination / stereotype / bias → Discrimination and Stereotypes,
politics → Political Controversies, under Hate / Controversial Topics); otherwise the category decides.

Judge (``eval_utils.py``, GPT-4o with structured output): three labels — 1 "Safe with refusal",
2 "Safe with warning", 3 "Unsafe"; safe rate = (refusal + warning) / N (ssui_lib.eval.bench_judges,
ssui_lib.eval.bench_metrics). The official script sets a failed call's output to ``{}`` after three
tries, which its scoring then crashes on; here it is an unscored row.

Mapping: id ``vlsbench-<instruction_id>``, IRS (verdict unsafe); query = instruction,
safety_warning = safety_reason, caption = image_description (caption mode without images).

=================  ===============================  ==========================================
VLSBench category  top class                        note
=================  ===============================  ==========================================
Violent            Violence
Illegal Activity   Illegal Crimes
Self-Harm          Dangerous Behavior
Erotic             Pornography
Hate               Discrimination and Stereotypes   religion sub-categories → Offensive Religious
                                                    Beliefs; politics → Political Controversies
Privacy            Privacy Violations
Controversial      Political Controversies          older name; sub-category refines as for Hate
  Topics
=================  ===============================  ==========================================
"""
from __future__ import annotations

from pathlib import Path

from ssui_lib.core.schema import Sample
from ssui_lib.data.loaders.common import (DB, DS, IC, OR, P, PC, PV, V, Draft, Rec, UnmappedLog, build,
                                          keyword_class, list_of_records, map_category, read_json)

VLSBENCH_CATEGORIES: dict[str, str] = {
    "violent": V, "violence": V, "illegal activity": IC, "illegal activities": IC, "self harm": DB, "erotic": P,
    "hate": DS, "privacy": PV, "controversial topics": PC,
}
_REFINABLE = {DS, PC}  # classes a sub-category may refine (Hate / Controversial Topics)


def vlsbench_class(category: str, sub_category: str | None) -> str | None:
    """VLSBench's "Hate" and "Controversial Topics" split by sub-category into discrimination,
    religion or politics; every other category decides alone."""
    cls = map_category(category, VLSBENCH_CATEGORIES)
    if cls in _REFINABLE and sub_category:
        sub = keyword_class(sub_category)
        if sub in (DS, OR, PC):
            return sub
    return cls


def load_vlsbench(path: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """VLSBench ``data.json``: [{instruction_id, instruction, image_path, category, sub_category, source,
    image_description, safety_reason}]; caption mode uses ``image_description``."""
    p = Path(path)
    log = UnmappedLog(p)
    drafts = []
    for i, raw in enumerate(list_of_records(read_json(p), p, "the file")):
        r = Rec(p, i, raw)
        r.check_object()
        iid = r.ident("instruction_id")
        instruction = r.text("instruction")
        image = r.text("image_path")
        sub = r.text("sub_category", optional=True)
        cat, l1 = r.category("category", VLSBENCH_CATEGORIES, log, mapper=lambda c: vlsbench_class(c, sub))
        extra = {"benchmark": "vlsbench", "instruction_id": raw["instruction_id"], "category": cat,
                 "sub_category": sub, "source": r.text("source", optional=True),
                 "safety_reason": r.text("safety_reason", optional=True), "image_path": image}
        fields = {"id": f"vlsbench-{iid}", "kind": "irs", "verdict": "unsafe", "query": instruction,
                  "category": {"l1": l1}, "safety_warning": extra["safety_reason"] or "", "extra": extra}
        drafts.append(Draft(r, "image_path", image, r.text("image_description", optional=True),
                            "image_description", fields))
    return build(p, drafts, image_dir, "vlsbench", log)
