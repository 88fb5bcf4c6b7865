"""The import graph: no cycles in pokedata (function-level imports counted), `poke --help` loads no heavy
library, and the trainer's data reader imports without the data-side packages (ddgs, imagehash)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

HEAVY = ("numpy", "PIL", "pandas", "pyarrow", "torch", "requests", "ddgs", "imagehash", "matplotlib", "scipy")


def _module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, modules: set[str]) -> set[str]:
    """pokedata modules ``path`` imports anywhere (module level or inside functions), TYPE_CHECKING aside."""
    found: set[str] = set()

    def visit(node) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found - {_module_name(path)}


def test_no_import_cycles_in_pokedata():
    paths = {_module_name(p): p for p in (REPO / "pokedata").rglob("*.py")}
    graph = {m: _imports(p, set(paths)) for m, p in paths.items()}
    done: set[str] = set()

    def walk(m: str, stack: list[str]) -> None:
        if m in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(m) :], m]))
        if m in done:
            return
        for dep in sorted(graph[m]):
            walk(dep, [*stack, m])
        done.add(m)

    for m in sorted(graph):
        walk(m, [])


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_poke_help_loads_no_heavy_library():
    """The command modules read their defaults from light config modules; the stages load on use."""
    assert _loaded_after("import cli") == []


@pytest.mark.slow  # imports torch in a fresh interpreter
def test_the_trainer_reads_manifests_without_the_data_side_packages():
    blocked = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('ddgs', 'imagehash'):\n"
        "            raise ImportError(f'{name} is not installed here')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pokegan.data, pokedata.manifest_schema"
    )
    assert "ddgs" not in _loaded_after(blocked)
