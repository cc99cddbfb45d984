"""``python -m mlipviz``: the command line (`mlipviz.cli`)."""

import sys

from .cli import main

sys.exit(main())
