"""SafeBench (Ying et al. 2024, "SafeBench: A Safety Evaluation Framework for Multimodal Large
Language Models", arXiv 2410.18927; github.com/NY1024/SafeBench, site safebench-mm.github.io, data on
Hugging Face ``Zonghao2025/safebench``): 2,300 multimodal harmful query pairs in 23 risk scenarios
(sub-categories) under 8 categories, one CSV per sub-category, an image per row.

What the public sources here say about the taxonomy: the paper's abstract (23 scenarios, 2,300
pairs), the site (category abbreviations such as CO and VI) and the official jury judge prompt
(``JDP_v1/single_judge_v1.py``), whose criteria name seven risk areas with their sub-topics —
Advisory Content (medical, legal, investment advice), Confidential Information (personal privacy,
trade secrets), Cybersecurity (penetration testing, vulnerability exploitation, malware generation,
hardware security), Ethics and Morality (bioethics, social ethics), Illegal Activities (pornography,
fraud, intellectual property infringement, child abuse), Violence (physical, psychological harm),
Inappropriate Speech or Views (hate speech, defamation, extreme political or religious views,
explicit bias). The eighth category's name could not be confirmed from those sources; like any other
name it loads through the keyword rules, or as "Unmapped" (with a warning), never an error.

Jury (``JDP_v1``): several judge models each give a Judgment Result (0 = complies, 1 = violates), a
Safety Rating (1–5, 5 safest) and reasoning; a final model aggregates them. ASR = share judged 1;
SRI (safety rating index) = the rating rescaled to 0–100; its exact formula is not published
(ssui_lib.eval.bench_metrics.safebench_rates documents the choice and makes it a parameter).

Layout read here: ``safebench:DIR`` where DIR holds ``<category>/<sub-category>.csv`` (or flat
``<sub-category>.csv`` files, the category then taken from a ``category`` column when there is one).
Leading numbering in a file or folder name ("01_", "3.") is dropped. Columns: the question from the
first of ``question, query, text, prompt, instruction`` and the image from the first of ``image,
image_path, img, img_path, image_file``; a CSV without such a header is read by position (question,
image), as the official scripts do. Images resolve against the CSV's folder, its ``images/`` folder,
or ``image_dir``. No descriptions of the pictures: images are needed.

id ``safebench-<sub-category slug>-<row>``; IRS (verdict unsafe). Classes: the sub-category through
:data:`SAFEBENCH_TABLE` and the keyword rules, else the category likewise.
"""
from __future__ import annotations

import re
from pathlib import Path

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample
from ssui_lib.data.loaders.common import (DB, DS, IC, MV, OR, P, PC, PV, V, Draft, Rec, UnmappedLog, build,
                                          map_category, read_csv)

SAFEBENCH_TABLE: dict[str, str] = {
    # categories (from the jury prompt's criteria)
    "advisory content": DB, "advice": DB, "confidential information": PV, "cybersecurity": IC,
    "ethics and morality": MV, "illegal activities": IC, "violence": V, "inappropriate speech or views": DS,
    "inappropriate views": DS, "inappropriate speech": DS,
    # sub-topics named there
    "medical advice": DB, "legal advice": DB, "investment advice": DB, "financial advice": DB,
    "personal privacy": PV, "trade secrets": PV, "penetration testing": IC, "vulnerability exploitation": IC,
    "malware generation": IC, "hardware security": IC, "bioethics": MV, "social ethics": MV,
    "pornography": P, "fraud": IC, "intellectual property infringement": IC, "child abuse": V,
    "physical harm": V, "psychological harm": V, "hate speech": DS, "defamation": MV,
    "extreme political views": PC, "extreme religious views": OR, "explicit bias": DS, "bias": DS,
}
QUESTION_COLUMNS = ("question", "query", "text", "prompt", "instruction")
IMAGE_COLUMNS = ("image", "image_path", "img", "img_path", "image_file")


def clean_name(name: str) -> str:
    """A file or folder name as a label: numbering and underscores dropped (``"03_Hate_Speech"`` → ``"Hate Speech"``)."""
    s = re.sub(r"^\s*\d+\s*[._\-)]?\s*", "", name).replace("_", " ").strip()
    return s or name


def safebench_class(category: str | None, sub_category: str) -> str | None:
    return map_category(sub_category, SAFEBENCH_TABLE) or (map_category(category, SAFEBENCH_TABLE) if category else None)


def _columns(head: list[str]) -> tuple[int, int | None] | None:
    low = [h.strip().lower() for h in head]
    q = next((low.index(c) for c in QUESTION_COLUMNS if c in low), None)
    if q is None:
        return None
    return q, next((low.index(c) for c in IMAGE_COLUMNS if c in low), None)


def load_safebench(path: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """SafeBench's data folder (see the module docstring)."""
    root = Path(path)
    if root.is_file() and root.suffix.lower() == ".csv":
        files = [root]
        root = root.parent
    elif root.is_dir():
        files = sorted(root.rglob("*.csv"))
        if not files:
            raise SSUIError(f"{root}: no <category>/<sub-category>.csv files inside")
    else:
        raise SSUIError(f"{root}: folder not found (expected SafeBench's folder of sub-category CSV files)")
    samples: list[Sample] = []
    for f in files:
        _, rows = read_csv(f, header=False)
        cols = _columns(rows[0])
        head = rows[0] if cols else None
        data_rows = rows[1:] if cols else rows
        qi, ii = cols if cols else (0, 1)
        sub = clean_name(f.stem)
        folder_cat = clean_name(f.parent.name) if f.parent != root else None
        log = UnmappedLog(f)
        slug = re.sub(r"[^a-z0-9]+", "-", sub.lower()).strip("-")
        drafts = []
        for n, row in enumerate(data_rows, 2 if cols else 1):
            names = head if head else [f"column {k}" for k in range(len(row))]
            r = Rec(f, n - 1, dict(zip([x.strip() for x in names], row)), line=n)
            if ii is None or ii >= len(row) or not row[ii].strip():
                raise SSUIError(f"{r.where(names[ii] if ii is not None and ii < len(names) else 'image')}: "
                                "missing (SafeBench rows need an image)")
            if qi >= len(row) or not row[qi].strip():
                raise SSUIError(f"{r.where(names[qi] if qi < len(names) else 'question')}: missing or empty")
            category = folder_cat or (r.text("category", optional=True) if head else None)
            cls = log.resolve(safebench_class(category, sub), f"{category or '?'} > {sub}")
            image = row[ii].strip()
            extra = {"benchmark": "safebench", "category": category, "sub_category": sub, "row": n,
                     "image_path": image, "file": str(f.relative_to(root))}
            fields = {"id": f"safebench-{slug}-{len(drafts)}", "kind": "irs", "verdict": "unsafe",
                      "query": row[qi].strip(), "category": {"l1": cls}, "extra": extra}
            drafts.append(Draft(r, names[ii], image, None, None, fields, subdirs=("", "images", f.stem), root=f.parent))
        if drafts:
            samples += build(f, drafts, image_dir, "safebench", log)
    if not samples:
        raise SSUIError(f"{root}: no rows in its CSV files")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise SSUIError(f"{root}: two sub-category files give the same id {dup!r} (rename one of them)")
    return samples
