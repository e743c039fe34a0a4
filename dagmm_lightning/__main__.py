"""The ``dagmm`` command: ``dagmm fit|validate|test|predict`` (LightningCLI) and ``dagmm benchmark``."""

from __future__ import annotations

import sys

from dagmm_lightning.errors import DAGMMError


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] == ["benchmark"]:
            from dagmm_lightning.benchmark.runner import main as benchmark

            benchmark(args[1:])
        else:
            from dagmm_lightning.cli import build_cli

            build_cli(argv)  # None: LightningCLI reads the command line itself
    except Exception as err:
        ours = _ours(err)
        if ours is None:
            raise
        print(f"dagmm: error: {ours}", file=sys.stderr)
        sys.exit(2)


def _ours(err: BaseException | None) -> DAGMMError | None:
    """The package's own error behind ``err``, also when the config parser wrapped it: its message says
    what to do, and a traceback would only hide it."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, DAGMMError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


if __name__ == "__main__":
    main()
