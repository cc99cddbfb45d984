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
