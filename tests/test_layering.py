"""Imports flow one way: ``hw`` (spec and gateware) <- ``sw`` (host) <- ``sim`` (harness), with
``boards`` above ``hw`` and the build flow (``flow``) above ``boards``.

Every module of those packages is parsed with :mod:`ast` (nothing is imported), and every import
statement in it, at module level or inside a function, is checked against what its layer may use.
A lower layer reaches a higher one only through a registry or a callable passed in, never by
importing it. The only exceptions are listed in :data:`ALLOWED`, each with its reason.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: Package -> the first-party packages its modules may import (itself included).
MAY_IMPORT = {
    "hw": {"hw"},
    "sw": {"hw", "sw"},
    "sim": {"hw", "sw", "sim", "boards"},   # the harness may simulate any gateware, boards' too
    "boards": {"hw", "boards"},
    "flow": {"hw", "boards", "flow"},
}
PACKAGES = set(MAY_IMPORT)

#: ``(importing module, imported module)`` pairs outside the rule, each allowed only inside a
#: function (never at module level). Keep this list short; every entry says why it exists.
ALLOWED = {
    # The command lines ``python -m hw.build`` and ``python -m hw.breakdown`` are a user contract;
    # their implementation is the build flow above hw, imported inside main() only.
    ("hw.build", "flow.cli"): "the python -m hw.build entry point",
    ("hw.breakdown", "flow.breakdown"): "the python -m hw.breakdown entry point",
}

#: Import cycles (as sets of modules) known and still to be removed; delete an entry once its
#: cycle is gone.
KNOWN_CYCLES = []

#: Known violations that must go: the host reaching into the simulation harness and the boards.
#: Each is to be replaced by a registry the higher layer fills in or a value passed in. Delete an
#: entry once its import is gone.
KNOWN_VIOLATIONS = {
}


@dataclass(frozen=True)
class Import:
    importer: str      # dotted module name
    imported: str      # dotted module name (as written, relative imports resolved)
    line: int
    top_level: bool    # at module level rather than inside a function or class body

    def __str__(self):
        where = "module level" if self.top_level else "inside a function"
        return f"{self.importer} imports {self.imported} ({where}, line {self.line})"


def _modules() -> dict[str, Path]:
    modules = {}
    for package in sorted(PACKAGES):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    for node in tree.body:   # imports under if/try at module level run at import time too
        if isinstance(node, ast.If | ast.Try):
            top_level |= {id(child) for child in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # ``from pkg import mod`` imports the submodule when there is one.
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES
                       else module for alias in node.names]
        else:
            continue
        found += [Import(name, target, node.lineno, id(node) in top_level)
                  for target in dict.fromkeys(targets)]
    return found


IMPORTS = [imp for name, path in MODULES.items() for imp in _imports(name, path)]


def _listed(imp: Import, table: dict) -> bool:
    return any(imp.importer == importer and (imp.imported == imported
                                             or imp.imported.startswith(imported + "."))
               for importer, imported in table)


def _crosses_layers(imp: Import) -> bool:
    layer, target = imp.importer.split(".")[0], imp.imported.split(".")[0]
    return target in PACKAGES and target not in MAY_IMPORT[layer]


def test_every_package_is_parsed():
    for package in PACKAGES:
        assert package in MODULES, f"{package}/__init__.py not found"
    assert "hw.link.top" in MODULES and "sim.testbenches.core_tb" in MODULES


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_imports_flow_one_way(package):
    bad = [imp for imp in IMPORTS if imp.importer.split(".")[0] == package
           and _crosses_layers(imp)
           and (imp.top_level or not (_listed(imp, ALLOWED) or _listed(imp, KNOWN_VIOLATIONS)))]
    assert not bad, (f"{package} may import only {sorted(MAY_IMPORT[package])} (the rule: hw <- sw "
                     f"<- sim, boards above hw, flow above boards; a lower layer reaches a higher "
                     f"one through a registry or a callable passed in):\n"
                     + "\n".join(f"  {imp}" for imp in bad))


def test_exceptions_are_still_needed():
    """An entry of ALLOWED or KNOWN_VIOLATIONS whose import is gone is to be deleted."""
    crossing = [imp for imp in IMPORTS if _crosses_layers(imp)]
    stale = [pair for table in (ALLOWED, KNOWN_VIOLATIONS) for pair in table
             if not any(_listed(imp, {pair: None}) for imp in crossing)]
    assert not stale, f"no longer imported, delete from tests/test_layering.py: {stale}"


def _module_of(imported: str) -> str | None:
    """The first-party module an import loads (its longest dotted prefix that is a module)."""
    parts = imported.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return None


def _cycles() -> list[list[str]]:
    """Every loop of imports between two or more modules (module level or inside functions;
    the known violations of the layering are left out, as they are reported above)."""
    graph = {name: set() for name in MODULES}
    for imp in IMPORTS:
        target = _module_of(imp.imported)
        if target and target != imp.importer and not _listed(imp, KNOWN_VIOLATIONS):
            graph[imp.importer].add(target)
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    # A package's __init__ importing its submodules, one of which imports a name from the
    # package: the usual layout of a package, not a loop between two concepts.
    return [c for c in cycles if not (len(c) == 3 and (c[1].startswith(c[0] + ".")
                                                        or c[0].startswith(c[1] + ".")))]


def test_no_import_cycles_between_modules():
    """No two modules import each other, directly or around a longer loop, even lazily: one of
    them is the lower layer, and the other reaches it through a registry or a callable."""
    real = [c for c in _cycles() if set(c) not in KNOWN_CYCLES]
    assert not real, "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in real)


def test_known_cycles_are_still_there():
    """An entry of KNOWN_CYCLES whose loop is gone is to be deleted."""
    found = [set(c) for c in _cycles()]
    stale = [cycle for cycle in KNOWN_CYCLES if cycle not in found]
    assert not stale, f"no longer a cycle, delete from tests/test_layering.py: {stale}"
