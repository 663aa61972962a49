"""Resolve image references to pixels.

Sources are URIs, so records stay small and the book commits no one else's photos:
  ``skimage:coffee.png``            a file in scikit-image's bundled ``skimage/data`` folder
  ``sklearn:china.jpg``             a file in scikit-learn's ``sklearn/datasets/images``
  ``matplotlib:grace_hopper.jpg``   a file in matplotlib's ``mpl-data/sample_data``
  ``file:PATH``                     a local file (relative paths resolve against ``base_dir``)
These photos ship inside installed wheels and are loaded at run time.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from ssui_lib.core.errors import SSUIError

_PACKAGE_DIRS = {
    "skimage": ("skimage", "data"),
    "sklearn": ("sklearn", "datasets/images"),
    "matplotlib": ("matplotlib", "mpl-data/sample_data"),
}


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


# Real photos that ship in installed wheels, usable as sample images (name -> what it shows).
SHIPPED_PHOTOS: dict[str, str] = {
    "skimage:astronaut.png": "astronaut Eileen Collins in a flight suit, with a US flag and a space-shuttle model",
    "skimage:camera.png": "a man standing on a lawn operating a camera on a tripod (grayscale)",
    "skimage:chelsea.png": "a tabby cat (Chelsea) sitting, looking to the side",
    "skimage:coffee.png": "a cup of coffee with latte art on a saucer with a spoon",
    "skimage:coins.png": "a set of old coins laid out on a dark surface (grayscale)",
    "skimage:rocket.jpg": "a rocket standing on a launch pad under a blue sky",
    "skimage:motorcycle_left.png": "a red motorcycle parked indoors in front of a wall",
    "skimage:hubble_deep_field.jpg": "the Hubble deep field: many distant galaxies on a black background",
    "skimage:page.png": "a scanned textbook page about image segmentation (grayscale)",
    "skimage:text.png": "handwritten mathematical formulas (grayscale)",
    "skimage:moon.png": "a close-up of the Moon's cratered surface (grayscale)",
    "skimage:clock_motion.png": "a wall clock photographed with motion blur (grayscale)",
    "skimage:retina.jpg": "a photograph of a human retina (fundus image)",
    "skimage:brick.png": "a brick wall (grayscale texture)",
    "skimage:grass.png": "a patch of grass (grayscale texture)",
    "skimage:gravel.png": "gravel on the ground (grayscale texture)",
    "sklearn:china.jpg": "a traditional Chinese temple building with a tree in front",
    "sklearn:flower.jpg": "a close-up of a peach-orange dahlia flower",
    "matplotlib:grace_hopper.jpg": "a portrait of computer scientist Grace Hopper in a US Navy uniform",
}
