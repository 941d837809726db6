"""Mutation testing of the paper modules, the training step, the generation path and the model wrapper.

Run from the repository root (`make mutate`; not part of CI). The report is specs/mutation.md.

    OMP_NUM_THREADS=1 python mutation/run.py                  # every group of mutation/scope.toml
    OMP_NUM_THREADS=1 python mutation/run.py paper model      # some groups
    OMP_NUM_THREADS=1 python mutation/run.py paper --only 'nanofourdnex.paper.mask.*'   # some mutants

The tool is mutmut (installed into the running environment if missing): it imports the package and the
tests once, records which tests reach each function, then runs each mutant in a forked process on only
those tests. Each group runs in its own copy of the working tree under `--workdir` (default: the
system's temporary folder), so the repository gets no `mutants/` folder and no mutmut config; the copy
is replaced on the next run.

In the copy, and only there: hypothesis does not shrink a failing example and each mutant's tests run
fastest first (both only save time), and a function decorated with `@torch.no_grad()` or `@property`
is rewritten as the plain function followed by `name = torch.no_grad()(name)` (or `property(name)`):
the same function, but one that mutmut mutates (it leaves decorated functions alone).

The report (printed, and written to WORKDIR/report.md) gives killed/total per module (a mutant that
makes a test run past mutmut's time limit counts as killed) and every survivor with its diff. A
survivor that the table of specs/mutation.md lists as equivalent is expected; any other makes the
exit status 1.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCOPE = ROOT / "mutation" / "scope.toml"
SPEC = ROOT / "specs" / "mutation.md"
MUTMUT = "mutmut==3.8.1"
DECORATORS = ("torch.no_grad()", "property")  # rewritten as plain assignments in the copy
CONFTEST = """
# Added by mutation/run.py in its copy. A mutant is killed by the first failing example (no shrinking)
# of the first failing test, and the tests run fastest first by the durations mutmut recorded.
import json  # noqa: E402
import pathlib  # noqa: E402

from hypothesis import Phase  # noqa: E402

settings.register_profile("mutation", settings.get_profile("ci"), phases=[Phase.explicit, Phase.generate])
settings.load_profile("mutation")
_durations = {}  # read once mutmut has written them, then inherited by every forked mutant run


def pytest_collection_modifyitems(items):
    stats = pathlib.Path("mutmut-stats.json")  # in mutants/, where mutmut runs the tests
    if not _durations and stats.exists():
        _durations.update(json.loads(stats.read_text())["duration_by_test"])
    items.sort(key=lambda item: _durations.get(item.nodeid, 0.0))
"""
STATUS = {1: "killed", 3: "killed", 0: "survived", 33: "no tests", 5: "no tests", 36: "timeout"}
STATUS |= dict.fromkeys((24, -24, 152, 255), "timeout")
DETECTED = ("killed", "timeout")  # a mutant that makes a test run past mutmut's time limit is caught too


def ensure_mutmut() -> None:
    if importlib.util.find_spec("mutmut") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", MUTMUT], check=True)


def working_tree_files() -> list[str]:
    """The repository's files as a clean clone plus uncommitted work has them (no ignored ones)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def undecorate(source: str) -> str:
    """`@torch.no_grad()` / `@property` functions → the plain def, then `name = decorator(name)`."""
    lines = source.splitlines(keepends=True)
    edits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and len(node.decorator_list) == 1:
            decorator = ast.get_source_segment(source, node.decorator_list[0])
            if decorator in DECORATORS:
                edits.append(
                    (node.decorator_list[0].lineno, node.end_lineno, node.col_offset, node.name, decorator)
                )
    for decorator_line, end_line, indent, name, decorator in sorted(edits, reverse=True):
        lines.insert(end_line, f"{' ' * indent}{name} = {decorator}({name})\n")
        del lines[decorator_line - 1]
    return "".join(lines)


def prepare_copy(group: dict, folder: Path) -> None:
    """A copy of the working tree in `folder` with mutmut's config for `group` (setup.cfg)."""
    shutil.rmtree(folder, ignore_errors=True)
    names = working_tree_files()
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, folder / name)
    for pattern in group["files"]:
        for path in folder.glob(pattern):
            path.write_text(undecorate(path.read_text(encoding="utf-8")), encoding="utf-8")
    with (folder / "tests" / "conftest.py").open("a", encoding="utf-8") as conftest:
        conftest.write(CONFTEST)
    listed = lambda values: "".join(f"\n    {v}" for v in values)  # noqa: E731
    others = sorted({name.split("/")[0] for name in names} - {"nanofourdnex", "tests", "pyproject.toml"})
    (folder / "setup.cfg").write_text(
        "[mutmut]\nsource_paths = nanofourdnex\n"
        f"also_copy ={listed(others)}\n"  # e.g. tiny_configs/, which the tests' presets read
        f"only_mutate ={listed(group['files'])}\n"
        f"pytest_add_cli_args_test_selection ={listed(group['tests'])}\n"
        f"pytest_add_cli_args ={listed(['-p', 'no:cacheprovider'])}\n"
    )


DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
print(json.dumps({name: get_diff_for_mutant(name, path=path) for name, path in json.load(sys.stdin)}))
"""


def run_group(name: str, group: dict, folder: Path, jobs: int, only: list[str]) -> dict[str, tuple[str, str]]:
    """Run mutmut on `group` in `folder`; {mutant: (status, diff)} for the group's (or `only`'s) mutants."""
    patterns = only or group["mutants"]
    prepare_copy(group, folder)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *patterns]
    with (folder / "mutmut.log").open("w") as log:
        done = subprocess.run(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    statuses, sources = {}, {}
    for meta in (folder / "mutants").rglob("*.py.meta"):
        for mutant, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if any(fnmatch.fnmatch(mutant, p) for p in patterns):
                statuses[mutant] = STATUS.get(code, "suspicious") if code is not None else "not checked"
                sources[mutant] = str(meta.relative_to(folder / "mutants").with_suffix(""))
    if done.returncode or not statuses:
        tail = (folder / "mutmut.log").read_text(errors="replace")[-3000:]
        raise SystemExit(
            f"mutmut failed on group {name} (exit {done.returncode}); {folder}/mutmut.log ends:\n{tail}"
        )
    alive = [(m, sources[m]) for m, status in statuses.items() if status not in DETECTED]
    shown = subprocess.run(
        [sys.executable, "-c", DIFFS],
        cwd=folder,
        input=json.dumps(alive),
        capture_output=True,
        text=True,
        check=True,
    )
    diffs = json.loads(shown.stdout)
    return {m: (status, diffs.get(m, "")) for m, status in statuses.items()}


def changed_lines(diff: str) -> str:
    return "\n".join(
        line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    )


def listed_equivalents() -> set[str]:
    """Mutants the table of specs/mutation.md calls equivalent: rows `| `name` | … | equivalent: … |`."""
    if not SPEC.exists():
        return set()
    rows = re.findall(r"^\| `([^`]+)` \|.*\| equivalent:", SPEC.read_text(encoding="utf-8"), re.MULTILINE)
    return set(rows)


def module_of(mutant: str) -> str:
    """`nanofourdnex.model` of `nanofourdnex.model.xǁFourDNeXǁforward__mutmut_3` (or `….x_build_model__…`)."""
    return re.match(r"(.*?)\.x[_ǁ]", mutant).group(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help="groups of mutation/scope.toml (default: all)")
    parser.add_argument(
        "--only", action="append", default=[], help="mutants (names or globs) of the named groups"
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "nanofourdnex-mutation")
    args = parser.parse_args()
    scope = tomllib.loads(SCOPE.read_text(encoding="utf-8"))
    unknown = set(args.groups) - set(scope)
    if unknown:
        parser.error(f"unknown groups {sorted(unknown)}; expected some of {sorted(scope)}")
    if args.only and not args.groups:
        parser.error("--only needs the groups its mutants belong to")
    ensure_mutmut()

    report, survivors, equivalents = [], [], listed_equivalents()
    report += ["| module | killed | total | score | seconds |", "|---|---|---|---|---|"]
    clock = time.perf_counter()
    for name in args.groups or scope:
        group, folder, started = scope[name], args.workdir / name, time.perf_counter()
        results = run_group(name, group, folder, args.jobs, args.only)
        seconds = time.perf_counter() - started
        for module in sorted({module_of(m) for m in results}):
            counts = Counter(status for m, (status, _) in results.items() if module_of(m) == module)
            total, killed = sum(counts.values()), counts["killed"] + counts["timeout"]
            report.append(
                f"| `{module}` | {killed} | {total} | {100 * killed / total:.1f}% | {seconds:.0f} (group {name}) |"
            )
        survivors += [
            (m, status, changed_lines(diff))
            for m, (status, diff) in sorted(results.items())
            if status not in DETECTED
        ]
    used = os.times()
    cpu = used.children_user + used.children_system  # mutmut and every mutant it forked
    report.append(f"\nTotal time: {time.perf_counter() - clock:.0f} s ({cpu:.0f} s of CPU).\n")
    unexpected = [s for s in survivors if s[0] not in equivalents]
    for mutant, status, diff in survivors:
        verdict = "listed as equivalent in specs/mutation.md" if mutant in equivalents else "NOT LISTED"
        report.append(f"### {mutant}: {status} ({verdict})\n\n```diff\n{diff}\n```\n")
    report.append(f"{len(survivors)} not killed, {len(unexpected)} of them not listed as equivalent.")
    text = "\n".join(report)
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "report.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
