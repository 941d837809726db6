"""Tutorials: each notebook runs in quick mode, and its committed .ipynb is the output-free twin of its .py.

Spec: specs/README.md

Every tutorial is a jupytext percent-format `tutorials/NN_name.py` paired with `tutorials/NN_name.ipynb`.
The execution test runs the .ipynb with nbclient in a fresh "python3" kernel whose environment sets
NANO4D_TUTORIAL_QUICK=1 (small settings), OMP_NUM_THREADS=1 and TMPDIR (so every file a tutorial writes
lands in pytest's temporary folder). The tutorials assert their own claims (exact camera recovery, the
interaction distances, the sampler landing on a point mass, ...), so a claim that stops holding fails
here. The whole set takes 1-2 minutes on 2 cores (see tutorials/README.md).
"""

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
SOURCES = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 600  # seconds; a quick-mode cell takes a few


def cells(notebook) -> list[tuple[str, str]]:
    """(cell type, source) of every cell, as jupytext reads it."""
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def test_every_tutorial_source_has_its_notebook_and_back():
    assert len(SOURCES) >= 7, (
        f"expected the seven tutorials in {TUTORIALS}, found {[p.name for p in SOURCES]}"
    )
    assert [p.stem for p in SOURCES] == [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_has_the_cells_of_its_py_source(source):
    """`jupytext --sync` leaves nothing to do: both files read as the same cells."""
    text = jupytext.read(source)
    notebook = jupytext.read(source.with_suffix(".ipynb"))
    assert text.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert notebook.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert cells(notebook) == cells(text), (
        f"{source.name} and its .ipynb differ: run `jupytext --sync {source}`"
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(notebook):
    content = nbformat.read(notebook, as_version=4)
    executed = [
        index
        for index, cell in enumerate(content.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not executed, f"{notebook.name}: cells {executed} carry outputs; strip them before committing"
    assert content.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_tutorial_runs_in_quick_mode_and_draws_figures(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("NANO4D_TUTORIAL_QUICK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel inherits this environment
    before = sorted(p.name for p in TUTORIALS.iterdir())
    content = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        content, kernel_name="python3", timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(TUTORIALS)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, when a cell or one of its asserts fails
    figures = [
        output
        for cell in content.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert figures, f"{notebook.name} showed no figure"
    assert sorted(p.name for p in TUTORIALS.iterdir()) == before, f"{notebook.name} wrote into tutorials/"
    assert any(tmp_path.glob("nano4d_*")), f"{notebook.name} wrote no outputs to its temporary folder"
