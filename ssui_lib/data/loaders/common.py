"""What every external benchmark loader shares: reading JSON / CSV with errors that name the file,
the record and the field; mapping a benchmark's category names onto SSUI's nine top classes (with
an explicit "Unmapped" class for a name no rule maps); resolving pictures (or caption mode); and
building validated Samples.

Category names are compared case-, space- and punctuation-insensitively ("&" = "and"). A name is
looked up in its benchmark's table first, then in the keyword rules (:data:`KEYWORDS`, "violen" →
Violence, "privacy" → Privacy Violations, ...), so spelling variants of a release still load. A name
that matches nothing never aborts the file: the record gets ``category.l1 = "Unmapped"``
(:data:`ssui_lib.core.taxonomy.UNMAPPED`), its original labels stay in ``extra`` and in
``provenance.notes``, and one warning per file counts such records and names the labels.
"""
from __future__ import annotations

import csv
import json
import re
import warnings
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ssui_lib.core.errors import SSUIError
from ssui_lib.core.schema import Sample
from ssui_lib.core.taxonomy import UNMAPPED

SPLIT = "test"  # external benchmarks are held out

DB, V, P, MV, IC, PC, DS, OR, PV = (
    "Dangerous Behavior", "Violence", "Pornography", "Moral Violations", "Illegal Crimes",
    "Political Controversies", "Discrimination and Stereotypes", "Offensive Religious Beliefs",
    "Privacy Violations",
)

# Fallback for names not in a table: the first rule whose keyword occurs in the normalised name wins.
KEYWORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("self harm", "suicid"), DB),
    (("porn", "erotic", "sexual", "nsfw", "obscen"), P),
    (("privacy", "personal information", "confidential", "trade secret", "surveillance"), PV),
    (("religio", "faith", "blasphem"), OR),
    (("discriminat", "stereotyp", "bias", "racis", "sexis", "hate", "prejudice"), DS),
    (("politic", "controvers", "election", "propaganda", "national security"), PC),
    (("violen", "weapon", "terror", "abuse", "assault", "physical harm", "psychological harm"), V),
    (("illegal", "crime", "criminal", "fraud", "theft", "drug", "legal", "cyber", "malware", "hack",
      "intellectual property", "exploit"), IC),
    (("moral", "ethic", "offensive", "defam", "toxic", "insult"), MV),
    (("danger", "harm", "risk", "injur", "hazard", "advice", "medical", "health", "misinform",
      "hallucinat", "truthful"), DB),
)


def normalise_name(name: str) -> str:
    """Lower case, "&" → "and", punctuation → spaces: ``"Illegal Activities & Crime"`` → ``"illegal activities and crime"``."""
    s = re.sub(r"[^a-z0-9]+", " ", name.lower().replace("&", " and "))
    return " ".join(s.split())


def keyword_class(name: str) -> str | None:
    """The top class the keyword rules give a category name, or None."""
    s = normalise_name(name)
    for words, cls in KEYWORDS:
        if any(w in s for w in words):
            return cls
    return None


def map_category(name: str, table: dict[str, str]) -> str | None:
    """A benchmark category name → one of the nine top classes (table first, then keywords), or None."""
    return table.get(normalise_name(name)) or keyword_class(name)


class UnmappedLog:
    """Counts the records of one file whose labels no rule maps, and warns once (:meth:`warn`)."""

    def __init__(self, path: Path):
        self.path = path
        self.labels: Counter[str] = Counter()

    def resolve(self, cls: str | None, label: str) -> str:
        if cls is None:
            self.labels[label] += 1
            return UNMAPPED
        return cls

    def warn(self) -> None:
        if self.labels:
            n = sum(self.labels.values())
            shown = ", ".join(f"{k!r} ({v})" for k, v in self.labels.most_common(8))
            warnings.warn(f"{self.path}: {n} record(s) with a category no rule maps to an SSUI class, loaded as "
                          f"{UNMAPPED!r} (original kept in extra): {shown}", UserWarning, stacklevel=3)


# ----------------------------------------------------------------------------- reading files


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; SSUIError names the file (and line/column of malformed JSON)."""
    p = Path(path)
    if not p.is_file():
        raise SSUIError(f"{p}: file not found" + (" (a folder was given)" if p.is_dir() else ""))
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SSUIError(f"{p}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise SSUIError(f"{p}: not UTF-8 text ({e.reason})") from None


def read_csv(path: str | Path, *, header: bool = True, keep_blank: bool = False) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV file (UTF-8, optional BOM). Rows shorter than the header are padded
    with ""; a row longer than the header is an error naming the file and the line. Blank rows are
    dropped unless ``keep_blank`` (headerless files only: row k is then the file's k-th row)."""
    p = Path(path)
    if not p.is_file():
        raise SSUIError(f"{p}: file not found" + (" (a folder was given)" if p.is_dir() else ""))
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise SSUIError(f"{p}: not UTF-8 text ({e.reason})") from None
    try:
        rows = list(csv.reader(text.splitlines(keepends=True)))
    except csv.Error as e:
        raise SSUIError(f"{p}: malformed CSV ({e})") from None
    content = [r for r in rows if any(c.strip() for c in r)]
    if not content:
        raise SSUIError(f"{p}: empty CSV file")
    if not header:
        return [], rows if keep_blank else content
    rows = content
    head = [h.strip() for h in rows[0]]
    out = []
    for n, r in enumerate(rows[1:], 2):
        if len(r) > len(head):
            raise SSUIError(f"{p}: line {n}: {len(r)} fields but the header has {len(head)}")
        out.append(r + [""] * (len(head) - len(r)))
    return head, out


def list_of_records(data: Any, path: Path, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise SSUIError(f"{path}: expected {what} to be a JSON list of records, got {type(data).__name__}")
    return data


@dataclass
class Rec:
    """One raw record and where it came from, for errors like ``file: record [3]: field 'question'``
    (JSON; ``index`` as in ``data[3]``) or ``file: line 5: field 'text'`` (CSV: ``line`` set)."""

    path: Path
    index: int
    data: Any
    section: str = ""  # "chat" / "embodied" for MSSBench
    line: int | None = None  # CSV: the file's line number

    def where(self, name: str | None = None) -> str:
        at = f"line {self.line}" if self.line is not None else f"record [{self.index}]"
        s = f"{self.path}: {self.section + ' ' if self.section else ''}{at}"
        return s + (f": field '{name}'" if name else "")

    def check_object(self) -> None:
        if not isinstance(self.data, dict):
            raise SSUIError(f"{self.where()}: expected a JSON object, got {type(self.data).__name__}")

    def text(self, name: str, *, optional: bool = False) -> str | None:
        """A non-empty string field (None if optional and absent/null/empty)."""
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

    def flag(self, name: str) -> int:
        """A 0/1 field (JSON int/bool, or CSV text "0"/"1"/"true"/"false")."""
        v = self.data.get(name)
        if isinstance(v, str):
            v = {"0": 0, "1": 1, "true": 1, "false": 0, "0.0": 0, "1.0": 1}.get(v.strip().lower(), v)
        if isinstance(v, bool):
            v = int(v)
        if v not in (0, 1):
            raise SSUIError(f"{self.where(name)}: expected 0 or 1, got {v!r}" if v is not None
                            else f"{self.where(name)}: missing")
        return int(v)

    def category(self, name: str, table: dict[str, str], log: UnmappedLog,
                 mapper: Callable[[str], str | None] | None = None) -> tuple[str, str]:
        """(original name, top class or "Unmapped"); the name itself must be a non-empty string."""
        raw = self.text(name)
        cls = mapper(raw) if mapper else map_category(raw, table)
        return raw, log.resolve(cls, raw)


# ----------------------------------------------------------------------------- images


@dataclass
class Draft:
    """A sample before its picture is resolved: the record, its image path and description."""

    rec: Rec
    image_field: str  # the record's field holding the picture's path
    image_rel: str
    description: str | None  # the format's text description of the picture, if it has one
    description_field: str | None  # where that description lives (None: the format never has one)
    fields: dict[str, Any] = field(default_factory=dict)  # the rest of the Sample's fields
    subdirs: tuple[str, ...] = ("",)  # subfolders of the image folder to look in, in order
    root: Path | None = None  # the default image folder of this record (default: the data file's folder)


def _find_image(root: Path, d: Draft) -> Path | None:
    for sub in d.subdirs:
        p = root / sub / d.image_rel if sub else root / d.image_rel
        if p.is_file():
            return p.resolve()
    return None


def _caption_mode_refusal(path: Path, root: Path, drafts: list[Draft], benchmark: str) -> str | None:
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


_PICTURES_OPTIONAL: ContextVar[bool] = ContextVar("pictures_optional", default=False)


@contextmanager
def pictures_optional():
    """Within this block, a file whose images are all absent (no ``image_dir`` given) loads
    without them even when the benchmark has no description of its pictures: for a consumer that
    never looks at pixels (a text-only judge). Each picture gets a placeholder caption."""
    token = _PICTURES_OPTIONAL.set(True)
    try:
        yield
    finally:
        _PICTURES_OPTIONAL.reset(token)


def resolve_images(path: Path, drafts: list[Draft], image_dir: str | Path | None, benchmark: str) -> list[Path | None]:
    """A file per draft, or all None in caption mode: when no ``image_dir`` is given, none of the
    images is found and every draft has a text description of its picture (one warning says so),
    or the caller does not need pictures (:func:`pictures_optional`)."""
    if image_dir and not Path(image_dir).is_dir():
        raise SSUIError(f"{path}: image folder {image_dir} not found")
    roots = [Path(image_dir) if image_dir else (d.root or path.parent) for d in drafts]
    found = [_find_image(r, d) for r, d in zip(roots, drafts)]
    root = roots[0] if roots else path.parent
    if drafts and image_dir is None and all(f is None for f in found):
        refusal = _caption_mode_refusal(path, root, drafts, benchmark)
        if refusal and _PICTURES_OPTIONAL.get():
            warnings.warn(f"{path}: no images found under {root}; loaded without them (their consumer never "
                          "looks at pictures)", UserWarning, stacklevel=4)
            return [None] * len(drafts)
        if refusal:
            raise SSUIError(refusal)
        fields = sorted({d.description_field for d in drafts if d.description_field})
        warnings.warn(f"{path}: no images found under {root}; caption mode: each picture is replaced by its "
                      f"text description ({', '.join(fields)}). Pass the image folder for pixels.",
                      UserWarning, stacklevel=4)
        return [None] * len(drafts)
    for d, f, r in zip(drafts, found, roots):
        if f is None:
            raise SSUIError(f"{d.rec.where(d.image_field)}: image {d.image_rel!r} not found in image folder {r}")
    return found


def _no_description(benchmark: str, rel: str) -> str:
    return f"a picture from {benchmark} ({Path(rel).name}); the benchmark gives no description of it"


def build(path: Path, drafts: list[Draft], image_dir: str | Path | None, benchmark: str,
          log: UnmappedLog | None = None) -> list[Sample]:
    """Resolve pictures, then validate every draft as a Sample (strict=False); ids must be unique.
    The original labels (``extra["category"]``, ``extra["sub_category"]``, ...) are also written to
    ``provenance.notes``; ``log`` (if given) warns once about unmapped labels."""
    if not drafts:
        raise SSUIError(f"{path}: no records")
    files = resolve_images(path, drafts, image_dir, benchmark)
    out: list[Sample] = []
    seen: dict[str, str] = {}
    for d, f in zip(drafts, files):
        rec = dict(d.fields)
        rec["image"] = {"caption": d.description or _no_description(benchmark, d.image_rel),
                        "source": f"file:{f}" if f is not None else None}
        rec["split"] = SPLIT
        extra = rec.get("extra") or {}
        labels = "; ".join(f"{k}={extra[k]}" for k in ORIGINAL_LABEL_KEYS if extra.get(k) not in (None, ""))
        rec["provenance"] = {"source": benchmark,
                             "notes": f"loaded from {path.name}; held-out benchmark under its own licence"
                                      + (f"; original labels: {labels}" if labels else "")}
        try:
            s = Sample.from_dict(rec, strict=False)
        except SSUIError as e:
            raise SSUIError(f"{d.rec.where()}: {e}") from None
        if s.id in seen:
            raise SSUIError(f"{d.rec.where()}: duplicate id {s.id!r} (also from {seen[s.id]})")
        seen[s.id] = d.rec.where()
        out.append(s)
    if log is not None:
        log.warn()
    return out


ORIGINAL_LABEL_KEYS = ("category", "sub_category", "type", "dimension", "level1_category", "level2_category",
                       "level3_category", "usage")


def split_fragment(arg: str | Path, allowed: tuple[str, ...], kind: str) -> tuple[Path, str | None]:
    """``PATH#SELECTION`` → (PATH, SELECTION or None); the selection must be one of ``allowed``."""
    s = str(arg)
    if "#" not in s:
        return Path(s), None
    p, frag = s.rsplit("#", 1)
    frag = frag.strip().lower()
    if frag not in allowed:
        raise SSUIError(f"dataset spec {kind}:{s}: unknown selection #{frag} (one of: {', '.join('#' + a for a in allowed)})")
    return Path(p), frag
