"""Resolve image references to pixels.

Sources are URIs, so records stay small and the book commits no one else's photos:
  ``skimage:coffee.png``            a file in scikit-image's bundled ``skimage/data`` folder
  ``sklearn:china.jpg``             a file in scikit-learn's ``sklearn/datasets/images``
  ``matplotlib:grace_hopper.jpg``   a file in matplotlib's ``mpl-data/sample_data``
  ``file:PATH``                     a local file (relative paths resolve against ``base_dir``)
These photos ship inside installed wheels and are loaded at run time. The photo registry
(bundled/photos.json) holds one canonical caption per shipped picture, written by looking at it.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ssui_lib.core.errors import SSUIError

_PACKAGE_DIRS = {
    "skimage": ("skimage", "data"),
    "sklearn": ("sklearn", "datasets/images"),
    "matplotlib": ("matplotlib", "mpl-data/sample_data"),
}


@dataclass
class ImageRef:
    """Pixels (a PIL image, or None in caption-only records) and the caption describing them: the
    image part of a prompt (``models.base``), built by the data layer (``data.bundled.image_ref``)."""

    caption: str
    pil: Any = None  # PIL.Image.Image | None
    source: str | None = None


def caption_text(ref: ImageRef) -> str:
    """What a text-only model sees instead of the pixels ("caption mode")."""
    return f"[Image: {ref.caption.strip()}]"


def _package_dir(pkg: str) -> Path:
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise SSUIError(f"package {pkg!r} is not installed (needed for {pkg}: images)")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_path(source: str, base_dir: str | Path | None = None) -> Path:
    """The file a source URI points to; SSUIError if the scheme is unknown or the file is missing."""
    if ":" not in source:
        raise SSUIError(f"image source {source!r}: expected SCHEME:NAME (skimage:, sklearn:, matplotlib:, file:)")
    scheme, name = source.split(":", 1)
    if scheme == "file":
        p = Path(name)
        if not p.is_absolute() and base_dir is not None:
            p = Path(base_dir) / p
    elif scheme in _PACKAGE_DIRS:
        pkg, sub = _PACKAGE_DIRS[scheme]
        p = _package_dir(pkg) / sub / name
    else:
        raise SSUIError(f"image source {source!r}: unknown scheme {scheme!r} (skimage, sklearn, matplotlib, file)")
    if not p.is_file():
        raise SSUIError(f"image source {source!r}: file not found: {p}")
    return p


@lru_cache(maxsize=64)
def _load(path: str):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def load_image(source: str, base_dir: str | Path | None = None):
    """A PIL RGB image for a source URI (cached)."""
    return _load(str(resolve_path(source, base_dir)))


REGISTRY_PATH = Path(__file__).parent / "bundled" / "photos.json"
PHOTO_KINDS = ("photo", "micrograph", "illustration")


@dataclass(frozen=True)
class Photo:
    """One shipped picture: its canonical caption (written by looking at the pixels) and what it can carry."""

    source: str
    caption: str
    carries: str
    kind: str = "photo"


def read_photo_registry(path: str | Path = REGISTRY_PATH) -> dict[str, Photo]:
    """The photo registry: ``{source: {"caption", "carries", "kind"}}`` as Photos, in file order.
    Every record on a registered picture uses exactly its caption (checked when the bundled set loads).
    SSUIError naming the file and field on a malformed entry."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SSUIError(f"{path}: photo registry not found") from None
    except json.JSONDecodeError as e:
        raise SSUIError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(raw, dict):
        raise SSUIError(f"{path}: expected an object mapping image sources to entries")
    out: dict[str, Photo] = {}
    for src, entry in raw.items():
        if ":" not in src:
            raise SSUIError(f"{path}: entry {src!r}: expected a SCHEME:NAME image source")
        if not isinstance(entry, dict):
            raise SSUIError(f"{path}: entry {src!r}: expected an object")
        extra = set(entry) - {"caption", "carries", "kind"}
        if extra:
            raise SSUIError(f"{path}: entry {src!r}: field {sorted(extra)[0]!r}: unknown field")
        for key in ("caption", "carries"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise SSUIError(f"{path}: entry {src!r}: field {key!r}: expected a non-empty string")
        kind = entry.get("kind", "photo")
        if kind not in PHOTO_KINDS:
            raise SSUIError(f"{path}: entry {src!r}: field 'kind': {kind!r} is not one of {', '.join(PHOTO_KINDS)}")
        out[src] = Photo(src, entry["caption"], entry["carries"], kind)
    return out


@lru_cache(maxsize=1)
def photo_registry() -> dict[str, Photo]:
    """The bundled photo registry (ssui_lib/data/bundled/photos.json), cached."""
    return read_photo_registry(REGISTRY_PATH)


def canonical_caption(source: str) -> str | None:
    """The registry caption of a picture source, or None if the source is not registered."""
    entry = photo_registry().get(source)
    return entry.caption if entry else None


# Real pictures that ship in installed wheels, usable as sample images (source -> canonical caption).
SHIPPED_PHOTOS: dict[str, str] = {src: p.caption for src, p in photo_registry().items()}


def registry_caption_problem(source: str | None, caption: str) -> str | None:
    """Why a record's picture disagrees with the photo registry, or None when it agrees: a record on a
    shipped picture (skimage:, sklearn:, matplotlib:) must be registered and use exactly its caption."""
    if not source or source.split(":", 1)[0] not in _PACKAGE_DIRS:
        return None
    entry = photo_registry().get(source)
    if entry is None:
        return f"image source {source!r} is not in the photo registry ({REGISTRY_PATH.name})"
    if caption != entry.caption:
        return f"caption differs from the photo registry's caption for {source!r}: {entry.caption!r}"
    return None
