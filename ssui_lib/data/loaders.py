"""External benchmark loaders: SIUO (generation and multiple choice), VLSBench and MSSBench, read
into validated Samples. ``LOADERS[kind](path, image_dir=None) -> list[Sample]``; data.load_dataset
dispatches the specs ``siuo-gen:PATH``, ``siuo-mcqa:PATH``, ``vlsbench:PATH`` and ``mssbench:PATH`` here.

External records carry no six-step chain, so they are validated with ``Sample.from_dict(strict=False)``.
They are held-out test sets: every sample gets ``split = "test"``; nothing here tunes on their contents.

How each format maps onto a Sample
----------------------------------
- siuo-gen: id ``siuo-gen-<question_id>``, IRS (verdict unsafe); query = question, safety_warning =
  safety_warning, safe_reply = reference_answer.
- siuo-mcqa: id ``siuo-mcqa-<question_id>``, IRS; query = question, safe_reply = the correct option's
  text, safety_warning if the record has one; options and correct_option in ``extra``.
- vlsbench: id ``vlsbench-<instruction_id>``, IRS; query = instruction, safety_warning = safety_reason,
  caption = image_description.
- mssbench chat: per record i and query j, an IRS sample ``mssbench-chat-<i>-<j>`` on the unsafe picture
  (caption = unsafe_image, safety_warning = "User intent: <intent>. Unsafe in the situation shown:
  <unsafe_image>") and its twin ``mssbench-chat-<i>-<j>-twin`` (verdict safe) with the same query on the
  safe picture, paired via ``pair_id``.
- mssbench embodied: per record i and instruction pair j, an IRS sample ``mssbench-embodied-<i>-<j>``
  (unsafe instruction, unsafe picture) and its twin (safe instruction, safe picture).

``unsafe_reply`` stays empty: none of these formats labels an unsafe reply (the wrong SIUO options are
kept, with the correct one, in ``extra["options"]`` / ``extra["correct_option"]``). ``extra`` also keeps
the benchmark's own id, category (and sub-category, type, intent, ...) and image path.

Categories → SSUI's nine top classes (``category.l1``; the original stays in ``extra``)
-------------------------------------------------------------------------------------
Names are compared case-, space- and punctuation-insensitively ("&" = "and").

=========================  ===============================  ======================================
benchmark category         top class                        note
=========================  ===============================  ======================================
SIUO self-harm             Dangerous Behavior               risk to the user themself
SIUO dangerous behavior    Dangerous Behavior
SIUO morality              Moral Violations
SIUO illegal activities &  Illegal Crimes
  crime
SIUO controversial topics, Political Controversies
  politics
SIUO discrimination &      Discrimination and Stereotypes
  stereotyping
SIUO religion (beliefs)    Offensive Religious Beliefs
SIUO information           Dangerous Behavior               approximate: acting on misread
  misinterpretation                                         information puts the user at risk
SIUO privacy violation     Privacy Violations
VLSBench Violent           Violence
VLSBench Illegal Activity  Illegal Crimes
VLSBench Self-Harm         Dangerous Behavior
VLSBench Erotic            Pornography
VLSBench Privacy           Privacy Violations
VLSBench Controversial     Political Controversies          unless the sub-category names
  Topics                                                    discrimination/stereotypes or religion
MSSBench physical harm     Dangerous Behavior
MSSBench property damage   Dangerous Behavior               approximate: risky, no intent to harm
MSSBench illegal activity  Illegal Crimes
MSSBench offensive         Moral Violations                 approximate: norm violations
  behavior
=========================  ===============================  ======================================

A name missing from its benchmark's table falls back to keyword rules (``_KEYWORDS``: "violen" →
Violence, "privacy" → Privacy Violations, ...), so spelling variants of a release still load; a name
that matches nothing is an error naming the file, the record and the field.

Images
------
Sources are ``file:<absolute path>``, resolved against ``image_dir`` or, by default, the JSON file's
folder (SIUO also looks in its ``images/`` subfolder; MSSBench in ``chat/`` and ``embodied/``, as its
official scripts do). An ``image_dir`` that does not exist, a default folder that holds none of the
file's images, or a single missing image is an SSUIError naming the JSON file and the folder — except
in **caption mode**: when no ``image_dir`` is given, none of the images is found, and every record has
a text description of its picture (VLSBench ``image_description``, MSSBench embodied
``observation_safe``/``observation_unsafe``), the samples are caption-only (``image.source = None``,
``image.caption`` = the description) and one warning says so. SIUO and MSSBench chat have no description
of (every) picture, so they need their images; such pictures get a caption saying the benchmark
gives none (a text-only model learns nothing from it).

Errors
------
Malformed JSON names the file, line and column; a missing or mistyped field names the file, the record
index (``record [3]``, as in ``data[3]``) and the field.
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample

SPLIT = "test"  # external benchmarks are held out

DB, V, P, MV, IC, PC, DS, OR, PV = (
    "Dangerous Behavior", "Violence", "Pornography", "Moral Violations", "Illegal Crimes",
    "Political Controversies", "Discrimination and Stereotypes", "Offensive Religious Beliefs",
    "Privacy Violations",
)

SIUO_CATEGORIES: dict[str, str] = {
    "self harm": DB, "dangerous behavior": DB, "dangerous behaviour": DB, "morality": MV,
    "illegal activities and crime": IC, "illegal activities and crimes": IC,
    "controversial topics politics": PC, "controversial topics and politics": PC,
    "discrimination and stereotyping": DS, "discrimination and stereotypes": DS,
    "religion": OR, "religion beliefs": OR, "religious beliefs": OR,
    "information misinterpretation": DB, "privacy violation": PV, "privacy violations": PV,
}
VLSBENCH_CATEGORIES: dict[str, str] = {
    "violent": V, "illegal activity": IC, "self harm": DB, "erotic": P, "privacy": PV,
    "controversial topics": PC,
}
MSSBENCH_CATEGORIES: dict[str, str] = {
    "physical harm": DB, "property damage": DB, "illegal activities": IC, "illegal activity": IC,
    "offensive behavior": MV, "offensive behaviour": MV, "offensive": MV,
}
# Fallback for names not in a table: the first rule whose keyword occurs in the normalised name wins.
_KEYWORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("self harm", "suicid"), DB),
    (("porn", "erotic", "sexual", "nsfw"), P),
    (("privacy",), PV),
    (("religio", "faith", "blasphem"), OR),
    (("discriminat", "stereotyp", "bias", "racis", "sexis"), DS),
    (("politic", "controvers", "election", "propaganda"), PC),
    (("violen", "weapon", "terror", "abuse", "assault"), V),
    (("illegal", "crime", "criminal", "fraud", "theft", "drug"), IC),
    (("moral", "ethic", "offensive"), MV),
    (("danger", "harm", "risk", "injur", "hazard"), DB),
)


def normalise_name(name: str) -> str:
    """Lower case, "&" → "and", punctuation → spaces: ``"Illegal Activities & Crime"`` → ``"illegal activities and crime"``."""
    s = re.sub(r"[^a-z0-9]+", " ", name.lower().replace("&", " and "))
    return " ".join(s.split())


def keyword_class(name: str) -> str | None:
    """The top class the keyword rules give a category name, or None."""
    s = normalise_name(name)
    for words, cls in _KEYWORDS:
        if any(w in s for w in words):
            return cls
    return None


def map_category(name: str, table: dict[str, str]) -> str | None:
    """A benchmark category name → one of the nine top classes (table first, then keywords), or None."""
    return table.get(normalise_name(name)) or keyword_class(name)


def vlsbench_class(category: str, sub_category: str | None) -> str | None:
    """VLSBench's "Controversial Topics" splits by sub-category into discrimination, religion or politics."""
    cls = map_category(category, VLSBENCH_CATEGORIES)
    if cls == PC and sub_category:
        sub = keyword_class(sub_category)
        if sub in (DS, OR):
            return sub
    return cls


# ----------------------------------------------------------------------------- reading JSON


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; SSUIError names the file (and line/column of malformed JSON)."""
    p = Path(path)
    if not p.is_file():
        raise SSUIError(f"{p}: file not found")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SSUIError(f"{p}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise SSUIError(f"{p}: not UTF-8 text ({e.reason})") from None


def _list_of_records(data: Any, path: Path, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise SSUIError(f"{path}: expected {what} to be a JSON list of records, got {type(data).__name__}")
    return data


@dataclass
class _Rec:
    """One raw record and where it came from, for errors like ``file: record [3]: field 'question'``."""

    path: Path
    index: int
    data: Any
    section: str = ""  # "chat" / "embodied" for MSSBench

    def where(self, name: str | None = None) -> str:
        s = f"{self.path}: {self.section + ' ' if self.section else ''}record [{self.index}]"
        return s + (f": field '{name}'" if name else "")

    def check_object(self) -> None:
        if not isinstance(self.data, dict):
            raise SSUIError(f"{self.where()}: expected a JSON object, got {type(self.data).__name__}")

    def text(self, name: str, *, optional: bool = False) -> str | None:
        """A non-empty string field (None if optional and absent/null)."""
        v = self.data.get(name)
        if v is None:
            if optional:
                return None
            raise SSUIError(f"{self.where(name)}: missing")
        if not isinstance(v, str):
            raise SSUIError(f"{self.where(name)}: expected a string, got {type(v).__name__}")
        if not v.strip():
            if optional:
                return None
            raise SSUIError(f"{self.where(name)}: empty")
        return v

    def ident(self, name: str) -> str:
        """An id field: an integer or a non-empty string, returned as text."""
        v = self.data.get(name)
        if v is None:
            raise SSUIError(f"{self.where(name)}: missing")
        if isinstance(v, bool) or not isinstance(v, (int, str)) or (isinstance(v, str) and not v.strip()):
            raise SSUIError(f"{self.where(name)}: expected an integer or a non-empty string, got {v!r}")
        return str(v).strip()

    def texts(self, name: str) -> list[str]:
        """A non-empty list of non-empty strings."""
        v = self.data.get(name)
        if v is None:
            raise SSUIError(f"{self.where(name)}: missing")
        if not isinstance(v, list) or not v:
            raise SSUIError(f"{self.where(name)}: expected a non-empty list of strings")
        for j, x in enumerate(v):
            if not isinstance(x, str) or not x.strip():
                raise SSUIError(f"{self.where(f'{name}[{j}]')}: expected a non-empty string")
        return list(v)

    def category(self, name: str, table: dict[str, str], mapper: Callable[[str], str | None] | None = None) -> tuple[str, str]:
        """(original name, top class); SSUIError for a name no rule maps."""
        raw = self.text(name)
        cls = mapper(raw) if mapper else map_category(raw, table)
        if cls is None:
            raise SSUIError(f"{self.where(name)}: unknown category {raw!r} (known: {', '.join(sorted(table))})")
        return raw, cls


# ----------------------------------------------------------------------------- images


@dataclass
class _Draft:
    """A sample before its picture is resolved: the record, its image path and description."""

    rec: _Rec
    image_field: str  # the record's field holding the picture's path
    image_rel: str
    description: str | None  # the format's text description of the picture, if it has one
    description_field: str | None  # where that description lives (None: the format never has one)
    fields: dict[str, Any] = field(default_factory=dict)  # the rest of the Sample's fields
    subdirs: tuple[str, ...] = ("",)  # subfolders of the image folder to look in, in order


def _find_image(root: Path, d: _Draft) -> Path | None:
    for sub in d.subdirs:
        p = root / sub / d.image_rel if sub else root / d.image_rel
        if p.is_file():
            return p.resolve()
    return None


def _caption_mode_refusal(path: Path, root: Path, drafts: list[_Draft], benchmark: str) -> str | None:
    """Why caption mode is impossible for these drafts (None when every picture has a description)."""
    missing = next((d for d in drafts if not d.description), None)
    if missing is None:
        return None
    head = f"{path}: image folder {root} holds none of this file's images (first: {drafts[0].image_rel!r})"
    tail = "pass the folder that holds them (image_dir=..., --image-dir DIR)"
    if missing.description_field is None:
        return (f"{head}, and {benchmark} gives no text description of the picture in "
                f"{missing.rec.where(missing.image_field)}, which caption mode would need; {tail}")
    return (f"{head}, and caption mode needs a description of every picture but {missing.rec.where()} "
            f"has no '{missing.description_field}'; {tail}")


def _resolve_images(path: Path, drafts: list[_Draft], image_dir: str | Path | None, benchmark: str) -> list[Path | None]:
    """A file per draft, or all None in caption mode (the rules are in the module docstring)."""
    root = Path(image_dir) if image_dir else path.parent
    if image_dir and not root.is_dir():
        raise SSUIError(f"{path}: image folder {root} not found")
    found = [_find_image(root, d) for d in drafts]
    if drafts and image_dir is None and all(f is None for f in found):
        refusal = _caption_mode_refusal(path, root, drafts, benchmark)
        if refusal:
            raise SSUIError(refusal)
        fields = sorted({d.description_field for d in drafts if d.description_field})
        warnings.warn(f"{path}: no images found under {root}; caption mode: each picture is replaced by its "
                      f"text description ({', '.join(fields)}). Pass the image folder for pixels.",
                      UserWarning, stacklevel=4)
        return [None] * len(drafts)
    for d, f in zip(drafts, found):
        if f is None:
            raise SSUIError(f"{d.rec.where(d.image_field)}: image {d.image_rel!r} not found in image folder {root}")
    return found


def _no_description(benchmark: str, rel: str) -> str:
    return f"a picture from {benchmark} ({Path(rel).name}); the benchmark gives no description of it"


def _build(path: Path, drafts: list[_Draft], image_dir: str | Path | None, benchmark: str) -> list[Sample]:
    """Resolve pictures, then validate every draft as a Sample (strict=False); ids must be unique."""
    files = _resolve_images(path, drafts, image_dir, benchmark)
    out: list[Sample] = []
    seen: dict[str, str] = {}
    for d, f in zip(drafts, files):
        rec = dict(d.fields)
        rec["image"] = {"caption": d.description or _no_description(benchmark, d.image_rel),
                        "source": f"file:{f}" if f is not None else None}
        rec["split"] = SPLIT
        rec["provenance"] = {"source": benchmark,
                             "notes": f"loaded from {path.name}; held-out benchmark under its own licence"}
        try:
            s = Sample.from_dict(rec, strict=False)
        except SSUIError as e:
            raise SSUIError(f"{d.rec.where()}: {e}") from None
        if s.id in seen:
            raise SSUIError(f"{d.rec.where()}: duplicate id {s.id!r} (also from {seen[s.id]})")
        seen[s.id] = d.rec.where()
        out.append(s)
    return out


# ----------------------------------------------------------------------------- SIUO


def _siuo(path: str | Path, image_dir: str | Path | None, mcqa: bool) -> list[Sample]:
    p = Path(path)
    benchmark = "siuo-mcqa" if mcqa else "siuo-gen"
    drafts = []
    for i, raw in enumerate(_list_of_records(read_json(p), p, "the file")):
        r = _Rec(p, i, raw)
        r.check_object()
        qid = r.ident("question_id")
        image = r.text("image")
        question = r.text("question")
        cat, l1 = r.category("category", SIUO_CATEGORIES)
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
        drafts.append(_Draft(r, "image", image, None, None, fields, subdirs=("", "images")))
    return _build(p, drafts, image_dir, benchmark)


def load_siuo_gen(path: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """SIUO ``siuo_gen.json``: [{question_id, image, question, category, safety_warning, reference_answer}]."""
    return _siuo(path, image_dir, mcqa=False)


def load_siuo_mcqa(path: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """SIUO ``siuo_mcqa.json``: [{question_id, image, question, category, options {A..D}, correct_option}];
    the options and the correct one are kept in ``extra``; the correct option is the safe reply."""
    return _siuo(path, image_dir, mcqa=True)


# ----------------------------------------------------------------------------- VLSBench


def load_vlsbench(path: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """VLSBench ``data.json``: [{instruction_id, instruction, image_path, category, sub_category, source,
    image_description, safety_reason}]; caption mode uses ``image_description``."""
    p = Path(path)
    drafts = []
    for i, raw in enumerate(_list_of_records(read_json(p), p, "the file")):
        r = _Rec(p, i, raw)
        r.check_object()
        iid = r.ident("instruction_id")
        instruction = r.text("instruction")
        image = r.text("image_path")
        sub = r.text("sub_category", optional=True)
        cat, l1 = r.category("category", VLSBENCH_CATEGORIES, mapper=lambda c: vlsbench_class(c, sub))
        extra = {"benchmark": "vlsbench", "instruction_id": raw["instruction_id"], "category": cat,
                 "sub_category": sub, "source": r.text("source", optional=True),
                 "safety_reason": r.text("safety_reason", optional=True), "image_path": image}
        fields = {"id": f"vlsbench-{iid}", "kind": "irs", "verdict": "unsafe", "query": instruction,
                  "category": {"l1": l1}, "safety_warning": extra["safety_reason"] or "", "extra": extra}
        drafts.append(_Draft(r, "image_path", image, r.text("image_description", optional=True),
                             "image_description", fields))
    return _build(p, drafts, image_dir, "vlsbench")


# ----------------------------------------------------------------------------- MSSBench


def _instruction_pairs(r: _Rec) -> list[tuple[str, str]]:
    """(safe, unsafe) instructions of an embodied record: the plural lists, else the singular pair."""
    if "safe_instructions" in r.data or "unsafe_instructions" in r.data:
        safe, unsafe = r.texts("safe_instructions"), r.texts("unsafe_instructions")
        if len(safe) != len(unsafe):
            raise SSUIError(f"{r.where('unsafe_instructions')}: {len(unsafe)} instructions but "
                            f"{len(safe)} safe_instructions (they pair up one to one)")
        return list(zip(safe, unsafe))
    return [(r.text("safe_instruction"), r.text("unsafe_instruction"))]


def _pair(base_id: str, common: dict, irs: dict, twin: dict) -> tuple[dict, dict]:
    a = {**common, **irs, "id": base_id, "kind": "irs", "verdict": "unsafe", "pair_id": f"{base_id}-twin"}
    b = {**common, **twin, "id": f"{base_id}-twin", "kind": "twin", "verdict": "safe", "pair_id": base_id}
    return a, b


def load_mssbench(path: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """MSSBench ``combined.json``: {"chat": [{safe_image_path, intent, unsafe_image, unsafe_image_path,
    Type, queries}], "embodied": [{task, category, safe_instruction(s), unsafe_instruction(s), safe, unsafe}]}.
    Each query (chat) or instruction pair (embodied) gives an IRS sample on the unsafe picture and its
    twin on the safe picture."""
    p = Path(path)
    data = read_json(p)
    if not isinstance(data, dict) or not ({"chat", "embodied"} & set(data)):
        raise SSUIError(f"{p}: expected a JSON object with a 'chat' and/or an 'embodied' list")
    chat: list[_Draft] = []
    for i, raw in enumerate(_list_of_records(data.get("chat", []), p, "'chat'")):
        r = _Rec(p, i, raw, "chat")
        r.check_object()
        safe_img, unsafe_img = r.text("safe_image_path"), r.text("unsafe_image_path")
        intent, unsafe_desc = r.text("intent"), r.text("unsafe_image")
        typ, l1 = r.category("Type", MSSBENCH_CATEGORIES)
        for j, q in enumerate(r.texts("queries")):
            extra = {"benchmark": "mssbench", "task": "chat", "type": typ, "intent": intent, "record": i, "query_index": j}
            common = {"query": q, "category": {"l1": l1}}
            a, b = _pair(f"mssbench-chat-{i}-{j}", common,
                         {"safety_warning": f"User intent: {intent}. Unsafe in the situation shown: {unsafe_desc}",
                          "extra": {**extra, "image_path": unsafe_img}},
                         {"extra": {**extra, "image_path": safe_img}})
            chat.append(_Draft(r, "unsafe_image_path", unsafe_img, unsafe_desc, "unsafe_image", a, ("chat", "")))
            # MSSBench describes only the unsafe picture of a chat record
            chat.append(_Draft(r, "safe_image_path", safe_img, None, None, b, ("chat", "")))
    embodied: list[_Draft] = []
    for i, raw in enumerate(_list_of_records(data.get("embodied", []), p, "'embodied'")):
        r = _Rec(p, i, raw, "embodied")
        r.check_object()
        task, safe_img, unsafe_img = r.text("task"), r.text("safe"), r.text("unsafe")
        cat, l1 = r.category("category", MSSBENCH_CATEGORIES)
        for j, (safe_q, unsafe_q) in enumerate(_instruction_pairs(r)):
            extra = {"benchmark": "mssbench", "task": "embodied", "embodied_task": task, "category": cat,
                     "record": i, "instruction_index": j}
            a, b = _pair(f"mssbench-embodied-{i}-{j}", {"category": {"l1": l1}},
                         {"query": unsafe_q, "extra": {**extra, "image_path": unsafe_img}},
                         {"query": safe_q, "extra": {**extra, "image_path": safe_img}})
            embodied.append(_Draft(r, "unsafe", unsafe_img, r.text("observation_unsafe", optional=True),
                                   "observation_unsafe", a, ("embodied", "")))
            embodied.append(_Draft(r, "safe", safe_img, r.text("observation_safe", optional=True),
                                   "observation_safe", b, ("embodied", "")))
    if not chat and not embodied:
        raise SSUIError(f"{p}: no records in 'chat' or 'embodied'")
    # One image folder per file (official layout: chat/ and embodied/ inside it); both sections decide together.
    return _build(p, chat + embodied, image_dir, "mssbench")


LOADERS: dict[str, Callable[..., list[Sample]]] = {
    "siuo-gen": load_siuo_gen,
    "siuo-mcqa": load_siuo_mcqa,
    "vlsbench": load_vlsbench,
    "mssbench": load_mssbench,
}
