"""The three-level safety taxonomy: SSUI's nine top classes, with second and third levels
designed by this project (documented in ssui_lib/data/bundled/DATASHEET.md).

TAXONOMY maps level-1 class -> level-2 class -> list of level-3 classes.
"""
from __future__ import annotations

import json
from pathlib import Path

from ssui_lib.core.errors import SSUIError

L1_CATEGORIES: tuple[str, ...] = (
    "Dangerous Behavior",
    "Violence",
    "Pornography",
    "Moral Violations",
    "Illegal Crimes",
    "Political Controversies",
    "Discrimination and Stereotypes",
    "Offensive Religious Beliefs",
    "Privacy Violations",
)

# The level-1 class of an external benchmark record whose own label no mapping rule places in the
# nine (ssui_lib.data.loaders): allowed at level 1 only, never in the bundled set's quotas or plots.
UNMAPPED = "Unmapped"

TAXONOMY_DIR = Path(__file__).resolve().parents[1] / "data" / "bundled" / "parts"


def _load_taxonomy() -> dict[str, dict[str, list[str]]]:
    """Merge the level-2/3 classes authored beside the bundled records (parts/*.taxonomy.json)."""
    tax: dict[str, dict[str, list[str]]] = {c: {} for c in L1_CATEGORIES}
    for f in sorted(TAXONOMY_DIR.glob("*.taxonomy.json")):
        for l1, subs in json.loads(f.read_text(encoding="utf-8")).items():
            if l1 not in tax:
                raise SSUIError(f"{f}: unknown level-1 category {l1!r}")
            tax[l1].update(subs)
    return tax


TAXONOMY: dict[str, dict[str, list[str]]] = _load_taxonomy()

# The category a benign twin carries: the class of the IRS record it mirrors (so per-category
# over-refusal can be reported); twins are distinguished by kind == "twin", not by category.


def check_category(l1: str, l2: str | None = None, l3: str | None = None) -> None:
    """Raise SSUIError naming the level and the allowed values if the path is unknown."""
    if l1 == UNMAPPED and l2 is None and l3 is None:
        return
    if l1 not in TAXONOMY:
        raise SSUIError(f"unknown category {l1!r}; expected one of: {', '.join(L1_CATEGORIES)}")
    if l2 is None:
        return
    subs = TAXONOMY[l1]
    if l2 not in subs:
        raise SSUIError(f"unknown level-2 category {l2!r} under {l1!r}; expected one of: {', '.join(subs) or '(none defined)'}")
    if l3 is None:
        return
    if l3 not in subs[l2]:
        raise SSUIError(f"unknown level-3 category {l3!r} under {l1!r} > {l2!r}; expected one of: {', '.join(subs[l2])}")
