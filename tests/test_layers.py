"""The house shows the flow: every import inside cir/ goes to its own layer or a lower one (docs/architecture.md).

Imports are read from the source (module level, inside functions, and under TYPE_CHECKING alike), so a lazy import
cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cir

# bottom -> top; a module may import from its own layer and the layers below it
LAYERS = (
    ("errors", "kept", "paths", "version"),
    ("scenes", "ingest"),
    ("backbones",),
    ("encode",),
    ("edits",),
    ("datasets", "index"),
    ("compose",),
    ("query",),
    ("rerankers",),
    ("store", "scale"),
    ("eval",),
    ("train", "demo", "server", "client"),
    ("cli", "__init__", "__main__"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
ROOT = Path(cir.__file__).parent


def top_package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] if len(parts) > 1 else parts
    return ".".join(parts) if parts != ["cir", "__init__"] else "cir"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "cir":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "cir")
    return found


def layer_of(module: str) -> str:
    name = top_package(module) if module != "cir" else "__init__"
    if name.endswith(".py"):
        name = name[:-3]
    return name


def test_every_package_has_a_layer():
    packages = {p.name if p.is_dir() else p.stem for p in ROOT.iterdir()
                if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    assert packages <= set(RANK), f"give these a layer in tests/test_layers.py and docs/architecture.md: {sorted(packages - set(RANK))}"


def test_nothing_imports_from_a_higher_layer():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        here = module_name(path)
        mine = layer_of(here)
        for target in imports_of(path):
            theirs = layer_of(target)
            if target == "cir":
                theirs = "__init__"
            if RANK[theirs] > RANK[mine]:
                upward.append(f"{here} ({mine}, layer {RANK[mine]}) imports {target} ({theirs}, layer {RANK[theirs]})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_serving_a_query_imports_no_training_code():
    import subprocess
    import sys

    code = ("import sys, cir.query, cir.compose, cir.store, cir.server.app; "
            "import cir.compose.pic2word, cir.compose.combiner, cir.compose.qformer; "
            "print(sorted(m for m in sys.modules if m.startswith('cir.train') or m.startswith('cir.eval')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


def test_no_import_circles_between_packages():
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        mine = layer_of(module_name(path))
        for target in imports_of(path):
            theirs = "__init__" if target == "cir" else layer_of(target)
            if theirs != mine:
                graph.setdefault(mine, set()).add(theirs)
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("import circle: " + " -> ".join(stack[stack.index(node):] + [node]))
        if node in seen:
            return
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        stack.pop()
        seen.add(node)

    for node in sorted(graph):
        visit(node)
    assert graph["query"] and "store" not in graph["query"]  # the query path sees vectors only through a Gallery
