"""Specs, modules and tests stay linked: every path a spec names exists, every test cites its spec. Spec: specs/README.md

Reads files only (markdown, Python sources via `ast`, pyproject.toml); imports nothing from the
package, so it runs in well under a second and fails with the file and the missing thing named.
"""

from __future__ import annotations

import ast
import re
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
PACKAGE = ROOT / "nanofourdnex"
INDEX = SPECS / "README.md"

PAPER = PACKAGE / "paper"
# The modules that implement an equation or a paper section: exactly the modules of nanofourdnex/paper/.
EQUATION_MODULES = (
    "curvature",
    "quality",
    "flow_matching",
    "fusion",
    "xyz_init",
    "normalization",
    "mask",
    "token_encoding",
    "reprojection",
    "reprojection_start",
)
# A paper module's docstring ends with this line: its spec page and its tests (with their marker).
LINK_LINE = re.compile(r"^Spec: (specs/[\w.-]+\.md) · Tests: (tests/test_\w+\.py) \(-m (\w+)\)$")

LINK = re.compile(r"\[([^\]\n]*)\]\(([^)\s]+)\)")  # [text](target)
BACKTICKED = re.compile(r"`([^`\n]+)`")
# A repository path as a spec names it: `nanofourdnex/x.py`, `tests/test_x.py::test_name`, `specs/x.md`.
PROJECT_PATH = re.compile(
    r"^(?:\.\./)?((?:nanofourdnex|tests|specs|tutorials)/[\w./-]+\.(?:py|md))(?:::([\w:]+)(?:\[[^\]]*\])?)?$"
)
SPEC_CITATION = re.compile(r"specs/[\w.-]+\.md")


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def spec_pages() -> list[Path]:
    """Every spec page except the index."""
    return sorted(p for p in SPECS.glob("*.md") if p != INDEX)


def all_test_files() -> list[Path]:
    return sorted((ROOT / "tests").glob("test_*.py"))


@cache
def docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


@cache
def node_names(path: Path) -> frozenset[str]:
    """`test_x` for module-level tests and `TestClass::test_x` for methods, as pytest node ids name them."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names |= {
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test")
            }
    return frozenset(names)


def references(page: Path) -> list[tuple[str, str | None]]:
    """(repository path, test name or None) for every backticked project path on a page."""
    found = []
    for text in BACKTICKED.findall(page.read_text(encoding="utf-8")):
        match = PROJECT_PATH.match(text.strip())
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def link_targets(page: Path) -> list[tuple[str, str]]:
    """(link text, target) for every relative link on a page (web links and in-page anchors skipped)."""
    return [
        (text, target)
        for text, target in LINK.findall(page.read_text(encoding="utf-8"))
        if not re.match(r"^(?:[a-z]+:|#)", target)
    ]


def resolve(page: Path, target: str) -> Path:
    return (page.parent / target.split("#", 1)[0]).resolve()


@cache
def named_paths(page: Path) -> frozenset[str]:
    """Repository paths a page names, by link target or backticked path."""
    paths = {path for path, _ in references(page)}
    for _, target in link_targets(page):
        resolved = resolve(page, target)
        if resolved.is_relative_to(ROOT):
            paths.add(rel(resolved))
    return frozenset(paths)


def marker_pages() -> dict[str, str]:
    """marker → the spec page its description in pyproject.toml names."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        markers = tomllib.load(file)["tool"]["pytest"]["ini_options"]["markers"]
    pages = {}
    for line in markers:
        name, _, description = line.partition(":")
        match = SPEC_CITATION.search(description)
        if match:
            pages[name.strip()] = match.group(0)
    return pages


def file_markers(path: Path) -> set[str]:
    """Marker names set by `pytestmark = pytest.mark.x` (or a list of them) in a test file."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            names = set()
            for value in values:
                value = value.func if isinstance(value, ast.Call) else value
                if isinstance(value, ast.Attribute):
                    names.add(value.attr)
            return names
    return set()


def cited_modules() -> list[str]:
    """Package modules (sub-packages included) whose docstring cites an equation ("Eq.")."""
    return sorted(rel(p) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" and "Eq." in docstring(p))


# (a) the paper's modules: exactly EQUATION_MODULES, each linked to its spec page and tests both ways.


def test_the_paper_package_holds_exactly_the_equation_modules():
    found = sorted(p.stem for p in PAPER.glob("*.py") if p.stem != "__init__")
    assert found == sorted(EQUATION_MODULES), (
        f"nanofourdnex/paper/ holds {found}, EQUATION_MODULES lists others"
    )


@pytest.mark.parametrize("module", EQUATION_MODULES)
def test_every_equation_module_is_named_by_a_spec_page(module):
    path = f"nanofourdnex/paper/{module}.py"
    pages = [rel(p) for p in spec_pages() if path in named_paths(p)]
    assert pages, f"no spec page in specs/ names {path} (an equation module of EQUATION_MODULES)"


@pytest.mark.parametrize("module", EQUATION_MODULES)
def test_every_equation_module_ends_its_docstring_with_its_spec_and_tests(module):
    path = PAPER / f"{module}.py"
    last = docstring(path).strip().splitlines()[-1]
    match = LINK_LINE.match(last)
    assert match, (
        f"{rel(path)}: the docstring's last line must be 'Spec: specs/<page>.md · Tests: tests/<file>.py (-m <marker>)', got {last!r}"
    )
    page, tests, marker = match.groups()
    assert (ROOT / page).is_file() and (ROOT / tests).is_file(), f"{rel(path)} names {page} and {tests}"
    assert rel(path) in named_paths(ROOT / page), f"{rel(path)} cites {page}, which does not name it"
    assert marker in file_markers(ROOT / tests), f"{rel(path)} cites -m {marker}, which {tests} does not set"
    assert marker_pages().get(marker) == page, f"pyproject.toml's marker {marker} does not name {page}"


@pytest.mark.parametrize("module", cited_modules())
def test_every_module_citing_an_equation_is_named_by_a_spec_page(module):
    pages = [rel(p) for p in spec_pages() if module in named_paths(p)]
    assert pages, f'{module} cites "Eq." in its docstring but no spec page in specs/ names it'


# (b) every path a spec page names exists.


@pytest.mark.parametrize("page", [*spec_pages(), INDEX], ids=rel)
def test_every_link_on_a_spec_page_resolves(page):
    broken = []
    for text, target in link_targets(page):
        resolved = resolve(page, target)
        if not resolved.is_relative_to(ROOT):
            broken.append(f"[{text}]({target}) points outside the repository")
        elif not resolved.exists():
            broken.append(f"[{text}]({target}): {rel(resolved)} does not exist")
        else:
            # A link whose text names a path must point at that path.
            match = PROJECT_PATH.match(text.strip("`").strip())
            if match and ROOT / match.group(1) != resolved:
                broken.append(f"[{text}]({target}) names {match.group(1)} but points at {rel(resolved)}")
    assert not broken, f"{rel(page)}:\n  " + "\n  ".join(broken)


@pytest.mark.parametrize("page", [*spec_pages(), INDEX], ids=rel)
def test_every_path_and_test_a_spec_page_names_exists(page):
    missing = []
    for path, name in references(page):
        file = ROOT / path
        if not file.is_file():
            missing.append(f"`{path}` does not exist")
        elif name is not None and name not in node_names(file):
            missing.append(f"`{path}::{name}`: {path} has no test function {name}")
    assert not missing, f"{rel(page)}:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("page", spec_pages(), ids=rel)
def test_every_spec_page_names_its_module_and_its_tests(page):
    names = named_paths(page)
    assert any(n.startswith("nanofourdnex/") for n in names), f"{rel(page)} names no nanofourdnex/ module"
    assert any(n.startswith("tests/test_") for n in names), f"{rel(page)} names no tests/test_*.py file"


@pytest.mark.parametrize("page", spec_pages(), ids=rel)
def test_every_spec_page_is_in_the_index(page):
    assert rel(page) in named_paths(INDEX), f"{rel(INDEX)} does not link {rel(page)}"


# (c) every test file cites an existing spec page, the one of its marker where a marker names one.


@pytest.mark.parametrize("test_file", all_test_files(), ids=rel)
def test_every_test_file_cites_an_existing_spec_page(test_file):
    cited = SPEC_CITATION.findall(docstring(test_file))
    assert cited, f"{rel(test_file)}: module docstring cites no spec page (expected 'Spec: specs/<page>.md')"
    for page in cited:
        assert (ROOT / page).is_file(), f"{rel(test_file)} cites {page}, which does not exist"
    by_marker = {marker_pages()[m] for m in file_markers(test_file) if m in marker_pages()}
    for page in by_marker:
        assert page in cited, f"{rel(test_file)} is marked for {page} but its docstring cites {cited}"
    linking = {rel(p) for p in spec_pages() if rel(test_file) in named_paths(p)}
    # A file some spec page links must cite one of those pages; one no page links (an integration
    # test, this file) may cite any existing page, specs/README.md included.
    if linking:
        assert linking & set(cited), (
            f"{rel(test_file)} is linked from {sorted(linking)} but its docstring cites only {cited}"
        )


# (d) every marker that names a spec page points to an existing one.


@pytest.mark.parametrize("marker", sorted(marker_pages()))
def test_every_marker_names_an_existing_spec_page(marker):
    page = marker_pages()[marker]
    assert (ROOT / page).is_file(), f"pyproject.toml marker {marker!r} names {page}, which does not exist"
