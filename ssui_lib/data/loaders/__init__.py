"""External benchmark loaders, one module per benchmark, read into validated Samples:
``LOADERS[kind](path, image_dir=None) -> list[Sample]``. ``ssui_lib.data.bundled.load_dataset``
dispatches the dataset specs here:

==================================  ===========================================================
spec                                what it reads (module)
==================================  ===========================================================
``siuo-gen:PATH``                   SIUO ``siuo_gen.json`` (:mod:`.siuo`)
``siuo-mcqa:PATH``                  SIUO ``siuo_mcqa.json`` (:mod:`.siuo`)
``vlsbench:PATH``                   VLSBench ``data.json`` (:mod:`.vlsbench`)
``mssbench:PATH``                   MSSBench ``combined.json``, chat and embodied (:mod:`.mssbench`)
``usb:PATH[#SEL]``                  USB ``USB_base_final.csv`` / ``USB_hard_final.csv``; SEL one of
                                    sist, sirt, rist, rirt, vulnerability, overrefusal (:mod:`.usb`)
``mllmguard:DIR[#en|#zh]``          MLLMGuard's dimension folders with ``prompt.csv`` (or their
                                    ``desensitize/`` parent) (:mod:`.mllmguard`)
``safebench:DIR``                   SafeBench's ``text/<n>.csv`` + ``img/`` + ``category.csv``, or
                                    ``<category>/<sub-category>.csv`` files (:mod:`.safebench`)
==================================  ===========================================================

Shared rules (:mod:`.common`): external records carry no six-step chain, so they are validated with
``Sample.from_dict(strict=False)``; they are held-out test sets (``split = "test"``; nothing here
tunes on their contents). Each benchmark's categories map onto SSUI's nine top classes (tables in each
module's docstring) with the original labels kept in ``extra`` and ``provenance.notes``; a label no
rule maps becomes the explicit class "Unmapped" with one warning per file that counts them. Malformed
JSON names the file, line and column; a malformed record names the file, the record (``record [3]``,
JSON) or line (CSV) and the field. Caption mode — the picture replaced by the benchmark's own text
description — applies where a benchmark has one (VLSBench ``image_description``, MSSBench embodied
``observation_*``) and no image folder is found; USB, MLLMGuard, SafeBench, SIUO and MSSBench chat
have none and need their images.

``unsafe_reply`` stays empty: none of these formats labels an unsafe reply.
"""
from __future__ import annotations

from typing import Callable

from ssui_lib.core.schema import Sample
from ssui_lib.data.loaders.common import SPLIT, keyword_class, map_category, normalise_name, read_json
from ssui_lib.data.loaders.mllmguard import load_mllmguard
from ssui_lib.data.loaders.mssbench import MSSBENCH_CATEGORIES, load_mssbench
from ssui_lib.data.loaders.safebench import load_safebench
from ssui_lib.data.loaders.siuo import SIUO_CATEGORIES, load_siuo_gen, load_siuo_mcqa
from ssui_lib.data.loaders.usb import load_usb
from ssui_lib.data.loaders.vlsbench import VLSBENCH_CATEGORIES, load_vlsbench, vlsbench_class

LOADERS: dict[str, Callable[..., list[Sample]]] = {
    "siuo-gen": load_siuo_gen,
    "siuo-mcqa": load_siuo_mcqa,
    "vlsbench": load_vlsbench,
    "mssbench": load_mssbench,
    "usb": load_usb,
    "mllmguard": load_mllmguard,
    "safebench": load_safebench,
}

__all__ = [
    "LOADERS", "SPLIT", "SIUO_CATEGORIES", "VLSBENCH_CATEGORIES", "MSSBENCH_CATEGORIES", "keyword_class",
    "map_category", "normalise_name", "read_json", "vlsbench_class", "load_siuo_gen", "load_siuo_mcqa",
    "load_vlsbench", "load_mssbench", "load_usb", "load_mllmguard", "load_safebench",
]
