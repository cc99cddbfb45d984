"""The documentation site builds with warnings as errors (a docstring griffe cannot parse, a
broken link or anchor, a page missing from the nav all fail), the API pages carry the
docstrings, and every relative link and image in the README and in docs/ points to a file."""

from __future__ import annotations

import html
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mlipviz

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once by ``mkdocs build --strict`` from the repository root."""
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # mkdocs-material's banner about its successor
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (f"mkdocs build --strict failed ({run.returncode})\n"
                                 f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}")
    return out


def test_the_site_builds_strictly(site):
    assert (site / "index.html").is_file()
    assert (site / "api" / "mlipviz" / "index.html").is_file()


def first_sentence(obj) -> str:
    """The first sentence of an object's docstring, as plain text (no markup, one space)."""
    paragraph = inspect.cleandoc(obj.__doc__).split("\n\n")[0]
    text = " ".join(paragraph.replace("`", "").split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return match.group(1) if match else text


def page_text(page: Path) -> str:
    """A built page's visible text: tags removed, entities decoded, whitespace collapsed."""
    text = re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))
    return " ".join(html.unescape(text).split())


@pytest.mark.parametrize("name", ["Frames", "compare"])
def test_api_pages_show_the_docstrings(site, name):
    anchor = f'id="mlipviz.{name}"'
    pages = [p for p in site.rglob("*.html") if anchor in p.read_text(encoding="utf-8")]
    assert pages, f"no page of the built site documents mlipviz.{name} (no {anchor})"
    assert all(p.relative_to(site).parts[0] == "api" for p in pages), pages
    sentence = first_sentence(getattr(mlipviz, name))
    assert any(sentence in page_text(p) for p in pages), \
        f"'{sentence}' is not on {[str(p.relative_to(site)) for p in pages]}"


# ---------------------------------------------------------------------------- relative links

MARKDOWN_FILES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]

INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"(?m)^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_SOURCE = re.compile(r"""<(?:img|a)\b[^>]*\b(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)
EXTERNAL = re.compile(r"^([a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)


def without_code(text: str) -> str:
    """The text without fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"(?ms)^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", "", text)
    return re.sub(r"(`+)[^`]*?\1", "", text)


def relative_targets(path: Path) -> list[str]:
    text = without_code(path.read_text(encoding="utf-8"))
    found = [m.group(1) for pattern in (INLINE, REFERENCE, HTML_SOURCE) for m in pattern.finditer(text)]
    return [target for target in found if not EXTERNAL.match(target)]


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files(path):
    missing = []
    for target in relative_targets(path):
        file = target.split("#", 1)[0].split("?", 1)[0]
        if file.startswith("/") or not (path.parent / file).exists():
            missing.append(target)
    assert not missing, f"{path.relative_to(ROOT)} links to missing files: {missing}"


def test_the_link_check_sees_links():
    """The link patterns find what the README links to (so an empty result is not a pass)."""
    targets = relative_targets(ROOT / "README.md")
    assert "docs/images/explorer_error_map_clicked.png" in targets
    assert "docs/getting_started.md" in targets
    assert any(t.startswith("notebooks/") for t in targets)
