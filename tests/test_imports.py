"""The import graph of taskplan: no circles, and function-local imports of taskplan modules only where they pay.

An import inside a function hides a dependency from the reader and from tools, and makes it easy to close a
circle that nobody sees; it is worth that only when importing the module at the top would load a heavy
third-party package (torch, mlflow, prefect, ...) where it is not needed, above all at `taskplan` start. The
graph is read from the source with `ast`, imports at module level (class bodies and `try` blocks included:
they run at import) and inside functions; `if TYPE_CHECKING:` blocks never run, so they are no edges.

    python tests/test_imports.py [SRC]     # the circles and the function-local imports of the tree at SRC
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY_PACKAGES = frozenset({"torch", "transformers", "trl", "datasets", "mlflow", "prefect", "great_expectations",
                            "dvc", "peft", "accelerate", "distributed", "prefect_dask"})

# Modules that load a heavy package when imported; other modules import them inside the function that needs
# them. The test checks that each still does (through its own module-level imports).
LAZY_HEAVY = {
    "taskplan.orchestrate.flow": "prefect: its @flow/@task decorators run at import",
    "taskplan.tracking.live": "transformers: MlflowStepCallback subclasses TrainerCallback",
    "taskplan.train.callbacks": "transformers: the callbacks subclass TrainerCallback",
}
# The command line: the stage modules load at start (the catalog builds the stage commands from them; import
# taskplan.cli ~0.3 s here), so what the CLI still imports inside a command is what no other command needs:
# the Prefect flow (`pipeline`) and the suite writer. Only modules that `import taskplan.cli` does not load
# anyway: a lazy import of those defers nothing.
CLI = ("taskplan.cli", "taskplan.commands")
# Not reviewed yet: none left (train/, the sharded evaluation and generation were the last). An entry names a
# module whose function-local imports still need a look; the test says when one no longer needs its entry.
UNREVIEWED: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str     # a module of the tree if the import names one, else the dotted name as written
    line: int
    local: bool     # inside a function: runs when the function is called, not when the importer is imported


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@cache
def modules(src: Path = SRC) -> dict[str, Path]:
    found = {}
    for path in sorted((src / "taskplan").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: dict[str, Path]):
        self.module, self.is_package, self.known = module, is_package, known
        self.depth, self.found = 0, []

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:   # relative: from the importer's package, one level up per extra dot
            package = self.module.split(".")[:None if self.is_package else -1]
            package = package[:len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.known else base, node.lineno)   # `from pkg import submodule`

    def _add(self, target: str, line: int) -> None:
        self.found.append(Import(self.module, target, line, self.depth > 0))


@cache
def imports(src: Path = SRC) -> tuple[Import, ...]:
    known = modules(src)
    out: list[Import] = []
    for name, path in known.items():
        collector = _Collector(name, path.name == "__init__.py", known)
        collector.visit(ast.parse(path.read_text(), str(path)))
        out += collector.found
    return tuple(out)


def edges(src: Path = SRC, *, local: bool) -> dict[str, set[str]]:
    """importer -> the tree's modules it imports; `local` adds the function-local imports."""
    known = modules(src)
    graph: dict[str, set[str]] = {}
    for imp in imports(src):
        if imp.target in known and imp.target != imp.importer and (local or not imp.local):
            graph.setdefault(imp.importer, set()).add(imp.target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = stack[stack.index(node):]
            del stack[stack.index(node):]
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


@cache
def loaded_by(module: str, src: Path = SRC) -> frozenset[str]:
    """What `import module` runs: its module-level imports, transitively (third-party names included)."""
    graph, known = edges(src, local=False), modules(src)
    outside: dict[str, set[str]] = {}
    for imp in imports(src):
        if not imp.local and imp.target not in known:
            outside.setdefault(imp.importer, set()).add(imp.target)
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [*graph.get(name, ()), *outside.get(name, ())]
    return frozenset(seen)


def heavy_packages(module: str, src: Path = SRC) -> set[str]:
    return {name.split(".")[0] for name in loaded_by(module, src)} & HEAVY_PACKAGES


def why_local(imp: Import, src: Path = SRC) -> str | None:
    """The allow-list's reason for a function-local import of a taskplan module, or None."""
    if imp.target in LAZY_HEAVY:
        return "heavy"
    if any(within(imp.importer, m) for m in CLI) and imp.target not in loaded_by("taskplan.cli", src):
        return "cli"
    return next((m for m in UNREVIEWED if within(imp.importer, m)), None)


def local_imports(src: Path = SRC) -> list[Import]:
    known = modules(src)
    return [imp for imp in imports(src) if imp.local and imp.target in known]


def test_no_circle_among_module_level_imports():
    assert circles(edges(local=False)) == []


def test_no_circle_through_function_local_imports_either():
    graph = {m: targets for m, targets in edges(local=True).items() if not any(within(m, f) for f in UNREVIEWED)}
    assert circles(graph) == []


def test_function_local_imports_of_taskplan_modules_are_allow_listed():
    bad = [f"{imp.importer}:{imp.line} imports {imp.target} inside a function; import it at "
           "the top of the module (or allow-list it above, with the reason)"
           for imp in local_imports() if why_local(imp) is None]
    assert bad == [], "\n".join(bad)


def test_the_allow_list_is_honest():
    light = [m for m in LAZY_HEAVY if not heavy_packages(m)]
    assert light == [], f"no longer load a heavy package when imported (drop them from LAZY_HEAVY): {light}"
    used = {imp.target for imp in local_imports()}
    assert set(LAZY_HEAVY) <= used, f"nobody imports these lazily any more: {set(LAZY_HEAVY) - used}"
    assert heavy_packages("taskplan.cli") == set()
    needed = {why_local(imp) for imp in local_imports()}
    stale = set(UNREVIEWED) - needed
    assert stale == set(), f"no function-local import needs these UNREVIEWED entries any more; remove them: {stale}"


if __name__ == "__main__":
    src = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else SRC
    print("circles, module level:", circles(edges(src, local=False)))
    print("circles, with function-local imports:", circles(edges(src, local=True)))
    statements = sorted({(imp.importer, imp.line, imp.target) for imp in local_imports(src)})
    print(f"function-local imports of taskplan modules: {len(statements)}")
    for importer, line, target in statements:
        print(f"  {importer}:{line} -> {target}  [{why_local(Import(importer, target, line, True), src) or 'NOT ALLOWED'}]")
