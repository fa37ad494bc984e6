"""The layering holds: no part of ratchet imports, at run time, a part that imports it back.

A *part* is a top-level module or subpackage of ``ratchet`` (``ratchet.loop``,
``ratchet.report``, ``ratchet.proposers``): the arrows of DESIGN.md are between parts. Every
runtime import counts, those inside functions too (a lazy import is still a dependency);
``if TYPE_CHECKING`` blocks do not. Read from the source, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "ratchet"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[str]:
    """Every module an import statement may load: ``from a import b`` may be ``a`` or ``a.b``."""
    found: list[str] = []

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if _is_type_checking(node):
                for child in node.orelse:
                    self.visit(child)
            else:
                self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.extend(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level == 0 and node.module:  # ratchet imports absolutely
                found.append(node.module)
                found.extend(f"{node.module}.{alias.name}" for alias in node.names)

    Visitor().visit(tree)
    return found


def module_graph() -> dict[str, set[str]]:
    """module -> the ratchet modules it imports at run time (the bundled example projects aside)."""
    modules = {_module_name(path): path for path in SOURCE.rglob("*.py") if "examples" not in path.relative_to(SOURCE).parts}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target in _runtime_imports(ast.parse(path.read_text())):
            hit = target if target in modules else target.rpartition(".")[0]
            if hit in modules and hit != name:
                graph[name].add(hit)
    return graph


def import_graph() -> dict[str, set[str]]:
    """part -> the parts it imports (the root package aside: every part is below it)."""
    graph: dict[str, set[str]] = {}
    for name, targets in module_graph().items():
        graph.setdefault(_part(name), set()).update(_part(t) for t in targets if _part(t) not in (_part(name), "ratchet"))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one part (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo += graph.get(node, ())
    return False


def test_the_graph_sees_the_edges_it_must():
    graph = import_graph()
    assert "ratchet.state" in graph["ratchet.loop"]
    assert "ratchet.measure" in graph["ratchet.proposers"]  # a lazy import inside a function counts
    assert "ratchet.proposers" not in graph["ratchet.workspace"]  # a TYPE_CHECKING import does not
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_parts():
    assert cycles(import_graph()) == []


# DESIGN.md's never-arrows, transitively: a part on the left never reaches one on the right.
FACES = ("ratchet.cli", "ratchet.mcp_server", "ratchet.commands")
SCREENS = ("ratchet.report",)
NEVER = {
    # The core knows no screen and no face: what it announces goes through events.RunObserver.
    "ratchet.loop": FACES + SCREENS,
    "ratchet.workspace": FACES + SCREENS + ("ratchet.loop", "ratchet.proposers", "ratchet.verdict", "ratchet.executors"),
    # An executor measures: it never decides, never sees who proposed, never drives the loop.
    "ratchet.executors": FACES + SCREENS + ("ratchet.loop", "ratchet.proposers", "ratchet.verdict", "ratchet.ledger"),
    "ratchet.measure": FACES + SCREENS + ("ratchet.loop", "ratchet.proposers", "ratchet.verdict", "ratchet.executors", "ratchet.ledger"),
    # The verdict sees only samples: no worktree, no process, no proposer, no ledger.
    "ratchet.verdict": FACES + SCREENS + ("ratchet.loop", "ratchet.proposers", "ratchet.executors", "ratchet.workspace", "ratchet.ledger"),
    # A proposer is called; it never calls the loop or decides.
    "ratchet.proposers": FACES + SCREENS + ("ratchet.loop", "ratchet.verdict", "ratchet.ledger"),
    # Reports read the ledger and never drive a run.
    "ratchet.report": FACES + ("ratchet.loop", "ratchet.proposers", "ratchet.executors"),
    "ratchet.events": FACES + SCREENS + ("ratchet.loop",),
    "ratchet.state": FACES + SCREENS + ("ratchet.loop",),
    "ratchet.ledger": FACES + SCREENS + ("ratchet.loop",),
    "ratchet.experiment": FACES + SCREENS + ("ratchet.loop",),
    "ratchet.config": FACES + SCREENS + ("ratchet.loop", "ratchet.proposers", "ratchet.executors", "ratchet.workspace"),
    "ratchet.testing": FACES + SCREENS + ("ratchet.loop",),
}


def _reached_parts(graph: dict[str, set[str]], part: str) -> dict[str, str]:
    """Every part some module of ``part`` reaches, module by module, with one path that shows it."""
    found: dict[str, str] = {}
    todo = [(name, name) for name in graph if _part(name) == part]
    seen: set[str] = set()
    while todo:
        name, path = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found.setdefault(_part(name), path)
        todo += [(target, f"{path} -> {target}") for target in sorted(graph[name])]
    return found


def test_every_never_arrow_holds():
    # Module by module, so that importing one light module of a part (measure.parse) does not
    # count as reaching everything the rest of that part imports.
    graph = module_graph()
    broken = []
    for part, never in NEVER.items():
        reached = _reached_parts(graph, part)
        broken += [reached[forbidden] for forbidden in never if forbidden in reached]
    assert broken == []


def test_the_layering_names_every_part():
    # A new part must be placed in the layering on purpose (or be a face, which may import anything).
    placed = set(NEVER) | set(FACES) | {"ratchet.budget", "ratchet.project", "ratchet._version", "ratchet._lazy", "ratchet.__main__"}
    assert set(import_graph()) - {"ratchet"} <= placed, set(import_graph()) - placed
