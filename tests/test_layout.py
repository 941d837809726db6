"""The house: every module imports on its own, arrows point down, no module grows past its limit.

Spec: specs/README.md

The import graph is read from the sources (`ast`, every `import` and `from … import` of the package,
inside functions too); the isolation test imports each module with no other package module loaded.
"""

from __future__ import annotations

import ast
import importlib
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nanofourdnex"
MAX_LINES = 450
# Modules allowed past MAX_LINES; the README's "Layout" section says why for each.
LONG_MODULES = {"cli", "data", "viewer", "tools.ablation", "tools.plan"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


MODULES = sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


@cache
def imports(module: str) -> frozenset[str]:
    """Package modules that `module` imports anywhere in its source."""
    path = PACKAGE / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE / module.replace(".", "/") / "__init__.py"
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            elif node.module and node.module.startswith("nanofourdnex"):
                target = node.module.removeprefix("nanofourdnex").lstrip(".")
            else:
                continue
            candidates = [target] + [f"{target}.{a.name}".lstrip(".") for a in node.names]
            found |= {c for c in candidates if c in MODULES and c != module}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name.removeprefix("nanofourdnex").lstrip(".")
                if alias.name.startswith("nanofourdnex") and name in MODULES:
                    found.add(name)
    found.discard("")  # the package's own __init__
    return frozenset(found)


def test_the_import_graph_has_no_cycle():
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(imports(module)):
            if state.get(target) == "open":
                cycle = path[path.index(target) :] + [target] if target in path else [module, target]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("paper.")])
def test_the_papers_modules_import_nothing_from_the_pipeline(module):
    outside = sorted(m for m in imports(module) if not m.startswith("paper"))
    assert not outside, f"nanofourdnex.{module} imports {outside}: a paper module may import only the paper's"


ENTRY_POINTS = {
    "cli",
    "pretrain",
}  # the commands' own modules: pretrain runs `train`'s step on its own objective


@pytest.mark.parametrize(
    "module", [m for m in MODULES if not m.startswith("tools") and m not in ENTRY_POINTS]
)
def test_only_the_entry_points_and_the_tools_import_train_and_the_tools(module):
    above = sorted(m for m in imports(module) if m == "train" or m.startswith("tools."))
    assert not above, (
        f"nanofourdnex.{module} imports {above}: arrows point down (only cli, pretrain and tools may)"
    )


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_on_its_own(module):
    loaded = {name: sys.modules.pop(name) for name in list(sys.modules) if name.startswith("nanofourdnex")}
    try:
        importlib.import_module(f"nanofourdnex.{module}".rstrip("."))
    finally:
        for name in [n for n in sys.modules if n.startswith("nanofourdnex")]:
            del sys.modules[name]
        sys.modules.update(loaded)


@pytest.mark.parametrize("module", MODULES)
def test_no_module_is_longer_than_the_limit_unless_the_readme_says_why(module):
    path = PACKAGE / (module.replace(".", "/") + ".py")
    if not path.exists():
        return  # a package __init__
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if module in LONG_MODULES:
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        assert f"`{module.replace('.', '/')}.py`" in readme, f"the README does not say why {module} is long"
    else:
        assert lines <= MAX_LINES, (
            f"nanofourdnex/{module.replace('.', '/')}.py has {lines} lines (limit {MAX_LINES})"
        )
