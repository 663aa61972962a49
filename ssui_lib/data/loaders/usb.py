"""USB (Zheng et al. 2025, "USB: A Comprehensive and Unified Safety Evaluation Benchmark for
Multimodal Large Language Models", arXiv 2505.23793; github.com/Hongqiong12/USB-SafeBench, data on
Hugging Face ``cgjacklin/USB``, Apache-2.0, research use): ``USB_base_final.csv`` and
``USB_hard_final.csv``.

Fields (README's record example and the SRPO brief): ``id, text, text_zh, open_url`` (image path),
``level1_category, level2_category, level3_category, img_risk, text_risk`` (0/1), ``img_style`` and
``usage`` (``vulnerability`` | ``overrefusal``). Three primary categories (National Safety, Public
Safety, Ethical Safety), 16 secondary and 61 tertiary ones; the README's only spelled-out example is
Public Safety > Privacy Protection > Personal Information Leakage (the full lists are in a figure).
Four modality combinations by the two risk flags: RIRT, RIST, SIRT and SIST (safe image, safe text).

Selections (the dataset spec ``usb:PATH#SELECTION``): ``#sist`` — the vulnerability rows whose image
and text are both safe (SRPO reports USB on this subset, "the more challenging SIST subset"),
``#sirt``, ``#rist``, ``#rirt`` likewise, ``#vulnerability`` — every vulnerability row,
``#overrefusal`` — the over-refusal rows (harmless requests; ARR is measured on them); no selection:
every row.

Judges (README "Evaluation"): GPT-4o with the prompts of ``scripts/vlsbench.py`` for ASR (three
labels: safe with refusal, safe with warning, unsafe; ASR = unsafe share) and
``scripts/oversensitive.py`` for ARR (refusal share on over-refusal rows); see
ssui_lib.eval.bench_judges.

Mapping: id ``usb-<id>``; a vulnerability row is an IRS sample (verdict unsafe), an over-refusal row a
benign sample (``kind = "twin"``, verdict safe, no pair). query = ``text``. USB gives no description
of its pictures: it needs its images (``open_url`` relative to the CSV's folder, or ``image_dir``).
Categories: the tertiary, then the secondary name through the keyword rules; if neither says, the
primary one, approximately — National Safety → Political Controversies, Public Safety → Dangerous
Behavior, Ethical Safety → Moral Violations. A row none of them maps is "Unmapped".
"""
from __future__ import annotations

from pathlib import Path

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample
from ssui_lib.data.loaders.common import (DB, MV, PC, Draft, Rec, UnmappedLog, build, keyword_class,
                                          normalise_name, read_csv, split_fragment)

USB_PRIMARY: dict[str, str] = {"national safety": PC, "public safety": DB, "ethical safety": MV}
SELECTIONS = ("sist", "sirt", "rist", "rirt", "vulnerability", "overrefusal")
_USAGE = {"vulnerability": "vulnerability", "overrefusal": "overrefusal", "over refusal": "overrefusal",
          "oversensitive": "overrefusal", "oversensitivity": "overrefusal", "sensitivity": "overrefusal"}
IMAGE_COLUMNS = ("open_url", "image_path", "image", "img_path", "img")


def usb_class(level1: str, level2: str | None, level3: str | None) -> str | None:
    """The finest level the keyword rules place, else the primary category's approximate class."""
    for name in (level3, level2):
        if name:
            cls = keyword_class(name)
            if cls:
                return cls
    return USB_PRIMARY.get(normalise_name(level1)) or keyword_class(level1)


def _modality(img_risk: int, text_risk: int) -> str:
    return ("ri" if img_risk else "si") + ("rt" if text_risk else "st")


def load_usb(path: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """USB CSV (``PATH`` or ``PATH#sist`` / ``#overrefusal`` / ...: see the module docstring)."""
    p, selection = split_fragment(path, SELECTIONS, "usb")
    head, rows = read_csv(p)
    image_col = next((c for c in IMAGE_COLUMNS if c in head), None)
    for need in ("id", "text", "level1_category", "usage"):
        if need not in head:
            raise SSUIError(f"{p}: line 1: missing column '{need}' (have: {', '.join(head)})")
    if image_col is None:
        raise SSUIError(f"{p}: line 1: no image column (one of {', '.join(IMAGE_COLUMNS)}; have: {', '.join(head)})")
    log = UnmappedLog(p)
    drafts = []
    for n, row in enumerate(rows, 2):
        r = Rec(p, n - 2, dict(zip(head, row)), line=n)
        usage_raw = r.text("usage")
        usage = _USAGE.get(normalise_name(usage_raw))
        if usage is None:
            raise SSUIError(f"{r.where('usage')}: {usage_raw!r} is neither 'vulnerability' nor 'overrefusal'")
        img_risk = r.flag("img_risk") if usage == "vulnerability" or r.data.get("img_risk", "").strip() else 0
        text_risk = r.flag("text_risk") if usage == "vulnerability" or r.data.get("text_risk", "").strip() else 0
        modality = _modality(img_risk, text_risk)
        keep = (selection is None or selection == usage
                or (usage == "vulnerability" and selection == modality))
        if not keep:
            continue
        uid = r.ident("id")
        l1_raw, l2_raw, l3_raw = (r.text("level1_category"), r.text("level2_category", optional=True),
                                  r.text("level3_category", optional=True))
        label = " > ".join(x for x in (l1_raw, l2_raw, l3_raw) if x)
        l1 = log.resolve(usb_class(l1_raw, l2_raw, l3_raw), label)
        image = r.text(image_col)
        extra = {"benchmark": "usb", "usb_id": r.data["id"].strip(), "usage": usage, "modality": modality.upper(),
                 "img_risk": img_risk, "text_risk": text_risk, "level1_category": l1_raw, "level2_category": l2_raw,
                 "level3_category": l3_raw, "img_style": r.text("img_style", optional=True),
                 "text_zh": r.text("text_zh", optional=True), "image_path": image, "file": p.name}
        vulnerable = usage == "vulnerability"
        fields = {"id": f"usb-{uid}", "kind": "irs" if vulnerable else "twin",
                  "verdict": "unsafe" if vulnerable else "safe", "query": r.text("text"),
                  "category": {"l1": l1}, "extra": extra}
        drafts.append(Draft(r, image_col, image, None, None, fields))
    if not drafts:
        raise SSUIError(f"{p}: no rows" + (f" in selection #{selection}" if selection else ""))
    return build(p, drafts, image_dir, "usb", log)
