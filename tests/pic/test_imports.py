"""Layering and import hygiene of the packages.

- the numpy ground layer: importing `pic` and `pic.levers` loads no matplotlib (the figures
  live in `sim.figures`);
- no import cycle: the module-level import graph of every package is acyclic (static, all
  packages), and every module imports on its own in a fresh interpreter (pic, sim, proofs by
  default; the torch packages with ``-m slow``).

Run: python -m pytest tests/pic/test_imports.py
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pic", "sim", "proofs", "llm", "entropic_verl", "entropic_trl")
LIGHT = ("pic", "sim", "proofs")


def _modules(package: str) -> list[str]:
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_pic_does_not_import_matplotlib():
    out = _run(
        "import sys, pic, pic.levers, pic.levers.report, pic.setpoint\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'torch')))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_matplotlib_check_can_fail():
    out = _run("import sys, sim.figures\nprint('matplotlib' in sys.modules)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(packages=PACKAGES) -> dict[str, set[str]]:
    """Module → the project modules it imports at module level (function-local imports excluded)."""
    known = {m for p in packages for m in _modules(p)}
    graph: dict[str, set[str]] = {}
    for package in packages:
        for module in _modules(package):
            path = ROOT / (module.replace(".", "/") + ".py")
            is_package = not path.exists()
            path = path if path.exists() else ROOT / module.replace(".", "/") / "__init__.py"
            tree = ast.parse(path.read_text(encoding="utf-8"))
            targets: set[str] = set()
            for node in tree.body:  # module level only
                if isinstance(node, ast.Import):
                    targets |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom):
                    base = _resolve(module, is_package, node)
                    targets.add(base)
                    targets |= {f"{base}.{a.name}" for a in node.names}
            graph[module] = {t for t in targets if t in known and t != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first = last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_module_level_import_graph_is_acyclic():
    graph = import_graph()
    assert len(graph) > 50
    assert graph["sim.levers"] >= {"sim.plant", "pic.levers"}
    assert graph["pic.levers"] >= {"pic.levers.grpo", "pic.levers.registry"}  # relative imports resolve
    assert find_cycle(graph) is None


def _import_alone(module: str) -> None:
    out = _run(f"import importlib; importlib.import_module({module!r})")
    assert out.returncode == 0, f"{module} does not import on its own:\n{out.stderr[-2000:]}"


@pytest.mark.parametrize("module", [m for p in LIGHT for m in _modules(p) if not m.endswith("__main__")])
def test_every_module_imports_alone(module):
    _import_alone(module)


@pytest.mark.slow
@pytest.mark.parametrize("module", [m for p in PACKAGES[3:] for m in _modules(p) if not m.endswith("__main__")])
def test_every_torch_module_imports_alone(module):
    top = module.split(".")[0]
    if top == "entropic_verl":
        pytest.importorskip("verl")
    if top == "entropic_trl":
        pytest.importorskip("trl")
    _import_alone(module)


def _imported_roots(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, anywhere in the file."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_hypothesis_is_a_test_dependency_only():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("hypothesis") for d in project["dependencies"])
    assert any(d.startswith("hypothesis") for d in project["optional-dependencies"]["dev"])
    assert any(d.startswith("tyro") for d in project["optional-dependencies"]["llm"])
    users = [
        str(path.relative_to(ROOT))
        for folder in (*PACKAGES, "scripts", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "hypothesis" in _imported_roots(path)
    ]
    assert users == []
    assert "hypothesis" in _imported_roots(ROOT / "tests" / "conftest.py")  # the scan sees imports
