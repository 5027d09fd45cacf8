"""The package's shape, checked: layers whose arrows point down, no import cycles, imports at the
top of modules, lazy heavy libraries, and a docs/ARCHITECTURE.md that lists what is there.

Read from the source with ``ast`` (nothing is imported), so a violation names the file and line.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "kit_jupyter"

# Rank of each layer: a module may import only from layers of a lower rank, or from its own
# package (the same layer). The order is docs/ARCHITECTURE.md's diagram, top to bottom.
LAYERS: dict[str, int] = {
    "kit_jupyter": 7,  # the public API (package root), __main__, api, demo
    "kit_jupyter.ui": 6,
    "kit_jupyter.commands": 5,
    "kit_jupyter.transport": 4,
    "kit_jupyter.oci": 3,
    "kit_jupyter.kitfile": 2,
    "kit_jupyter.gocompat": 1,
    "kit_jupyter.errors": 0,
    "kit_jupyter.reporting": 1,  # above errors (one_line), below every user
    "kit_jupyter._fs": 0,
    "kit_jupyter._version": 0,
    "kit_jupyter._arguments": 1,  # beside gocompat: above errors, below every user
}

# Libraries that may be imported inside functions: slow to import, and not needed by
# ``import kit_jupyter`` or ``%load_ext kit_jupyter``.
HEAVY = ("boto3", "botocore", "oras", "requests", "urllib3", "ipywidgets", "IPython", "yaml",
         "moto", "cryptography", "http.cookiejar", "huggingface_hub", "pandas", "zstandard",
         "compression")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def layer_of(mod: str) -> str:
    best = "kit_jupyter"
    for name in LAYERS:
        if (mod == name or mod.startswith(name + ".")) and len(name) > len(best):
            best = name
    return best


def _imports(path: Path) -> list[tuple[ast.stmt, str, bool, bool]]:
    """(node, imported module, inside a function, under TYPE_CHECKING) for every import."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[ast.stmt, str, bool, bool]] = []

    def visit(node: ast.AST, in_func: bool, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    assert child.level == 0, f"{path}:{child.lineno}: relative import"
                    for alias in child.names:
                        full = f"{base}.{alias.name}"
                        found.append((child, full if full in MODULES else base, in_func,
                                      typing_only))
                else:
                    for alias in child.names:
                        found.append((child, alias.name, in_func, typing_only))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, True, typing_only)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, in_func, True)
            else:
                visit(child, in_func, typing_only)

    visit(tree, False, False)
    return found


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for _node, target, _in_func, _typing in _imports(path):
            if target in MODULES and target != mod:
                graph[mod].add(target)
    return graph


def test_arrows_point_down():
    bad = []
    for mod, path in MODULES.items():
        mine = layer_of(mod)
        for node, target, _in_func, _typing in _imports(path):
            if not target.startswith("kit_jupyter") or target not in MODULES:
                continue
            theirs = layer_of(target)
            if theirs == mine:
                continue
            if LAYERS[theirs] >= LAYERS[mine]:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {mod} ({mine}) imports "
                           f"{target} ({theirs})")
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)


def test_nothing_in_the_package_imports_the_demo_helpers():
    users = [m for m, deps in _edges().items() if "kit_jupyter.demo" in deps]
    assert users == []


def test_no_import_cycles():
    graph = _edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strongconnect(v)
    assert cycles == []


def test_imports_at_the_top():
    """Inside a function only heavy optional libraries, and in the adapters (ui/, the package
    root) the commands, which load on first use so that ``%load_ext`` stays fast."""
    bad = []
    for mod, path in MODULES.items():
        adapter = layer_of(mod) in ("kit_jupyter", "kit_jupyter.ui")
        for node, target, in_func, _typing in _imports(path):
            if not in_func:
                continue
            if any(target == h or target.startswith(h + ".") for h in HEAVY):
                continue
            if adapter and target.startswith("kit_jupyter."):
                continue
            bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: import {target} in a function")
    assert not bad, "\n".join(bad)


def test_read_buffers_come_from_io_buffer():
    """Every buffer that files or sockets are read into is ``_fs.io_buffer``'s (page-aligned:
    a bytearray's copy from the page cache can cost four times the CPU, see there), so the
    package makes no ``bytearray`` of a size but the 512-byte tar blocks ``gotar`` builds."""
    bad = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "bytearray" and node.args
                    and not (isinstance(node.args[0], ast.Name) and node.args[0].id == "BLOCK")):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("code", [
    "import kit_jupyter",
    "import IPython.core.magic; import kit_jupyter.ui.magics",
])
def test_heavy_libraries_stay_lazy(code):
    probe = (f"import sys; {code}; print(sorted(m for m in ('boto3', 'botocore', 'oras', "
             "'requests', 'ipywidgets', 'yaml', 'kit_jupyter.commands.pack', "
             "'kit_jupyter.transport.s3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_architecture_lists_every_module():
    """docs/ARCHITECTURE.md names each module by its path, and names no module that is gone."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    listed = set(re.findall(r"kit_jupyter/[\w/]+\.py", text))
    actual = {str(p.relative_to(ROOT)) for p in MODULES.values()}
    assert sorted(actual - listed) == [], "modules missing from docs/ARCHITECTURE.md"
    assert sorted(listed - actual) == [], "docs/ARCHITECTURE.md names modules that do not exist"


def test_the_wheel_says_it_is_typed():
    assert (PKG / "py.typed").exists()
