"""Rules on the library's source, read from its AST (nothing is imported).

The import graph has no cycle and ``dft/`` reads bottom-up (DESIGN.md). Every ``import`` and
``from ... import`` of a ``dft2mlip`` module counts, at module level or inside a function
(a function-level import only postpones a cycle, it does not remove one), absolute or
relative. Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``: those edges
count too.

No silent fallback on a missing file: every function that returns None where it checks that
a file exists is in :data:`NONE_ON_MISSING_FILE`, with the reason it is not an error.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "dft2mlip"
#: the layers of dft2mlip.dft, bottom first (as its __init__ docstring reads them): a module
#: imports from its own layer or below, never above
DFT_LAYERS = (
    ("outputs", "hubbard", "magnetism", "pseudo", "pw_files", "run", "settings"),
    ("qe", "vasp"),
    ("handlers", "execute"),
    ("engines",),
    ("labels", "importing", "convergence"),
    ("relax",),
)

#: every function of src/ that returns None (or a tuple led by None) and checks that a file
#: exists, with why that is not a silent fallback; "module:qualified name"
NONE_ON_MISSING_FILE = {
    "dft2mlip.dft.handlers:_keep_copy": "no output to keep before a restart: the correction "
    "records kept_output None (docstring)",
    "dft2mlip.dft.handlers:_vasp_converged": "no finished VASP run to judge: the case the "
    "restart handler restarts (docstring)",
    "dft2mlip.dft.importing:_recorded_settings": "only dft2mlip writes settings.json; a run "
    "from elsewhere is hashed from the settings its output reports (docstring)",
    "dft2mlip.dft.qe:_settings_mismatch": "None means no mismatch; a missing pseudopotential "
    "file is a mismatch and gives its message",
    "dft2mlip.provenance:git_state.git": "no git or no checkout: commit and dirty are recorded "
    "as None (git_state's docstring)",
    "dft2mlip.report.artifacts:Missing.path": "the artifact is listed in the report's 'Missing "
    "artifacts' section, not dropped",
    "dft2mlip.report.sections.convergence:read_choice": "a study folder without a choice: its "
    "tables are still shown, the choice paragraph is left out (docstring)",
    "dft2mlip.train.state:TrainingState.read": "no resume file yet: a first start (docstring)",
}


def _modules(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package`` under ``src``."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _tree(path: Path) -> ast.Module:
    return _parse(path.read_text(), str(path))


@functools.cache
def _parse(text: str, filename: str) -> ast.Module:
    """Parsed once per text (the three tests read the same files)."""
    return ast.parse(text, filename=filename)


def _with_parents(name: str, modules: dict[str, Path]) -> set[str]:
    """``name`` (the longest known module it starts with) and the packages above it."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return {".".join(parts[:k]) for k in range(1, len(parts) + 1)}


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement asks for (relative ones resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
        base = ".".join([*anchor, base] if base else anchor)
    # ``from pkg import sub`` imports the module pkg.sub when there is one
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph(src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the ``package`` modules it imports (any depth of the file, parents included)."""
    modules = _modules(src, package)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(_tree(path)):
            for name in _imported(node, module, is_package):
                if name == package or name.startswith(package + "."):
                    targets |= _with_parents(name, modules)
        graph[module] = targets - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
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
    return sorted(found)


def _edges_within(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    members = set(component)
    return [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]


def test_no_import_cycle_in_src():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycle(s) in src/dft2mlip:\n" + "\n".join(
        f"  {' <-> '.join(c)}\n    " + "\n    ".join(_edges_within(graph, c)) for c in found
    )


def test_dft_reads_bottom_up():
    """Every module of dft2mlip.dft is in a layer of :data:`DFT_LAYERS`, and imports no module
    of a layer above its own."""
    graph = import_graph()
    prefix = f"{PACKAGE}.dft."
    layer = {f"{prefix}{name}": k for k, names in enumerate(DFT_LAYERS) for name in names}
    unplaced = sorted(m for m in graph if m.startswith(prefix) and m not in layer)
    assert not unplaced, f"add {unplaced} to a layer of DFT_LAYERS in tests/test_layout.py"
    gone = sorted(set(layer) - set(graph))
    assert not gone, f"DFT_LAYERS names modules that do not exist: {gone}"
    upward = [f"{a} -> {b}" for a in sorted(layer) for b in sorted(graph[a])
              if b in layer and layer[b] > layer[a]]  # fmt: skip
    assert not upward, "dft/ imports a layer above:\n  " + "\n  ".join(upward)


def test_graph_sees_function_level_and_relative_imports(tmp_path):
    """The finder itself, on a made-up package whose cycle hides in a function and a
    relative import (expected cycle written by hand)."""
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "low.py").write_text("import os\n")
    (pkg / "sub" / "a.py").write_text("from toy.low import x\n\ndef f():\n    from . import b\n")
    (pkg / "sub" / "b.py").write_text("from ..sub.a import f\n")
    graph = import_graph(tmp_path, "toy")
    assert graph["toy.sub.a"] == {"toy", "toy.low", "toy.sub", "toy.sub.b"}
    assert cycles(graph) == [["toy.sub.a", "toy.sub.b"]]
    (pkg / "sub" / "b.py").write_text("from toy.low import y\n")
    assert cycles(import_graph(tmp_path, "toy")) == []


def _functions(tree: ast.AST) -> list[tuple[str, ast.AST, list[ast.AST]]]:
    """(qualified name, node, the nodes of its own body, nested definitions excluded)."""
    found = []

    def own(fn):
        stack, nodes = list(ast.iter_child_nodes(fn)), []
        while stack:
            node = stack.pop()
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                nodes.append(node)
                stack.extend(ast.iter_child_nodes(node))
        return nodes

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((prefix + child.name, child, own(child)))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _returns_none(node: ast.AST) -> bool:
    value = getattr(node, "value", None) if isinstance(node, ast.Return) else None
    if isinstance(value, ast.Tuple) and value.elts:
        value = value.elts[0]
    return isinstance(value, ast.Constant) and value.value is None


def _checks_a_file(node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("is_file", "exists", "is_dir", "isfile")
    if isinstance(node, ast.ExceptHandler) and node.type is not None:
        return any(name in ast.unparse(node.type) for name in ("FileNotFoundError", "OSError"))
    return False


def test_every_none_on_a_missing_file_is_listed():
    names, found = set(), set()
    for module, path in _modules().items():
        for name, _, nodes in _functions(_tree(path)):
            names.add(f"{module}:{name}")
            if any(map(_returns_none, nodes)) and any(map(_checks_a_file, nodes)):
                found.add(f"{module}:{name}")
    unlisted = sorted(found - set(NONE_ON_MISSING_FILE))
    assert not unlisted, (
        f"{unlisted} return None where they check a file: raise with the cause, or justify it "
        "in the docstring and add it to NONE_ON_MISSING_FILE in tests/test_layout.py"
    )
    assert not (gone := sorted(set(NONE_ON_MISSING_FILE) - names)), f"no such function: {gone}"
