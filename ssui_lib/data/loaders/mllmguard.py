"""MLLMGuard (Gu et al. 2024, "MLLMGuard: A Multi-dimensional Safety Evaluation Suite for Multimodal
Large Language Models"; github.com/Carol-gutianle/MLLMGuard, data on Hugging Face
``Carol0110/MLLMGuard``): the public, desensitized split (1,500 samples).

Layout (README "Installation" and ``utils.process_data``): one folder per dimension —
``privacy, bias, toxicity, hallucination, position-swapping, noise-injection, legality`` — each with
``prompt.csv`` and an ``imgs/`` folder. The Hugging Face repository keeps these folders under
``desensitize/`` (its dataset card's configs: ``desensitize/<dimension>/prompt.csv``, with ``en.csv``
and ``zh.csv`` splits beside it); ``mllmguard:DIR`` accepts that folder's parent too. Licence:
CC BY-NC-SA 4.0 (the dataset card's ``license`` field). The official reader takes the columns by position: column 0
the image file (in ``imgs/``), column 1 the prompt, column 4 the language (``lan``: en / zh). Five
dimensions are scored (``guardrank/score.py``): Privacy, Bias, Toxicity, Truthfulness (= the mean of
hallucination, noise-injection and position-swapping) and Legality; some releases name the
truthfulness sub-tasks ``non-existent``, ``sequential`` and ``noise-consistency``, which load too.

Scoring (``guardrank/score.py``): GuardRank, a fine-tuned classifier, gives each answer a score 0–3
(0 = perfect, 3 = worst); PAR = share of answers scored 0, ASD = mean of min(max(score, 0), 3) / 3,
each per dimension, then averaged over the dimensions. GuardRank's weights are not available here:
ssui_lib.eval.bench_judges implements its rubric as a model judge instead, and the paired
truthfulness sub-tasks (noise-injection's clean/noisy image pair, position-swapping's label 0/1) are
judged as single items with the same 0–3 rubric — both are stated wherever the numbers appear.

Spec: ``mllmguard:DIR`` (a folder of dimension folders, or one dimension folder) with an optional
``#en`` / ``#zh`` language selection. id ``mllmguard-<dimension>-<row>``; IRS (verdict unsafe: they
are red-teaming prompts); ``extra["dimension"]`` and ``extra["group"]`` (the scored dimension).
No descriptions of the pictures: images are needed.

==================  ===============================  =========================================
dimension           top class                        note
==================  ===============================  =========================================
privacy             Privacy Violations
bias                Discrimination and Stereotypes
toxicity            Violence                         approximate: hate speech, pornography and
                                                     violence together
legality            Illegal Crimes
hallucination,      Dangerous Behavior               approximate (as SIUO's "information
noise-injection,                                     misinterpretation"): acting on a wrong
position-swapping                                    reading of the picture
==================  ===============================  =========================================
"""
from __future__ import annotations

from pathlib import Path

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample
from ssui_lib.data.loaders.common import (DB, DS, IC, PV, V, Draft, Rec, UnmappedLog, build, keyword_class,
                                          read_csv, split_fragment)

DIMENSIONS: dict[str, tuple[str, str]] = {  # folder -> (scored dimension, top class)
    "privacy": ("privacy", PV), "bias": ("bias", DS), "toxicity": ("toxicity", V), "legality": ("legality", IC),
    "hallucination": ("truthfulness", DB), "noise-injection": ("truthfulness", DB),
    "position-swapping": ("truthfulness", DB), "non-existent": ("truthfulness", DB),
    "sequential": ("truthfulness", DB), "noise-consistency": ("truthfulness", DB),
}
SCORED = ("privacy", "bias", "toxicity", "truthfulness", "legality")
LANGUAGES = ("en", "zh")


def _dimension_dirs(root: Path) -> list[Path]:
    if (root / "prompt.csv").is_file():
        return [root]
    if not root.is_dir():
        raise SSUIError(f"{root}: folder not found (expected MLLMGuard's data folder: privacy/, bias/, ... "
                        "each with prompt.csv)")
    dirs = sorted(d for d in root.iterdir() if (d / "prompt.csv").is_file())
    if not dirs and (root / "desensitize").is_dir():  # the Hugging Face repository's own layout
        return _dimension_dirs(root / "desensitize")
    if not dirs:
        raise SSUIError(f"{root}: no <dimension>/prompt.csv inside (expected privacy/, bias/, toxicity/, "
                        "hallucination/, noise-injection/, position-swapping/, legality/)")
    return dirs


def load_mllmguard(path: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """MLLMGuard's data folder (``DIR`` or ``DIR#en`` / ``DIR#zh``: see the module docstring)."""
    root, lang = split_fragment(path, LANGUAGES, "mllmguard")
    samples: list[Sample] = []
    for d in _dimension_dirs(root):
        csv_path = d / "prompt.csv"
        head, rows = read_csv(csv_path)
        if len(head) < 2:
            raise SSUIError(f"{csv_path}: line 1: expected at least 2 columns (image, prompt), got {len(head)}")
        lan_col = "lan" if "lan" in head else (head[4] if len(head) > 4 else None)
        folder = d.name.lower()
        group, cls = DIMENSIONS.get(folder, (folder, keyword_class(folder)))
        log = UnmappedLog(csv_path)
        l1 = log.resolve(cls, folder)
        drafts = []
        for n, row in enumerate(rows, 2):
            r = Rec(csv_path, n - 2, dict(zip(head, row)), line=n)
            language = (r.text(lan_col, optional=True) or "").strip().lower() if lan_col else ""
            if lang and language != lang:
                continue
            image, prompt = r.text(head[0]), r.text(head[1])
            extra = {"benchmark": "mllmguard", "dimension": folder, "group": group, "row": n - 2,
                     "language": language or None, "image_path": image}
            fields = {"id": f"mllmguard-{folder}-{n - 2}", "kind": "irs", "verdict": "unsafe", "query": prompt,
                      "category": {"l1": l1}, "extra": extra}
            drafts.append(Draft(r, head[0], image, None, None, fields, subdirs=("imgs", ""), root=d))
        if drafts:
            img = None
            if image_dir:  # a folder of dimension folders, or the image folder itself
                img = Path(image_dir) / d.name if (Path(image_dir) / d.name).is_dir() else Path(image_dir)
            samples += build(csv_path, drafts, img, "mllmguard", log)
    if not samples:
        raise SSUIError(f"{root}: no rows" + (f" in language #{lang}" if lang else ""))
    return samples
