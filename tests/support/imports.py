"""The import rules of the tree, checked from the source (stdlib ``ast``, nothing imported).

    python -m tests.support.imports [ROOT]

exits 1 and prints one line per breach (``make lint`` runs it), where

- two or more modules of ``schemas``, ``producer`` and ``consumer`` import each other in a
  circle (the circle is named, one module after the other);
- ``producer`` imports ``consumer`` or ``consumer`` imports ``producer``;
- ``schemas`` imports ``producer`` or ``consumer``;
- any module, ``tests`` included, imports a ``conftest`` (fixtures are found by pytest;
  helpers live in tests/support/).

Every import statement counts, those inside functions too: a lazy import still closes a
circle the first time it runs. Imports under ``if TYPE_CHECKING:`` are left out of the
circles only (they never run), and still count for the other three rules. An import made
by ``importlib.import_module`` with a computed name is not seen.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

LAYERED = ("schemas", "producer", "consumer")
SCANNED = (*LAYERED, "tests")
# What each package may not import, and why not.
FORBIDDEN = {
    "producer": (("consumer",), "the host side never imports the central side"),
    "consumer": (("producer",), "the central side never imports the host side"),
    "schemas": (("producer", "consumer"), "schemas is shared by both sides and imports neither"),
}


def modules(root: Path, packages: tuple[str, ...] = SCANNED) -> dict[str, Path]:
    """Every module under ``root``'s ``packages``: dotted name -> file."""
    found: dict[str, Path] = {}
    for package in packages:
        base = root / package
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement anywhere in ``tree``, and whether it sits under TYPE_CHECKING."""
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, typing_only = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, typing_only
            continue
        if isinstance(node, ast.If) and _type_checking(node.test):
            stack.extend((child, True) for child in node.body)
            stack.extend((child, typing_only) for child in node.orelse)
            continue
        stack.extend((child, typing_only) for child in ast.iter_child_nodes(node))


def _base(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, typing only) for every import of module ``name``.

    ``from a import b`` is an import of ``a.b`` when that is a module, else of ``a``.
    Modules outside the tree are given by their full name (``conftest`` rule)."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    for node, typing_only in sorted(_statements(tree), key=lambda found: found[0].lineno):
        if isinstance(node, ast.Import):
            targets = {alias.name for alias in node.names}
        else:
            base = _base(name, path, node)
            subs = (f"{base}.{alias.name}" if base else alias.name for alias in node.names)
            targets = {sub if sub in known else base for sub in subs}
        for target in sorted(targets):
            yield target, node.lineno, typing_only


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    frontier = [start]
    while frontier:
        for child in graph[frontier.pop()] - seen:
            seen.add(child)
            frontier.append(child)
    return seen


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per group of modules that all reach each other, each as a path."""
    reach = {module: _reach(graph, module) for module in graph}
    placed: set[str] = set()
    circles = []
    for module in sorted(graph):
        if module in placed or module not in reach[module]:
            continue
        group = sorted(other for other in reach[module] if module in reach[other])
        placed.update(group)
        circles.append(_circle(graph, group))
    return circles


def _circle(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A shortest circle through the first module of ``group``, staying inside it."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    return [*group, group[0]]  # not reached: a group always holds a circle


def problems(root: Path) -> list[str]:
    """Every breach of the rules in the tree at ``root``, one line each (none: all is well)."""
    found = modules(root)
    known = set(found)
    graph: dict[str, set[str]] = {name: set() for name in found if name.startswith(LAYERED)}
    lines: list[str] = []
    for name, path in found.items():
        where = path.relative_to(root)
        for target, line, typing_only in imports(name, path, known):
            if target.split(".")[-1] == "conftest":
                lines.append(
                    f"{where}:{line}: imports {target}: a conftest holds fixtures, which"
                    " pytest finds; put what is shared in tests/support/"
                )
            top = name.split(".")[0]
            banned, why = FORBIDDEN.get(top, ((), ""))
            for package in banned:
                if _in(target, package):
                    lines.append(f"{where}:{line}: {name} imports {target}: {why}")
            if name in graph and target in graph and not typing_only:
                graph[name].add(target)
    lines.extend(f"import circle: {' -> '.join(circle)}" for circle in _cycles(graph))
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[2]
    found = problems(root)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"imports: {len(found)} breach(es) of the rules above", file=sys.stderr)
        return 1
    print(f"imports: {len(modules(root))} modules, no circle, no forbidden import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
