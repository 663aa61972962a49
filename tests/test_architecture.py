"""The library's architecture, checked on its source: imports flow one way between the rooms
(core → data → models → curation / eval / srpo → book / cli), no module imports itself back at
import time, the losses and metrics stay pure, and no module is over 600 lines."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "ssui_lib"
LAYER = {"core": 0, "data": 1, "models": 2, "curation": 3, "eval": 3, "srpo": 3, "book": 4, "cli": 4}
PURE = {"ssui_lib.srpo.losses", "ssui_lib.eval.metrics"}
PURE_ALLOWED = {"torch", "numpy", "pandas", "ssui_lib.core.errors"}
MAX_LINES = 600


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        if "node_modules" in p.parts:
            continue
        rel = p.relative_to(ROOT.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = p
    return out


def imports(path: Path, *, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every import of ``path`` (``from a import b`` also yields ``a.b``, which
    may be a module); ``top_level_only`` skips imports inside functions (lazy: not at import time)
    and under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = True
            if isinstance(child, ast.Import) and not (top_level_only and lazy):
                found.extend((child.lineno, a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and not (top_level_only and lazy) and child.level == 0 and child.module:
                found.append((child.lineno, child.module))
                found.extend((child.lineno, f"{child.module}.{a.name}") for a in child.names)
            visit(child, inner)

    visit(tree, False)
    return found


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "ssui_lib" and parts[1] in LAYER else None


def test_rooms_import_only_downwards():
    bad = []
    for mod, path in modules().items():
        src = room(mod)
        if src is None:
            continue
        for line, target in imports(path):
            dst = room(target)
            if dst is not None and LAYER[dst] > LAYER[src]:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {src} imports {target} ({dst} is above {src})")
    assert not bad, "\n".join(bad)


def test_no_import_loop_at_import_time():
    mods = modules()
    graph = {m: sorted({t for _, t in imports(p, top_level_only=True) if t in mods and t != m}) for m, p in mods.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if n.startswith(m + "."):
                continue  # a package importing its own submodules (re-exports)
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := dfs(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in graph:
        if m not in state and (cycle := dfs(m)):
            pytest.fail("import loop: " + " -> ".join(cycle))


def test_losses_and_metrics_are_pure():
    mods = modules()
    for mod in PURE:
        for line, target in imports(mods[mod]):
            top = target.split(".")[0]
            if top in sys.stdlib_module_names or target.startswith("__future__"):
                continue
            assert any(target == a or target.startswith(a + ".") for a in PURE_ALLOWED), \
                f"{mods[mod].relative_to(ROOT.parent)}:{line}: {mod} imports {target}"


def test_no_module_over_600_lines():
    long = {str(p.relative_to(ROOT.parent)): n for p in modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_checks_can_fail(tmp_path):
    """The import scanner sees lazy and TYPE_CHECKING imports, and tells them from top-level ones."""
    p = tmp_path / "m.py"
    p.write_text("import os\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ssui_lib.cli\n"
                 "def f():\n    from ssui_lib.book import plots\n")
    every = {t for _, t in imports(p)}
    top = {t for _, t in imports(p, top_level_only=True)}
    assert {"os", "ssui_lib.cli", "ssui_lib.book", "ssui_lib.book.plots"} <= every
    assert "ssui_lib.book" not in top and "ssui_lib.cli" not in top and "os" in top
    assert room("ssui_lib.book.plots") == "book" and room("numpy") is None
