"""The package's module graph, read from the source: no import circles.

Every ``import`` counts, also those inside functions: a circle closed by a
function-level import still ties two modules together, and breaks the day
someone moves that import to the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "capibara"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(tree: ast.AST, known: dict[str, Path]) -> set[str]:
    """The capibara modules an AST imports (``from a import b`` counts ``a.b`` when it is a module)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known
                     else node.module for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(ast.parse(path.read_text()), known) - {name}
            for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as a path that returns to its start, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


#: Deferred imports that close a circle on purpose, each with why. An edge here
#: must stay inside a function (tested), so importing either module never needs the other.
DEFERRED = {
    # ``ModularModelConfig.from_toml`` is the seed's constructor on the class,
    # while the sources that read files, env and --set build that class.
    ("capibara.config.model_config", "capibara.config.sources"),
}


def test_the_package_has_no_import_circle() -> None:
    graph = import_graph()
    for source, target in DEFERRED:
        graph[source].discard(target)
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_deferred_edges_exist_and_stay_inside_functions() -> None:
    known = modules()
    for source, target in DEFERRED:
        tree = ast.parse(known[source].read_text())
        top_level = ast.Module(body=[node for node in tree.body
                                     if isinstance(node, (ast.Import, ast.ImportFrom))],
                               type_ignores=[])
        assert target in imported(tree, known), f"{source} no longer imports {target}: drop it"
        assert target not in imported(top_level, known), f"{source} imports {target} at the top"


def test_the_cycle_finder_finds_a_planted_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_from_imports_of_submodules_are_edges() -> None:
    known = {"capibara.compiler": Path(), "capibara.compiler.check": Path()}
    tree = ast.parse("def f():\n    from capibara.compiler import check\n")
    assert imported(tree, known) == {"capibara.compiler.check"}
