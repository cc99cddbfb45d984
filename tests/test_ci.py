"""The contract with a newcomer: CI runs the README's set-up commands and nothing else, and the
repository names no folder of the machine it was made on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from readme_commands import setup_commands  # noqa: E402

#: the lines of .ci/run that do something: read the README's commands, run each as written
CI_LINES = [
    "set -euo pipefail",
    'cd "$(dirname "$0")/.."',
    'commands="$(python3 scripts/readme_commands.py)"',
    "while IFS= read -r command; do",
    "printf '+ %s\\n' \"$command\"",
    'bash -euo pipefail -c "$command" </dev/null',
    'done <<< "$commands"',
]


def test_ci_runs_the_readme_commands_and_nothing_else():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert [line for line in lines if line and not line.startswith("#")] == CI_LINES
    printed = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_commands.py")],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert printed == setup_commands()


def test_readme_commands_are_the_install_and_the_tests():
    install, tests = setup_commands()
    assert 'pip install -e ".[all,dft,test]"' in install and "python -m mlipviz demo" in install
    assert "pip install torch==2.13.0" in install  # CPU torch first (plain torch pulls CUDA)
    # the tests find the shared weights by themselves: no setting in the README's test command
    assert tests == "python -m pytest -q"


@pytest.mark.parametrize("text, problem", [
    ("# x\n\nno block\n", "no heading"),
    ("## Set up a fresh machine\n\ntext\n\n## Next\n```bash\na\nb\n```\n", "no ```bash block"),
    ("## Set up a fresh machine\n```bash\na\n", "not closed"),
    ("## Set up a fresh machine\n```bash\n# one\na\nb\nc\n```\n", "found 3"),
    ("## Set up a fresh machine\n```bash\na \\\n  b\nc\n```\n", "one line each"),
])
def test_a_readme_out_of_shape_fails_ci(tmp_path, text, problem):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_commands.py"), str(readme)],
                         capture_output=True, text=True)
    assert run.returncode != 0 and problem in run.stderr


#: absolute paths into folders that belong to one machine (home folders, scratch, checkouts);
#: /usr/bin/chromium (Debian's package, the browser tests' executable) and /dev, /proc are not
MACHINE_PATH = re.compile(rb"(?<![\w.$~/-])/(work|root|home|Users|tmp|opt|mnt|scratch|srv|var)/")


def test_no_machine_paths_in_the_repository():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    found = []
    for name in filter(None, tracked.decode().split("\0")):
        path = ROOT / name
        if path.suffix in (".png", ".jpg") or not path.is_file():
            continue
        for match in MACHINE_PATH.finditer(path.read_bytes()):
            found.append(f"{name}: ...{match.group(0).decode()}...")
    assert not found, "machine paths in tracked files:\n" + "\n".join(found)
