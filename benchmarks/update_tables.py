"""Replace each generated table in a markdown file by the current one.

    python benchmarks/update_tables.py BENCHMARKS.md README.md

A table is marked `<!-- table: benchmarks/results/NAME.md -->` ... `<!-- end table -->`; the text between
the markers is replaced by the file named (written by `dagmm benchmark`, or `--report`). Tables are
never edited by hand.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MARKED = re.compile(r"(<!-- table: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


def update(document: Path) -> None:
    text = document.read_text()
    root = Path(__file__).resolve().parents[1]
    text = MARKED.sub(lambda m: m.group(1) + (root / m.group("path")).read_text() + m.group(4), text)
    document.write_text(text)


if __name__ == "__main__":
    from script_usage import usage_or_exit  # this folder's script

    usage_or_exit(__doc__, sys.argv[1:], 1)
    for name in sys.argv[1:]:
        update(Path(name))
