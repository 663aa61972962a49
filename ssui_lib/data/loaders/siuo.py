"""SIUO (Wang et al. 2024, "Safe Inputs but Unsafe Output"; github.com/sinwang20/SIUO, paper in
/work/shared/papers/002_*): ``siuo_gen.json`` and ``siuo_mcqa.json``.

Fields (from the SIUO README and data files' documented layout): generation set
``[{question_id, image, question, category, safety_warning, reference_answer}]``; multiple-choice set
``[{question_id, image, question, category, options {A..D}, correct_option}]``. Nine published
categories (paper §3): self-harm, dangerous behavior, morality, illegal activities & crime,
controversial topics / politics, discrimination & stereotyping, religion, information
misinterpretation, privacy violation.

Mapping: id ``siuo-gen-<question_id>`` / ``siuo-mcqa-<question_id>``, IRS (verdict unsafe); query =
question, safety_warning, safe_reply = reference_answer (gen) or the correct option's text (mcqa; the
options and the correct key stay in ``extra``). SIUO gives no description of its pictures, so it
needs its images (looked up in the file's folder and its ``images/`` subfolder).

=========================  ===============================  ======================================
SIUO category              top class                        note
=========================  ===============================  ======================================
self-harm                  Dangerous Behavior               risk to the user themself
dangerous behavior         Dangerous Behavior
morality                   Moral Violations
illegal activities & crime Illegal Crimes
controversial topics,      Political Controversies
  politics
discrimination &           Discrimination and Stereotypes
  stereotyping
religion (beliefs)         Offensive Religious Beliefs
information                Dangerous Behavior               approximate: acting on misread
  misinterpretation                                         information puts the user at risk
privacy violation          Privacy Violations
=========================  ===============================  ======================================
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample
from ssui_lib.data.loaders.common import (DB, DS, IC, MV, OR, PC, PV, Draft, Rec, UnmappedLog, build,
                                          list_of_records, read_json)

SIUO_CATEGORIES: dict[str, str] = {
    "self harm": DB, "dangerous behavior": DB, "dangerous behaviour": DB, "morality": MV,
    "illegal activities and crime": IC, "illegal activities and crimes": IC,
    "controversial topics politics": PC, "controversial topics and politics": PC,
    "discrimination and stereotyping": DS, "discrimination and stereotypes": DS,
    "religion": OR, "religion beliefs": OR, "religious beliefs": OR,
    "information misinterpretation": DB, "privacy violation": PV, "privacy violations": PV,
}


def _siuo(path: str | Path, image_dir: str | Path | None, mcqa: bool) -> list[Sample]:
    p = Path(path)
    benchmark = "siuo-mcqa" if mcqa else "siuo-gen"
    log = UnmappedLog(p)
    drafts = []
    for i, raw in enumerate(list_of_records(read_json(p), p, "the file")):
        r = Rec(p, i, raw)
        r.check_object()
        qid = r.ident("question_id")
        image = r.text("image")
        question = r.text("question")
        cat, l1 = r.category("category", SIUO_CATEGORIES, log)
        extra: dict[str, Any] = {"benchmark": benchmark, "question_id": raw["question_id"], "category": cat, "image": image}
        if mcqa:
            options = raw.get("options")
            if not isinstance(options, dict) or not options:
                raise SSUIError(f"{r.where('options')}: {'missing' if options is None else 'expected an object {A: text, B: text, ...}'}")
            for k, v in options.items():
                if not isinstance(v, str) or not v.strip():
                    raise SSUIError(f"{r.where(f'options.{k}')}: expected a non-empty string")
            correct = r.text("correct_option").strip()
            if correct not in options:
                raise SSUIError(f"{r.where('correct_option')}: {correct!r} is not one of the options {sorted(options)}")
            warning = r.text("safety_warning", optional=True) or ""
            reply = options[correct]
            extra.update(options=dict(options), correct_option=correct)
        else:
            warning = r.text("safety_warning")
            reply = r.text("reference_answer")
        fields = {"id": f"{benchmark}-{qid}", "kind": "irs", "verdict": "unsafe", "query": question,
                  "category": {"l1": l1}, "safety_warning": warning, "safe_reply": reply, "extra": extra}
        drafts.append(Draft(r, "image", image, None, None, fields, subdirs=("", "images")))
    return build(p, drafts, image_dir, benchmark, log)


def load_siuo_gen(path: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """SIUO ``siuo_gen.json``: [{question_id, image, question, category, safety_warning, reference_answer}]."""
    return _siuo(path, image_dir, mcqa=False)


def load_siuo_mcqa(path: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """SIUO ``siuo_mcqa.json``: [{question_id, image, question, category, options {A..D}, correct_option}];
    the options and the correct one are kept in ``extra``; the correct option is the safe reply."""
    return _siuo(path, image_dir, mcqa=True)
