"""The command line of the scripts here that take positional arguments: ``--help`` (or too few
arguments) prints the script's docstring, which shows how it is run, instead of starting it."""

from __future__ import annotations

import sys


def usage_or_exit(doc: str, argv: list[str], needed: int) -> None:
    """Exits after printing ``doc``: with status 0 for -h / --help, 2 when ``argv`` has fewer than
    ``needed`` arguments; returns otherwise."""
    asked = any(arg in ("-h", "--help") for arg in argv[: max(needed, 1)])  # later ones: options passed on
    if asked or len(argv) < needed:
        print(doc.strip(), file=sys.stdout if asked else sys.stderr)
        sys.exit(0 if asked else 2)
