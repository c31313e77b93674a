"""The package's rooms and their floors: no import circles, no room reaching up, and a map whose paths exist."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "batchlab"
# Each room may import from the rooms before it in this order (and from itself), never from one after it.
FLOORS = ["base", "config", "data", "nets", "measure", "training", "analysis", "jobs", "report", "cli"]
BASE = {"io", "seeding", "provenance", "forked", "finished_run", ""}
TOP = {"cli", "cli_report", "__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules this file imports, deferred imports included."""
    name, found = module_name(path), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            candidates = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    files = sorted(package.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, modules) for f in files}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def room(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts or (len(parts) == 1 and parts[0] in BASE):
        return "base"
    if len(parts) == 1 and parts[0] in TOP:
        return "cli"
    return parts[0]


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_circles():
    assert circles(import_graph()) == []


def test_no_room_imports_from_a_room_above_it():
    graph = import_graph()
    assert {room(m) for m in graph} <= set(FLOORS), "a new room needs its floor in FLOORS and in docs/architecture.md"
    upward = sorted(
        f"{m} -> {d}" for m, deps in graph.items() for d in deps if FLOORS.index(room(d)) > FLOORS.index(room(m))
    )
    assert upward == []


def test_the_package_stays_small_per_module_and_at_the_top():
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= 12, top
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 550}
    assert long == {}


# Paths the map names: repository paths with a folder or a known suffix, in backticks or links.
PATH = re.compile(r"(?:`|\()((?:src|workflow|config|tests|benchmarks|scripts|docs)/[\w./-]*\w)(?:`|\)|#)")


@pytest.mark.parametrize("doc", ["docs/architecture.md", "README.md"])
def test_every_path_the_map_names_exists(doc):
    text = (ROOT / doc).read_text()
    named = set(PATH.findall(text))
    assert len(named) > 10  # the pattern still finds the map's paths
    missing = sorted(p for p in named if not (ROOT / p).exists() and not (ROOT / "docs" / p).exists())
    assert missing == []


def test_a_missing_path_is_caught():
    assert PATH.findall("see `src/batchlab/no_such.py` and [x](docs/nowhere.md#a)") == [
        "src/batchlab/no_such.py",
        "docs/nowhere.md",
    ]
