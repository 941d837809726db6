"""The README's promises: its test command is CI's, its set-up is shared, its figures and links exist.

Spec: specs/README.md
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SETUP = (
    'python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 && .venv/bin/pip install -q -e ".[dev]"'
)


def commands() -> list[str]:
    """The README's indented one-line commands that start with the set-up."""
    return [line.strip() for line in README.splitlines() if line.strip().startswith("python3 -m venv")]


def test_the_two_commands_share_the_setup_and_run_the_tiny_training_and_the_tests():
    train, test = commands()[:2]
    assert train == f"{SETUP} && OMP_NUM_THREADS=1 .venv/bin/nano4d train --tiny"
    assert test == f"{SETUP} && OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q"


def test_ci_runs_exactly_the_readme_test_command():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands()[1] in ci


def test_every_local_link_and_image_in_the_readme_exists():
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert local, "the README links no local file"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links missing files: {missing}"
