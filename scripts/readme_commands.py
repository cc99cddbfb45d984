"""Print the README's set-up commands, one a line, as `.ci/run` runs them.

They are the lines of the fenced ``bash`` block under the heading "Set up a fresh machine",
without comments and blank lines. Exits non-zero, naming the problem, when the block is missing
or does not hold exactly two commands (install and demo; the tests), so that a README edited
out of shape fails CI instead of running something else.
"""

from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "## Set up a fresh machine"


def setup_commands(readme: Path = README) -> list[str]:
    """The commands of the README's set-up block, in order."""
    lines = readme.read_text().splitlines()
    if HEADING not in lines:
        raise SystemExit(f"{readme.name}: no heading '{HEADING}'")
    rest = lines[lines.index(HEADING) + 1:]
    starts = [i for i, line in enumerate(rest) if line.strip() == "```bash"]
    if not starts or any(line.startswith("## ") for line in rest[:starts[0]]):
        raise SystemExit(f"{readme.name}: no ```bash block under '{HEADING}'")
    block = rest[starts[0] + 1:]
    if "```" not in (line.strip() for line in block):
        raise SystemExit(f"{readme.name}: the ```bash block under '{HEADING}' is not closed")
    block = block[:[line.strip() for line in block].index("```")]
    commands = [line.strip() for line in block if line.strip() and not line.lstrip().startswith("#")]
    if any(command.endswith("\\") for command in commands):
        raise SystemExit(f"{readme.name}: set-up commands must be one line each (no '\\' continuations)")
    if len(commands) != 2:
        raise SystemExit(f"{readme.name}: expected 2 set-up commands under '{HEADING}', found "
                         f"{len(commands)}")
    return commands


if __name__ == "__main__":
    print("\n".join(setup_commands(Path(sys.argv[1]) if len(sys.argv) > 1 else README)))
