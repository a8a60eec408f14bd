"""The import rules of the tree, checked from the source (stdlib ``ast``, nothing imported).

    python -m tests.support.imports [ROOT]
    python -m tests.support.imports --host [ROOT]        # the host side's files
    python -m tests.support.imports --host-tests [ROOT]  # its tests and what they import

exits 1 and prints one line per breach (``make lint`` runs it), where

- two or more modules of ``schemas``, ``producer`` and ``consumer`` import each other in a
  circle (the circle is named, one module after the other);
- ``producer`` imports ``consumer`` or ``consumer`` imports ``producer``;
- ``schemas`` imports ``producer`` or ``consumer``;
- any module, ``tests`` included, imports a ``conftest`` (fixtures are found by pytest;
  helpers live in tests/support/);
- the host side (``producer`` and every module of the tree it imports, directly or not)
  imports a distribution other than the standard library and ``HOST_DISTRIBUTIONS``, or is
  not exactly the files deploy/host/modules.txt lists: that list is what the
  loginwatch-host distribution ships, what runs on Python 3.9, and what
  ``make lint``/``make typecheck`` check at 3.9 (``--host`` prints it);
- a module of the host side writes a union as ``A | B`` where Python evaluates it at run
  time: a field of a msgspec Struct (msgspec reads the annotations) or a module-level type
  alias. Python 3.9 cannot; ``Optional``/``Union`` can (ruff and mypy miss this one).
- a module in a folder of ``consumer`` imports another folder that its folder's rule does
  not allow. The rule is a sentence of the folder's ``__init__.py`` docstring,
  ``Imports from consumer: core, store (never alerts, broker, …).``, read from there, so the
  docstring a reader sees is the rule the check enforces. Every folder has one; it names
  every other folder once, either allowed or after ``never``; and what a folder may import
  includes what those folders may (so the picture below can leave implied arrows out).

- a module of another folder of ``consumer`` imports a module of a folder that exports only
  some of its modules. That finer rule is a sentence of the folder's docstring too,
  ``Other folders import from channels: base, outlets (never mail, slack, …).``; it names
  every module of the folder once, exported or after ``never``. Inside the folder, every
  module may import every other.

``python -m tests.support.imports --picture`` prints those rules as a mermaid flowchart,
the one docs/architecture.md shows (a test keeps the two equal).

Every import statement counts, those inside functions too: a lazy import still closes a
circle the first time it runs. Imports under ``if TYPE_CHECKING:`` are left out of the
circles only (they never run), and still count for the other three rules. An import made
by ``importlib.import_module`` with a computed name is not seen.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.host_side import HOST_TESTS

LAYERED = ("schemas", "producer", "consumer")
SCANNED = (*LAYERED, "tests")
# All the host side may import besides the standard library (tomli: tomllib before 3.11).
HOST_DISTRIBUTIONS = ("pika", "msgspec", "tomli")
HOST_LIST = Path("deploy/host/modules.txt")
# What each package may not import, and why not.
FORBIDDEN = {
    "producer": (("consumer",), "the host side never imports the central side"),
    "consumer": (("producer",), "the central side never imports the host side"),
    "schemas": (("producer", "consumer"), "schemas is shared by both sides and imports neither"),
}


FOLDER_RULE = re.compile(
    r"Imports from consumer:\s*(?P<allowed>[^(]*?)\s*\(never\s+(?P<never>[^):]*)[^)]*\)"
)


EXPORT_RULE = re.compile(
    r"Other folders import from (?P<folder>\w+):\s*(?P<allowed>[^(]*?)\s*"
    r"\(never\s+(?P<never>[^):]*)[^)]*\)"
)


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip(" .") for n in text.split(",") if n.strip(" .") and n != "nothing")


def folder_rules(root: Path) -> tuple[dict[str, frozenset[str]], list[str]]:
    """Each folder of ``consumer`` → the folders it may import (from its docstring), and a
    line for each rule that is missing, incomplete or not closed under "may import"."""
    inits = sorted((root / "consumer").glob("*/__init__.py"))
    folders = {init.parent.name for init in inits}
    rules: dict[str, frozenset[str]] = {}
    lines: list[str] = []
    for init in inits:
        folder, where = init.parent.name, init.relative_to(root)
        doc = " ".join((ast.get_docstring(ast.parse(init.read_text("utf-8"))) or "").split())
        found = FOLDER_RULE.search(doc)
        if found is None:
            lines.append(f"{where}: no 'Imports from consumer: … (never …).' in its docstring")
            continue
        allowed, never = _names(found["allowed"]) - {"nothing"}, _names(found["never"])
        named = allowed | never
        if allowed & never or named - folders - {"cli"} or folders - named - {folder}:
            lines.append(
                f"{where}: the rule must name every other folder once, allowed or never"
                f" (both: {sorted(allowed & never)}, unknown: {sorted(named - folders - {'cli'})},"
                f" missing: {sorted(folders - named - {folder})})"
            )
        rules[folder] = allowed
    for folder, allowed in rules.items():
        for other in sorted(allowed):
            if beyond := rules.get(other, frozenset()) - allowed - {folder}:
                lines.append(
                    f"consumer/{folder}/__init__.py: may import {other}, which may import"
                    f" {sorted(beyond)}: allow those too, or forbid {other}"
                )
    return rules, lines


def export_rules(root: Path) -> tuple[dict[str, frozenset[str]], list[str]]:
    """Each folder of ``consumer`` whose docstring limits what others import of it → the
    modules they may import; and a line for each such rule that is incomplete or wrong."""
    rules: dict[str, frozenset[str]] = {}
    lines: list[str] = []
    for init in sorted((root / "consumer").glob("*/__init__.py")):
        folder, where = init.parent.name, init.relative_to(root)
        doc = " ".join((ast.get_docstring(ast.parse(init.read_text("utf-8"))) or "").split())
        found = EXPORT_RULE.search(doc)
        if found is None:
            continue
        allowed, never = _names(found["allowed"]), _names(found["never"])
        own = {path.stem for path in init.parent.glob("*.py") if path.stem != "__init__"}
        named = allowed | never
        if found["folder"] != folder or allowed & never or named ^ own:
            lines.append(
                f"{where}: 'Other folders import from {folder}: … (never …)' must name its own"
                f" folder and every module of it once (both: {sorted(allowed & never)},"
                f" unknown: {sorted(named - own)}, missing: {sorted(own - named)})"
            )
        rules[folder] = frozenset(allowed)
    return rules, lines


def _export_breach(name: str, target: str, exports: dict[str, frozenset[str]]) -> str | None:
    """Why ``name`` may not import ``target`` (None: it may): a module of a folder that
    exports only some, imported from another folder of ``consumer``."""
    own, other = _folder(name), _folder(target)
    if other is None or other == own or other not in exports or own is None:
        return None
    parts = target.split(".")
    module = parts[2] if len(parts) > 2 else None
    if module is None or module in exports[other]:
        return None
    return (
        f"{name} imports {target}: other folders import only"
        f" {', '.join(sorted(exports[other]))} of consumer/{other}/ (its __init__.py says why)"
    )


def _folder(module: str) -> str | None:
    """The folder of ``consumer`` that ``module`` lives in (None: not in one)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "consumer" else None


def picture(rules: dict[str, frozenset[str]]) -> str:
    """The folders and the arrows allowed between them, as a mermaid flowchart; an arrow
    that another path implies is left out."""
    lines = ["flowchart TD", "    cli[consumer/cli.py] --> commands"]
    for folder in sorted(rules, key=lambda f: (-len(rules[f]), f)):
        implied = {far for near in rules[folder] for far in rules.get(near, frozenset())}
        for other in sorted(rules[folder] - implied):
            lines.append(f"    {folder} --> {other}")
    named = {word for line in lines for word in line.split()}
    lines.extend(f"    {folder}" for folder in sorted(rules) if folder not in named)
    return "\n".join(lines) + "\n"


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
    rules, lines = folder_rules(root)
    exports, broken = export_rules(root)
    lines += broken
    for name, path in found.items():
        where = path.relative_to(root)
        for target, line, typing_only in imports(name, path, known):
            if breach := _export_breach(name, target, exports):
                lines.append(f"{where}:{line}: {breach}")
            own, other = _folder(name), _folder(target)
            if own in rules and other is not None and other != own and other not in rules[own]:
                lines.append(
                    f"{where}:{line}: {name} imports {target}: consumer/{own}/ may import"
                    f" only {', '.join(sorted(rules[own])) or 'nothing of consumer'}"
                    f" (its __init__.py says why)"
                )
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


def host_side(root: Path) -> tuple[list[Path], list[str]]:
    """The host side's files (relative to ``root``, sorted) and its breaches: ``producer``
    and every module of the tree it imports, lazily too (the publisher runs those)."""
    found = modules(root, LAYERED)
    known = set(found)
    side: set[str] = set()
    frontier = [name for name in found if _in(name, "producer")]
    lines: list[str] = []
    while frontier:
        name = frontier.pop()
        if name in side:
            continue
        side.add(name)
        path = found[name]
        for target, line, _typing_only in imports(name, path, known):
            if target in known:
                frontier.append(target)
                # A package's __init__ runs before any module of it.
                frontier += [p for p in known if _in(target, p) and p != target]
            elif not _host_may_import(target):
                lines.append(
                    f"{path.relative_to(root)}:{line}: {name} imports {target}: a host has only"
                    f" the standard library and {', '.join(HOST_DISTRIBUTIONS)}"
                )
    files = sorted(found[name].relative_to(root) for name in side)
    for file in files:
        lines += [
            f"{file}:{line}: a union written A | B where it is evaluated at run time: Python"
            " 3.9 (a host's) cannot; write Optional[A] or Union[A, B]"
            for line in runtime_unions(root / file)
        ]
    listed = root / HOST_LIST
    have = [Path(line) for line in listed.read_text().split()] if listed.exists() else []
    # (A tree without deploy/ ships no host side: the small trees of the tests.)
    if (root / "deploy").is_dir() and have != files:
        lines.append(
            f"{HOST_LIST} is not the host side's files (python -m tests.support.imports --host"
            f" > {HOST_LIST}): missing {sorted(map(str, set(files) - set(have)))}, extra"
            f" {sorted(map(str, set(have) - set(files)))}"
        )
    return files, lines


_BUILTIN_TYPES = frozenset({"int", "str", "bytes", "float", "bool", "dict", "list", "tuple", "set"})


def _is_union(node: ast.expr) -> bool:
    """``A | B`` of types (names, attributes, subscripts, None), not of numbers or flags."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)):
        return False
    parts = [node.left, node.right]
    return all(
        _is_union(p) or isinstance(p, ast.Subscript)
        or (isinstance(p, ast.Constant) and p.value is None)
        or (isinstance(p, ast.Name) and (p.id[:1].isupper() or p.id in _BUILTIN_TYPES))
        for p in parts
    )  # fmt: skip


def runtime_unions(path: Path) -> list[int]:
    """Lines of ``path`` where a ``|`` union is evaluated at run time: in a msgspec Struct's
    field annotation (the class derives from ``msgspec.Struct``, or from a Struct of the
    same module), or as a module-level type alias."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    structs: set[str] = set()
    lines = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and _is_union(node.value):
            lines.append(node.lineno)
        if not isinstance(node, ast.ClassDef):
            continue
        bases = {ast.unparse(base) for base in node.bases}
        if bases & {"msgspec.Struct", "Struct", *structs}:
            structs.add(node.name)
            for field in node.body:
                # In an annotation every | is a union.
                if isinstance(field, ast.AnnAssign) and any(
                    isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.BitOr)
                    for sub in ast.walk(field.annotation)
                ):
                    lines.append(field.lineno)
    return lines


def tests_imported(root: Path, files: list[str]) -> list[Path]:
    """``files`` (relative to ``root``) and every module of tests/ they import, directly or
    not (package ``__init__`` files included), relative to ``root``, sorted."""
    found = modules(root, ("tests",))
    by_path = {path.relative_to(root): name for name, path in found.items()}
    known = set(found)
    seen: set[str] = set()
    frontier = [by_path[Path(name)] for name in files]
    while frontier:
        name = frontier.pop()
        if name in seen:
            continue
        seen.add(name)
        frontier += [p for p in known if name.startswith(p + ".")]
        for target, _line, _typing in imports(name, found[name], known):
            if target in known:
                frontier.append(target)
    return sorted(found[name].relative_to(root) for name in seen)


def _host_may_import(module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    return top in sys.stdlib_module_names or top in HOST_DISTRIBUTIONS or top == "__future__"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["--host"], ["--host-tests"]):
        root = Path(args[1]) if args[1:] else Path.cwd()
        if args[0] == "--host":
            files = host_side(root)[0]
        else:
            files = tests_imported(root, [*HOST_TESTS, "tests/support/host_side.py"])
        print("\n".join(map(str, files)))
        return 0
    if args[:1] == ["--picture"]:
        print(picture(folder_rules(Path(__file__).resolve().parents[2])[0]), end="")
        return 0
    root = Path(args[0]) if args else Path(__file__).resolve().parents[2]
    found = [*problems(root), *host_side(root)[1]]
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"imports: {len(found)} breach(es) of the rules above", file=sys.stderr)
        return 1
    print(f"imports: {len(modules(root))} modules, no circle, no forbidden import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
