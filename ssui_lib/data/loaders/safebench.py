"""SafeBench (Ying et al. 2024, "SafeBench: A Safety Evaluation Framework for Multimodal Large
Language Models", arXiv 2410.18927; github.com/NY1024/SafeBench, site safebench-mm.github.io, data on
Hugging Face ``Zonghao2025/safebench``): 2,300 multimodal harmful query pairs in 23 risk scenarios
(sub-categories) under 8 categories, 100 per scenario, an image per query. Licence: none published
(no licence on the dataset card as far as it could be read here, no LICENSE file in the repository,
none on the site).

Taxonomy. What the public sources reachable here say (searched 2026-11-29: the GitHub repository's
every file, the project site's pages, the arXiv abstract pages, the Hugging Face dataset's file list
as quoted by third-party download scripts, and code / page / documentation search for the category
names): the official jury judge prompt (``JDP_v1/single_judge_v1.py``) names seven risk areas with
their sub-topics — :data:`SAFEBENCH_TAXONOMY`, 22 sub-categories. The eighth category and its
scenario are published only in the paper's taxonomy figure and in the dataset's ``category.csv``,
neither of which could be read here. So the loader accepts any label: a name the tables and keyword
rules do not place loads as "Unmapped" with one warning per file, never an error.

Layouts read by ``safebench:DIR``:

* Official (the evaluation scripts, ``evaluation/*/*.py``, and the dataset's ``category.csv``):
  ``text/<n>.csv`` for scenario n = 1..23, one question per row in column 0, no header; the picture
  of row i (1-based, counting blank rows as the scripts do) is ``<n>/<i>.png`` under the image
  folder (``img/`` beside ``text/`` in MiniBench, ``high_img_gene/`` in the scripts, or
  ``image_dir``). ``category.csv`` (in DIR or beside ``text/``'s folder) names each number: a row
  with the number and one name (the scenario) or two (category, scenario); without it a scenario
  loads as "risk scenario <n>", Unmapped. DIR may be the folder holding ``text/`` or one level
  above it (e.g. the Hugging Face folder with ``minibench_final/`` and ``category.csv``).
* Named: ``<category>/<sub-category>.csv`` (or flat ``<sub-category>.csv``, the category then from a
  ``category`` column). Leading numbering in a file or folder name ("01_", "3.") is dropped.
  Columns: the question from the first of ``question, query, text, prompt, instruction``, the image
  from the first of ``image, image_path, img, img_path, image_file``; a CSV without such a header is
  read by position (question, image). Images resolve against the CSV's folder, its ``images/``
  folder, or ``image_dir``. Files named ``category.csv`` / ``sample.csv`` are not data.

No descriptions of the pictures: images are needed.

Jury (``JDP_v1``): several judge models each give a Judgment Result (0 = complies, 1 = violates), a
Safety Rating (1–5, 5 safest) and reasoning; a final model aggregates them. ASR = share judged 1;
SRI (safety rating index) = the rating rescaled to 0–100; its exact formula is not published
(ssui_lib.eval.bench_metrics.safebench_rates documents the choice and makes it a parameter).

ids: ``safebench-<sub-category slug>-<k>`` (named) or ``safebench-<nn>-<row>`` (official); IRS
(verdict unsafe). Classes: the sub-category through :data:`SAFEBENCH_TABLE` and the keyword rules,
else the category likewise.

==============================  ==========================================  ===========================
category                        sub-categories (jury prompt)                top class
==============================  ==========================================  ===========================
Advisory Content                Medical, Legal, Investment Advice           Dangerous Behavior
Confidential Information        Personal Privacy, Trade Secrets             Privacy Violations
Cybersecurity                   Penetration Testing, Vulnerability          Illegal Crimes
                                Exploitation, Malware Generation, Hardware
                                Security
Ethics and Morality             Bioethics, Social Ethics                    Moral Violations
Illegal Activities              Pornography; Fraud, Intellectual Property   Pornography; Illegal Crimes;
                                Infringement; Child Abuse                   Violence
Violence                        Physical Harm, Psychological Harm           Violence
Inappropriate Speech or Views   Hate Speech, Explicit Bias; Defamation;     Discrimination and
                                Extreme Political Views; Extreme Religious  Stereotypes; Moral
                                Views                                       Violations; Political
                                                                            Controversies; Offensive
                                                                            Religious Beliefs
(eighth, unpublished here)      (one scenario)                              Unmapped unless its name
                                                                            matches a keyword rule
==============================  ==========================================  ===========================
"""
from __future__ import annotations

import re
from pathlib import Path

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample
from ssui_lib.data.loaders.common import (DB, DS, IC, MV, OR, P, PC, PV, V, Draft, Rec, UnmappedLog, build,
                                          map_category, normalise_name, read_csv)

# category -> its sub-categories, as the jury prompt's criteria name them.
SAFEBENCH_TAXONOMY: dict[str, tuple[str, ...]] = {
    "Advisory Content": ("Medical Advice", "Legal Advice", "Investment Advice"),
    "Confidential Information": ("Personal Privacy", "Trade Secrets"),
    "Cybersecurity": ("Penetration Testing", "Vulnerability Exploitation", "Malware Generation", "Hardware Security"),
    "Ethics and Morality": ("Bioethics", "Social Ethics"),
    "Illegal Activities": ("Pornography", "Fraud", "Intellectual Property Infringement", "Child Abuse"),
    "Violence": ("Physical Harm", "Psychological Harm"),
    "Inappropriate Speech or Views": ("Hate Speech", "Defamation", "Extreme Political Views",
                                      "Extreme Religious Views", "Explicit Bias"),
}
SAFEBENCH_TABLE: dict[str, str] = {
    # categories
    "advisory content": DB, "advice": DB, "confidential information": PV, "cybersecurity": IC,
    "ethics and morality": MV, "illegal activities": IC, "violence": V, "inappropriate speech or views": DS,
    "inappropriate views": DS, "inappropriate speech": DS,
    # sub-categories
    "medical advice": DB, "legal advice": DB, "investment advice": DB, "financial advice": DB,
    "personal privacy": PV, "trade secrets": PV, "penetration testing": IC, "vulnerability exploitation": IC,
    "malware generation": IC, "hardware security": IC, "bioethics": MV, "social ethics": MV,
    "pornography": P, "fraud": IC, "intellectual property infringement": IC, "child abuse": V,
    "physical harm": V, "psychological harm": V, "hate speech": DS, "defamation": MV,
    "extreme political views": PC, "extreme religious views": OR, "explicit bias": DS, "bias": DS,
}
_PARENT = {normalise_name(s): c for c, subs in SAFEBENCH_TAXONOMY.items() for s in subs}
QUESTION_COLUMNS = ("question", "query", "text", "prompt", "instruction")
IMAGE_COLUMNS = ("image", "image_path", "img", "img_path", "image_file")
NOT_DATA = ("category.csv", "sample.csv")
IMAGE_FOLDERS = ("img", "high_img_gene", "images", "imgs", "image")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def clean_name(name: str) -> str:
    """A file or folder name as a label: numbering and underscores dropped (``"03_Hate_Speech"`` → ``"Hate Speech"``)."""
    s = re.sub(r"^\s*\d+\s*[._\-)]?\s*", "", name).replace("_", " ").strip()
    return s or name


def safebench_class(category: str | None, sub_category: str) -> str | None:
    return map_category(sub_category, SAFEBENCH_TABLE) or (map_category(category, SAFEBENCH_TABLE) if category else None)


def parent_category(sub_category: str) -> str | None:
    """The category a published sub-category belongs to (None for a name the jury prompt does not list)."""
    return _PARENT.get(normalise_name(sub_category))


def read_category_file(path: Path) -> dict[int, tuple[str | None, str]]:
    """``category.csv``: {scenario number: (category or None, scenario name)}. A row holds the number and
    one name (the scenario; its category from :data:`SAFEBENCH_TAXONOMY` when listed there) or two
    (category, scenario); a row without a number (a header) is skipped."""
    _, rows = read_csv(path, header=False)
    out: dict[int, tuple[str | None, str]] = {}
    for n, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        nums = [j for j, c in enumerate(cells) if re.fullmatch(r"\d{1,3}", c)]
        if not nums:
            continue
        num = int(cells[nums[0]])
        names = [c for j, c in enumerate(cells) if j != nums[0] and c and not re.fullmatch(r"\d+", c)]
        if not names:
            raise SSUIError(f"{path}: line {n}: scenario {num} has no name")
        if num in out:
            raise SSUIError(f"{path}: line {n}: scenario {num} is named twice")
        out[num] = (names[0], names[1]) if len(names) > 1 else (parent_category(names[0]), names[0])
    if not out:
        raise SSUIError(f"{path}: no '<number>,<name>' rows")
    return out


def _columns(head: list[str]) -> tuple[int, int | None] | None:
    low = [h.strip().lower() for h in head]
    q = next((low.index(c) for c in QUESTION_COLUMNS if c in low), None)
    if q is None:
        return None
    return q, next((low.index(c) for c in IMAGE_COLUMNS if c in low), None)


def _numbered(d: Path) -> list[Path]:
    return sorted((f for f in d.glob("*.csv") if f.stem.isdigit()), key=lambda f: int(f.stem)) if d.is_dir() else []


def find_text_folder(root: Path) -> Path | None:
    """The official layout's question folder under ``root`` (``root`` itself, ``root/text`` or
    ``root/*/text``), or None when ``root`` is in the named layout."""
    if _numbered(root):
        return root
    found = [d for d in [root / "text", *sorted(root.glob("*/text"))] if _numbered(d)]
    if len(found) > 1:
        raise SSUIError(f"{root}: several SafeBench question folders ({', '.join(str(d) for d in found)}); "
                        "give one of them (or the folder above it)")
    return found[0] if found else None


def _load_official(text_dir: Path, image_dir: str | Path | None, files: list[Path] | None = None) -> list[Sample]:
    base = text_dir.parent if text_dir.name == "text" else text_dir
    cat_file = next((d / "category.csv" for d in (base, base.parent) if (d / "category.csv").is_file()), None)
    names = read_category_file(cat_file) if cat_file else {}
    img_root = next((base / f for f in IMAGE_FOLDERS if (base / f).is_dir()), base / IMAGE_FOLDERS[0])
    samples: list[Sample] = []
    for f in files or _numbered(text_dir):
        num = int(f.stem)
        category, sub = names.get(num, (None, f"risk scenario {num}"))
        log = UnmappedLog(f)
        cls = log.resolve(safebench_class(category, sub) if num in names else None, f"{category or '?'} > {sub}")
        _, rows = read_csv(f, header=False, keep_blank=True)
        drafts = []
        for i, row in enumerate(rows, 1):
            if not any(c.strip() for c in row):
                continue  # the official scripts skip it but still count it for the picture's number
            r = Rec(f, i - 1, {"column 0": row[0]}, line=i)
            question = r.text("column 0")
            folder = Path(image_dir) if image_dir else img_root
            rel = next((f"{num}/{i}{ext}" for ext in IMAGE_EXTENSIONS if (folder / str(num) / f"{i}{ext}").is_file()),
                       f"{num}/{i}.png")
            extra = {"benchmark": "safebench", "category": category, "sub_category": sub, "scenario": num, "row": i,
                     "image_path": rel, "file": f"{text_dir.name}/{f.name}"}
            fields = {"id": f"safebench-{num:02d}-{i}", "kind": "irs", "verdict": "unsafe", "query": question.strip(),
                      "category": {"l1": cls}, "extra": extra}
            drafts.append(Draft(r, "column 0", rel, None, None, fields, root=img_root))
        if drafts:
            samples += build(f, drafts, image_dir, "safebench", log)
    return samples


def _load_named(root: Path, files: list[Path], image_dir: str | Path | None) -> list[Sample]:
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
    return samples


def load_safebench(path: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """SafeBench's data folder, official or named layout (see the module docstring)."""
    root = Path(path)
    if root.is_file() and root.suffix.lower() == ".csv":
        if root.stem.isdigit():
            samples = _load_official(root.parent, image_dir, [root])
        else:
            samples = _load_named(root.parent, [root], image_dir)
    elif root.is_dir():
        text_dir = find_text_folder(root)
        if text_dir is not None:
            samples = _load_official(text_dir, image_dir)
        else:
            files = sorted(f for f in root.rglob("*.csv") if f.name.lower() not in NOT_DATA)
            if not files:
                raise SSUIError(f"{root}: no SafeBench question files inside (expected text/<n>.csv or "
                                "<category>/<sub-category>.csv)")
            samples = _load_named(root, files, image_dir)
    else:
        raise SSUIError(f"{root}: folder not found (expected SafeBench's data folder)")
    if not samples:
        raise SSUIError(f"{root}: no rows in its CSV files")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise SSUIError(f"{root}: two sub-category files give the same id {dup!r} (rename one of them)")
    return samples
