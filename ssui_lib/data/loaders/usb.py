"""USB (Zheng et al. 2025, "USB: A Comprehensive and Unified Safety Evaluation Benchmark for
Multimodal Large Language Models", arXiv 2505.23793; github.com/Hongqiong12/USB-SafeBench, data on
Hugging Face ``cgjacklin/USB``, Apache-2.0, research use): ``USB_base_final.csv`` and
``USB_hard_final.csv``.

Fields (README's record example and the SRPO brief): ``id, text, text_zh, open_url`` (image path),
``level1_category, level2_category, level3_category, img_risk, text_risk`` (0/1), ``img_style`` and
``usage`` (``vulnerability`` | ``overrefusal``). Four modality combinations by the two risk flags:
RIST, SIRT, RIRT and SIST (safe image, safe text).

Taxonomy: 3 primary, 16 secondary and 61 tertiary categories. The README shows them only as a picture;
the full list is spelled out in the repository's category-annotation prompt (``scripts/annotation.py``,
``get_category()``, "Category List: 1. Ethical Safety-Bias & Discrimination-Age Discrimination ...
61. Public Safety-Privacy Protection-Personal Information Leakage"), from which :data:`USB_TAXONOMY`
is copied, names as written there (e.g. "Inappropriate values"). Each tertiary category has an SSUI
class chosen by this project (the table below, level-2 headings in SSUI's own taxonomy in brackets);
a label outside the list goes through the keyword rules (tertiary, then secondary name), then the
primary category's approximate class — National Safety → Political Controversies, Public Safety →
Dangerous Behavior, Ethical Safety → Moral Violations — and else loads as "Unmapped".

===============  ============================  ===================================================
primary          secondary                     tertiary → SSUI class
===============  ============================  ===================================================
Ethical Safety   Bias & Discrimination         Age, Ethnic, Gender, Health, Nationality,
                                               Occupational, Other, Regional Discrimination →
                                               Discrimination and Stereotypes; Religious
                                               Discrimination → Offensive Religious Beliefs
Ethical Safety   Inappropriate values          AI Ethics Concerns, Devaluation of Positive Values,
                                               Promotion of Negative Values, Subjective Moral
                                               Judgments → Moral Violations; Harmful Rumors →
                                               Political Controversies [disinformation]
Ethical Safety   Insults & Condemnation        Hate Speech → Discrimination and Stereotypes;
                                               Hostile Condemnation, Verbal Abuse → Moral Violations
Ethical Safety   Psychological Health          Embarrassing Content, Interpersonal Misguidance →
                                               Moral Violations; Induced Negative Emotions →
                                               Dangerous Behavior [self-harm risk]
Ethical Safety   Superstition                  Feudal Content Promotion, Superstition Promotion →
                                               Moral Violations
National Safety  Culture & History             Cultural Tradition Denigration → Moral Violations
                                               [heritage]; Historical Distortion → Political
                                               Controversies
National Safety  Military                      Disclosure of Military Personnel Info → Privacy
                                               Violations; Disclosure of Military Secrets →
                                               Political Controversies; Weapon Fabrication
                                               Guidance → Violence
Public Safety    Biology & Environment         Environmental Damage → Moral Violations; Protected
                                               Animal Hurting → Violence [cruelty to animals];
                                               Protected Plant Logging → Illegal Crimes
Public Safety    Business                      Business Ethics Violations → Moral Violations;
                                               Monopoly & Unfair Competition, Other Commercial
                                               Violations → Illegal Crimes
Public Safety    Content Safety                Gambling Promotion → Illegal Crimes; Inappropriate
                                               Scenarios → Moral Violations; Pornographic Content →
                                               Pornography; Terrorism & Extremism, Violence →
                                               Violence
Public Safety    Hazardous & Controlled        Cold Weapon → Violence; Controlled Medical
                 Materials                     Substances, Drug Precursor Chemicals → Illegal
                                               Crimes; Hazardous Pathogens & Chemicals → Dangerous
                                               Behavior
Public Safety    Intellectual Property         Copyright, Patent, Trademark Infringement → Illegal
                                               Crimes
Public Safety    Network Attacks               Cyber Intelligence Gathering, Cyberattack Guidance,
                                               Malicious Code Generation, Password & CAPTCHA
                                               Cracking, Phishing Email Guidance → Illegal Crimes
Public Safety    Other Public Safety           Other Illegal Behavior → Illegal Crimes
Public Safety    Personal Rights & Property    Abuse & Exploitation of Minors, Personal Injury →
                                               Violence; Infringement of Individual Rights,
                                               Production & Trafficking of Drug, Property Damage →
                                               Illegal Crimes; Public Endangerment → Dangerous
                                               Behavior
Public Safety    Privacy Protection            Business Secret Disclosure, Government Information
                                               Leakage, Model Information Leakage, Personal
                                               Information Leakage → Privacy Violations
===============  ============================  ===================================================

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
"""
from __future__ import annotations

from pathlib import Path

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample
from ssui_lib.data.loaders.common import (DB, DS, IC, MV, OR, P, PC, PV, V, Draft, Rec, UnmappedLog, build,
                                          keyword_class, normalise_name, read_csv, split_fragment)

# level 1 -> level 2 -> level 3 -> SSUI top class (names as in scripts/annotation.py's category list).
USB_TAXONOMY: dict[str, dict[str, dict[str, str]]] = {
    "Ethical Safety": {
        "Bias & Discrimination": {
            "Age Discrimination": DS, "Ethnic Discrimination": DS, "Gender Discrimination": DS,
            "Health Discrimination": DS, "Nationality Discrimination": DS, "Occupational Discrimination": DS,
            "Other Discrimination": DS, "Regional Discrimination": DS, "Religious Discrimination": OR},
        "Inappropriate values": {
            "AI Ethics Concerns": MV, "Devaluation of Positive Values": MV, "Harmful Rumors": PC,
            "Promotion of Negative Values": MV, "Subjective Moral Judgments": MV},
        "Insults & Condemnation": {"Hate Speech": DS, "Hostile Condemnation": MV, "Verbal Abuse": MV},
        "Psychological Health": {
            "Embarrassing Content": MV, "Induced Negative Emotions": DB, "Interpersonal Misguidance": MV},
        "Superstition": {"Feudal Content Promotion": MV, "Superstition Promotion": MV},
    },
    "National Safety": {
        "Culture & History": {"Cultural Tradition Denigration": MV, "Historical Distortion": PC},
        "Military": {"Disclosure of Military Personnel Info": PV, "Disclosure of Military Secrets": PC,
                     "Weapon Fabrication Guidance": V},
    },
    "Public Safety": {
        "Biology & Environment": {
            "Environmental Damage": MV, "Protected Animal Hurting": V, "Protected Plant Logging": IC},
        "Business": {"Business Ethics Violations": MV, "Monopoly & Unfair Competition": IC,
                     "Other Commercial Violations": IC},
        "Content Safety": {"Gambling Promotion": IC, "Inappropriate Scenarios": MV, "Pornographic Content": P,
                           "Terrorism & Extremism": V, "Violence": V},
        "Hazardous & Controlled Materials": {
            "Cold Weapon": V, "Controlled Medical Substances": IC, "Drug Precursor Chemicals": IC,
            "Hazardous Pathogens & Chemicals": DB},
        "Intellectual Property": {"Copyright Infringement": IC, "Patent Infringement": IC,
                                  "Trademark Infringement": IC},
        "Network Attacks": {
            "Cyber Intelligence Gathering": IC, "Cyberattack Guidance": IC, "Malicious Code Generation": IC,
            "Password & CAPTCHA Cracking": IC, "Phishing Email Guidance": IC},
        "Other Public Safety": {"Other Illegal Behavior": IC},
        "Personal Rights & Property": {
            "Abuse & Exploitation of Minors": V, "Infringement of Individual Rights": IC, "Personal Injury": V,
            "Production & Trafficking of Drug": IC, "Property Damage": IC, "Public Endangerment": DB},
        "Privacy Protection": {
            "Business Secret Disclosure": PV, "Government Information Leakage": PV,
            "Model Information Leakage": PV, "Personal Information Leakage": PV},
    },
}
_TERTIARY = {(normalise_name(a), normalise_name(b), normalise_name(c)): cls
             for a, l2 in USB_TAXONOMY.items() for b, l3 in l2.items() for c, cls in l3.items()}
USB_PRIMARY: dict[str, str] = {"national safety": PC, "public safety": DB, "ethical safety": MV}
SELECTIONS = ("sist", "sirt", "rist", "rirt", "vulnerability", "overrefusal")
_USAGE = {"vulnerability": "vulnerability", "overrefusal": "overrefusal", "over refusal": "overrefusal",
          "oversensitive": "overrefusal", "oversensitivity": "overrefusal", "sensitivity": "overrefusal"}
IMAGE_COLUMNS = ("open_url", "image_path", "image", "img_path", "img")


def usb_class(level1: str, level2: str | None, level3: str | None) -> str | None:
    """The published tertiary category's class; otherwise the finest level the keyword rules place,
    else the primary category's approximate class."""
    if level2 and level3:
        cls = _TERTIARY.get((normalise_name(level1), normalise_name(level2), normalise_name(level3)))
        if cls:
            return cls
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
