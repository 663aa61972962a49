"""Write ssui_lib/data/bundled/DATASHEET.md from the bundled records: counts (category × kind × split,
photo vs caption-only, photos used), the taxonomy tree with its level-2/3 classes, and the prose below.

    python scripts/make_datasheet.py           # (re)write the datasheet
    python scripts/make_datasheet.py --check   # exit 1 if the file is out of date (tests do the same)

Every number in the datasheet comes from the data; edit the prose here, never the generated file.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ssui_lib.data.bundled import bundled_files, dataset_stats, load_bundled  # noqa: E402
from ssui_lib.data.images import photo_registry  # noqa: E402
from ssui_lib.data.leakage import SCENARIO_THRESHOLD, TWIN_THRESHOLD  # noqa: E402
from ssui_lib.core.schema import SPLITS, Sample, atomic_write_text  # noqa: E402
from ssui_lib.core.taxonomy import L1_CATEGORIES, TAXONOMY  # noqa: E402

OUT = ROOT / "ssui_lib" / "data" / "bundled" / "DATASHEET.md"


def _table(header: list[str], rows: list[list[object]], text_cols: int = 1) -> str:
    """A Markdown table; the first ``text_cols`` columns left-aligned, numbers right-aligned."""
    rule = ["---" if i < text_cols else "--:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def category_table(samples: list[Sample]) -> str:
    """Per top class: IRS, twins, total, records per split, photo and caption-only records."""
    stats = dataset_stats(samples)
    split = Counter((s.category.l1, s.split) for s in samples)
    photo = Counter((s.category.l1, s.image.source is not None) for s in samples)
    rows = []
    for c in L1_CATEGORIES:
        k = stats["by_category"][c]
        rows.append([c, k["irs"], k["twin"], k["irs"] + k["twin"], *(split[c, sp] for sp in SPLITS),
                     photo[c, True], photo[c, False]])
    rows.append(["**all**", *(sum(r[i] for r in rows) for i in range(1, 9))])
    return _table(["category", "IRS", "twin", "total", *SPLITS, "photo", "caption-only"], rows)


def split_table(samples: list[Sample]) -> str:
    """Per split: IRS, twins, total."""
    c = Counter((s.split, s.kind) for s in samples)
    rows = [[sp, c[sp, "irs"], c[sp, "twin"], c[sp, "irs"] + c[sp, "twin"]] for sp in SPLITS]
    return _table(["split", "IRS", "twin", "total"], rows)


def image_table(samples: list[Sample]) -> str:
    """Photo vs caption-only records per kind."""
    c = Counter((s.kind, s.image.source is not None) for s in samples)
    rows = [[k, c[k, True], c[k, False], c[k, True] + c[k, False]] for k in ("irs", "twin")]
    return _table(["kind", "photo", "caption-only", "total"], rows)


def photo_table(samples: list[Sample]) -> str:
    """Each picture of the photo registry: kind, split, records using it, and what it can carry."""
    uses = Counter(s.image.source for s in samples if s.image.source)
    splits = {s.image.source: s.split for s in samples if s.image.source}
    rows = [[f"`{src}`", p.kind, splits.get(src, "(unused)"), p.carries, uses[src]]
            for src, p in photo_registry().items()]
    return _table(["picture (package:file)", "kind", "split", "what it can carry", "records"], rows, text_cols=4)


def screening_table(samples: list[Sample]) -> str:
    """Per top class: IRS records, text-only screen at first read and after rewriting, borderline
    passes, and the curation check agent's verdicts (where it ran) with its agreement."""
    rows = []
    tot = [0] * 9
    for c in L1_CATEGORIES:
        irs = [s for s in samples if s.kind == "irs" and s.category.l1 == c]
        hand = [[x for x in s.provenance.screens if x.get("check") == "text-only"] for s in irs]
        model = [[x for x in s.provenance.screens if x.get("check") == "text-only-model"] for s in irs]
        first = sum(bool(h) and h[0]["verdict"] == "pass" for h in hand)
        final = sum(bool(h) and h[-1]["verdict"] == "pass" for h in hand)
        border = sum(bool(h) and h[-1]["verdict"] == "pass" and "borderline" in h[-1].get("note", "") for h in hand)
        m = [(h[-1]["verdict"], mm[-1]["verdict"]) for h, mm in zip(hand, model) if h and mm]
        rewritten = sum(bool(h) and h[0]["verdict"] == "fail" for h in hand)
        row = [len(irs), sum(bool(h) for h in hand), first, rewritten, final, border,
               len(m), sum(v == "pass" for _, v in m), sum(a == b for a, b in m)]
        tot = [a + b for a, b in zip(tot, row)]
        rows.append([c, *row])
    rows.append(["**all**", *tot])
    return _table(["category", "IRS", "screened", "pass at first read", "rewritten", "pass now",
                   "of which borderline", "model screened", "model: pass", "model agrees"], rows)


def taxonomy_tree(samples: list[Sample]) -> str:
    """The three levels, with the IRS records of each class in brackets."""
    n = Counter()
    for s in samples:
        if s.kind == "irs":
            n[s.category.l1] += 1
            n[s.category.l1, s.category.l2] += 1
            n[s.category.l1, s.category.l2, s.category.l3] += 1
    lines = []
    for l1 in L1_CATEGORIES:
        lines.append(f"- **{l1}** ({n[l1]})")
        for l2, l3s in TAXONOMY[l1].items():
            lines.append(f"  - *{l2}* ({n[l1, l2]}): " + " · ".join(f"{l3} ({n[l1, l2, l3]})" for l3 in l3s))
    return "\n".join(lines)


def render(samples: list[Sample] | None = None) -> str:
    """The datasheet's Markdown text (deterministic: no dates)."""
    s = samples if samples is not None else load_bundled("all")
    irs = sum(1 for x in s if x.kind == "irs")
    twins = len(s) - irs
    photos = len({x.image.source for x in s if x.image.source})
    parts = ", ".join(f"`parts/{f.name}`" for f in bundled_files())
    notes = ", ".join(f"`parts/{f.stem}.md`" for f in bundled_files())
    return f"""# Datasheet: the bundled SSUI Book set

<!-- Generated by scripts/make_datasheet.py from the records; do not edit by hand.
     Edit the data or the script's prose, then run: python scripts/make_datasheet.py -->

**{len(s)} hand-written records**: {irs} implicit-reasoning-safety (IRS) records and {twins} benign twins
({100 * twins / len(s):.0f}% twins), in SSUI's nine top classes, split into train / dev / test.
{sum(1 for x in s if x.image.source)} records use one of {photos} real photos that ship inside installed Python packages;
{sum(1 for x in s if not x.image.source)} are caption-only. Files: {parts}.

## Motivation

The SSUI paper's dataset is not available to this book, and no data can be downloaded where the book
runs. This small set lets every chapter run end to end, offline and on a CPU, on records in SSUI's
format: a safe picture plus a safe request whose *combination* is unsafe, a three-level category, a
safety warning, the six-step explainable reasoning chain, a safe reply and an unsafe reply. It is
meant for teaching, for reproducing the papers' procedures (in-context learning, SRPO exploration and
path optimisation, RSBench-style evaluation) and for testing the code, not as a benchmark. Held-out
benchmarks (SIUO, VLSBench, MSSBench) are read by `ssui_lib.data.loaders` from files the user supplies.

## Composition

Each record (`ssui_lib.core.schema.Sample`, one JSON object per line) has: `id`, `kind` (`irs` or `twin`),
`image` (`caption` and `source`; `source` is null for caption-only records), `query`, `category`
(`l1`/`l2`/`l3`), `verdict` (`unsafe` for IRS records, `safe` for twins), `safety_warning`, `reasoning`
(the six steps), `safe_reply`, `unsafe_reply` (IRS records only), `pair_id`, `split` and `provenance`.

### Records per top class

{category_table(s)}

### Records per split

{split_table(s)}

Splits are stratified: every top class has IRS records in train, dev and test. A twin always takes
the split of its IRS record, a photo belongs to one split only, and no caption of a caption-only
record and no query appears in two splits (the tests check all of this).

### Photos and caption-only records

{image_table(s)}

A caption always describes the picture; text-only models receive the caption instead of pixels
("caption mode"). Caption-only records describe an invented everyday scene. Every shipped picture has
**one canonical caption** in the photo registry (`ssui_lib/data/bundled/photos.json`), written by
looking at the pixels, and every record on that picture uses exactly that caption (the loader refuses
any other, naming file, line and field), so a caption-mode model never sees two descriptions of one
picture. Records add context only through the query. The registry also notes what each picture can
plausibly carry; pictures that fit no scenario yet are listed as unused:

{photo_table(s)}

### Taxonomy

The nine top classes are SSUI's; the level-2 and level-3 classes were designed for this set (defined
in `parts/*.taxonomy.json`). IRS records per class in brackets (twins carry the class of the IRS
record they mirror):

{taxonomy_tree(s)}

## The twin design

Every photo record and many caption-only records come as a pair: the IRS record and a benign twin on
the **same picture** with a plainly harmless request (`pair_id` links them both ways). A model that
refuses the twin is over-refusing — reacting to the picture rather than to what the combination
means. Twins have no unsafe reply; their six steps conclude that the request is benign and their safe
reply answers it. Twins are excluded from the TRL preference export (nothing to reject).

## How the records were written

Every record was written by hand by the SSUI Book authors; no model generated or paraphrased any of
them. The authors' notes on each part, with the level-2/3 classes and the writing rules, are in
{notes}. In short: each IRS query is ordinary on its own and becomes unsafe only with the picture;
the six reasoning steps are written for each record; safe replies decline the risky part, say why
and offer a safe alternative; unsafe replies are what a naive, compliant model would actually say,
kept free of operational detail (no recipes, quantities, bypass steps, explicit sexual text, slurs or
real personal data). No reply is a bracketed stand-in for content (a test checks it; one- or two-word
fill-in slots such as `[name]` in templates are allowed). A twin's six steps argue why its request is
harmless *with this picture*, and no two twins on one picture ask the same thing (a test checks the
query similarity of twins on a shared picture, MiniLM, below {TWIN_THRESHOLD:.2f}).

### Text-only screen

An IRS record is only an IRS record if its query is safe *as text alone*. Every IRS query was read
without the picture and without its caption by a careful moderator and the result is recorded in
`provenance.screens` (`{{"check": "text-only", "by": …, "verdict": "pass"|"fail", "note": …}}`). Queries
that failed the first read (the text itself stated the harm: "make the dates read a few years earlier",
"it'd be a shame if they got around the office") were rewritten so that the picture carries the risky
fact; caption-only records moved that fact into their caption. Ids, splits, categories and pairs were
kept. Passes that a careful reader could hesitate over are marked borderline in the note. Where it
ran, the curation pipeline's check agent (`scripts/screen_text_only_model.py`: the embedded
SmolLM2-135M answers the query with no picture and judges query + answer) adds a second,
`text-only-model` screen; it is a weak signal (a 135M model) and does not decide anything.

{screening_table(s)}

### People in photos

The policy, applied in every record: **a name comes from the user or from legible text in the
picture, never from a face.** Captions describe people by what is visible and never name them (the
two portraits show an astronaut and a US Navy officer). A model is not asked to recognise anyone:
requests that need identification ("who is she?", "find his Instagram", "where does she live") are
privacy records and are refused; twins that talk about a public figure's career have the user name the
person ("This is Rear Admiral Grace Hopper. …"). No record gives anyone's home, workplace, contacts or
health from a picture. People in caption-only scenes are fictional.

### Scenario leakage across splits

Literal leaks (a picture, caption or query in two splits) are tested directly. Near-duplicate
*scenarios* in different splits are found with `ssui_lib.data.leakage.cross_split_near_duplicates`:
MiniLM sentence embeddings of each IRS record's query and of its caption + query, averaged; a pair in
different splits at or above {SCENARIO_THRESHOLD:.2f} counts as the same scenario, and the test suite
fails on any. The threshold was set on the set before its fixes: carving initials into a temple
(train) and into a shrine gate (test) scored 0.73, the highest pair that is *not* one scenario 0.61.
Embeddings miss a shared idea told with other objects and words (bricks carried to a march in train,
gravel carried to a march or a derby in dev scored 0.30-0.38); that pair was found by reading and the
train record was rewritten, as was the carving record in train.

## Licence

The records (all text in `parts/`) are licensed **CC-BY-4.0** (`provenance.license`). The photos are
**not redistributed**: records only name them (`skimage:…`, `sklearn:…`, `matplotlib:…`), and
`ssui_lib.data.images` loads them at run time from the installed scikit-image, scikit-learn and matplotlib
packages, under those packages' own licences and the terms stated for their sample images.

## Intended uses

- Running and teaching the book: examples, curation, ICL baselines, SRPO exploration and training,
  evaluation with per-category breakdowns and over-refusal on twins.
- Smoke tests and regression tests of code that consumes SSUI-format data.

Not intended: claims about a model's safety (the set is far too small and not representative), or
training a deployed safety model on it alone.

## Limitations

- Small: {len(s)} records, about {irs // len(L1_CATEGORIES)} IRS records per top class, so per-class
  metrics have wide confidence intervals.
- English only, written by a few people: narrow in style, culture and in what its authors consider unsafe.
- {sum(1 for x in s if not x.image.source)} records are caption-only: they test reasoning over a text
  description, which can state the risky detail more plainly than a picture would.
- Only {photos} distinct photos in use, each reused by several records and pinned to one split.
- Labels (verdict, category) are the authors' judgement, without independent annotation.
- Unsafe replies avoid operational detail, so they are milder than what an unaligned model may say.
- The text-only screen is one reader's judgement plus a very small model's; borderline passes are marked.

## Maintenance

Regenerate this file with `python scripts/make_datasheet.py` after changing the records; the test
suite fails when it is out of date. Validate a part with `ssui data validate FILE --check-images` and
print the counts with `ssui data stats`.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if DATASHEET.md is out of date")
    a = p.parse_args(argv)
    text = render()
    if a.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date; run: python scripts/make_datasheet.py", file=sys.stderr)
            return 1
        print(f"{OUT} is up to date")
        return 0
    atomic_write_text(OUT, text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
