"""Static checks of the code itself."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_no_undefined_names():
    """No name is used undefined anywhere, including scripts that run for an hour before
    reaching a typo (scripts/make_examples.py writes each description after its DFT)."""
    pytest.importorskip("pyflakes")
    from pyflakes.api import checkRecursive
    from pyflakes.reporter import Reporter

    out = io.StringIO()
    checkRecursive([str(ROOT / d) for d in ("mlipviz", "scripts", "benchmarks", "tests")],
                   Reporter(out, out))
    problems = [line for line in out.getvalue().splitlines()
                if "undefined name" in line or "syntax" in line.lower()]
    assert not problems, "\n".join(problems)


def _imports() -> dict[str, set[str]]:
    """mlipviz module -> the mlipviz modules it imports (anywhere in it, functions included)."""
    import ast

    modules = {}
    for path in (ROOT / "mlipviz").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = (package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else [])
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    graph[name].add(full if full in modules else target)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names)
        graph[name] = {t for t in graph[name] if t in modules and t != name}
    return graph


def test_layers_point_one_way_and_no_import_circles():
    """frames/io -> models -> analysis -> widgets: no module imports one of a later layer (the
    analysis shows results through `mlipviz.display`, which the widgets fill), and no two
    modules import each other, directly or round a circle, not even inside functions."""
    graph = _imports()
    layer = {"widgets": 3, "analysis": 2, "latent": 2, "attribution": 2, "models": 1, "reference": 1}

    def layer_of(module: str) -> int:
        parts = module.split(".")
        return 4 if len(parts) == 1 or parts[1] in ("cli", "__main__") else layer.get(parts[1], 0)

    against = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))
    assert not against, against

    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, circles


def test_importing_mlipviz_is_quick_and_changes_nothing():
    """``import mlipviz`` imports neither torch nor a model package nor the Jupyter stack, and
    patches nothing: its public names load on first use, to the same objects."""
    import subprocess
    import sys

    code = ("import sys, numpy; before = set(vars(numpy.linalg)); import mlipviz; "
            "heavy = [m for m in ('torch', 'chgnet', 'matgl', 'sevenn', 'mace', 'ipywidgets', 'pyscf', 'pandas') "
            "if m in sys.modules]; "
            "assert not heavy, heavy; "
            "import mlipviz.reference; assert set(vars(numpy.linalg)) == before, set(vars(numpy.linalg)) - before; "
            "from mlipviz.analysis.compare import compare; assert mlipviz.compare is compare; "
            "from mlipviz.analysis import scan; assert mlipviz.scan is scan; "
            "assert 'compare' in dir(mlipviz) and mlipviz.__version__")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def _run_tool(*args: str) -> None:
    """Run ``python -m <args>`` from the repository root; its output is printed, and shown when it fails."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    print(result.stdout, result.stderr)
    assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"


def test_ruff_finds_nothing():
    """Every Python file passes the lint rules of pyproject.toml ([tool.ruff.lint])."""
    pytest.importorskip("ruff")
    _run_tool("ruff", "check", ".")


def test_mypy_finds_nothing():
    """The package type-checks with the settings of pyproject.toml ([tool.mypy])."""
    pytest.importorskip("mypy")
    _run_tool("mypy", "mlipviz")
