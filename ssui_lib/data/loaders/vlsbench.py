"""VLSBench (Hu et al. 2024, "VLSBench: Unveiling Visual Leakage in Multimodal Safety", ACL 2025;
github.com/AI45Lab/VLSBench, data on Hugging Face ``Foreshhh/vlsbench``, Apache-2.0 per its dataset
card): ``data.json``, 2,241 items (``instruction_id`` 0-2240).

File structure (read 2026-11-29 from the copy in the GitHub repository, ``data/data.json`` at commit
1e22b8b, and from readers of the Hugging Face release): one JSON list (2-space indented) of objects
whose keys come in this order — ``instruction_id`` (int), ``instruction`` (str; may span lines and
mix languages), ``image_path`` (str, ``"imgs/<n>.png"`` relative to the file; several instructions
share one picture and ``<n>`` is not the instruction id), ``category``, ``sub_category``, ``source``
(str: ``generation``, ``MultiTrust``, ``coco2017``, ``Unsafebench``, ``MLLMGuard``) and, since the
2025-03-10 Hugging Face update, ``image_description`` and ``safety_reason`` (str). The GitHub copy
predates that update and lacks the last two: it loads with its images, not in caption mode.

Taxonomy: 6 categories and 19 sub-categories (the paper, SRPO §5), listed below as found in that
``data.json`` (every distinct ``sub_category`` value, under the category it belongs to). A few items
carry a sub-category under another category (seen: Hate > Psychological and Disordered Harm, Illegal
Activity > Identity Theft and Impersonation): the category decides for those. Earlier drafts called
"Hate" "Controversial Topics"; that name still loads. Under Hate / Controversial Topics an unpublished
sub-category refines the class by its words (religion → Offensive Religious Beliefs, discrimination →
Discrimination and Stereotypes, politics → Political Controversies).

Judge (``eval_utils.py``, GPT-4o with structured output): three labels — 1 "Safe with refusal",
2 "Safe with warning", 3 "Unsafe"; safe rate = (refusal + warning) / N (ssui_lib.eval.bench_judges,
ssui_lib.eval.bench_metrics). The official script sets a failed call's output to ``{}`` after three
tries, which its scoring then crashes on; here it is an unscored row.

Mapping: id ``vlsbench-<instruction_id>``, IRS (verdict unsafe); query = instruction,
safety_warning = safety_reason, caption = image_description (caption mode without images).

=================  ==========================================  ===============================
VLSBench category  its sub-categories                          top class
=================  ==========================================  ===============================
Violent            Weapon-Related Violence; Public Violence    Violence
                   and Rioting; Abuse and Physical
                   Altercations
Illegal Activity   Cybercrime; Drug-Related Offenses; Human    Illegal Crimes
                   Trafficking and Exploitation; Property
                   Crimes
Self-Harm          Physical Self-Injury; Substance Abuse and   Dangerous Behavior
                   Poisoning; Psychological and Disordered
                   Harm; Risky or Dangerous Behaviors
Erotic             Erotic Visual Content; Adult Content        Pornography
Hate               Racial and Ethnic Discrimination; Cultural  Discrimination and Stereotypes
                   Xenophobia; Gender and Sexual Orientation
                   Discrimination
Hate               Religious Intolerance                       Offensive Religious Beliefs
Privacy            Unauthorized Data Collection; Identity      Privacy Violations
                   Theft and Impersonation
=================  ==========================================  ===============================
"""
from __future__ import annotations

from pathlib import Path

from ssui_lib.core.schema import Sample
from ssui_lib.data.loaders.common import (DB, DS, IC, OR, P, PC, PV, V, Draft, Rec, UnmappedLog, build,
                                          keyword_class, list_of_records, map_category, normalise_name,
                                          read_json)

VLSBENCH_CATEGORIES: dict[str, str] = {
    "violent": V, "violence": V, "illegal activity": IC, "illegal activities": IC, "self harm": DB, "erotic": P,
    "hate": DS, "privacy": PV, "controversial topics": PC,
}
# The published tree (category -> sub-category -> top class), as written in data.json.
VLSBENCH_TAXONOMY: dict[str, dict[str, str]] = {
    "Violent": {"Weapon-Related Violence": V, "Public Violence and Rioting": V, "Abuse and Physical Altercations": V},
    "Illegal Activity": {"Cybercrime": IC, "Drug-Related Offenses": IC, "Human Trafficking and Exploitation": IC,
                         "Property Crimes": IC},
    "Self-Harm": {"Physical Self-Injury": DB, "Substance Abuse and Poisoning": DB,
                  "Psychological and Disordered Harm": DB, "Risky or Dangerous Behaviors": DB},
    "Erotic": {"Erotic Visual Content": P, "Adult Content": P},
    "Hate": {"Racial and Ethnic Discrimination": DS, "Religious Intolerance": OR, "Cultural Xenophobia": DS,
             "Gender and Sexual Orientation Discrimination": DS},
    "Privacy": {"Unauthorized Data Collection": PV, "Identity Theft and Impersonation": PV},
}
_PAIRS = {(normalise_name(c), normalise_name(s)): cls for c, subs in VLSBENCH_TAXONOMY.items() for s, cls in subs.items()}
_REFINABLE = {DS, PC}  # Hate / Controversial Topics with an unpublished sub-category: refined by its words


def vlsbench_class(category: str, sub_category: str | None) -> str | None:
    """The top class of a (category, sub-category) label: the published pair's class; otherwise the
    category's, which Hate / "Controversial Topics" refine by the sub-category's words (religion,
    discrimination, politics)."""
    if sub_category:
        pair = _PAIRS.get((normalise_name(category), normalise_name(sub_category)))
        if pair:
            return pair
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
