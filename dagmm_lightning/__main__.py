"""The ``dagmm`` command: ``dagmm fit|validate|test|predict`` (LightningCLI) and ``dagmm benchmark``."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from dagmm_lightning.errors import own_error, own_warnings_as_lines

USAGE = """usage: dagmm {fit,validate,test,predict,benchmark} [options]

Deep Autoencoding Gaussian Mixture Models (DAGMM) and variants for anomaly detection.

subcommands:
  fit        train a model: dagmm fit --config configs/quickstart.yaml; on a table of yours (CSV, Parquet):
             dagmm fit --config configs/improved.yaml --config configs/table.yaml --data.path T.csv
               --data.label_column COLUMN (if it has one)
  validate   metrics on the val rows of a checkpoint: dagmm validate --ckpt_path C
  test       metrics on the test rows of a checkpoint: dagmm test --ckpt_path C
  predict    scores and 0/1 labels to a CSV: dagmm predict --ckpt_path C --data.predict_file ROWS.csv
  benchmark  grids of configs x data sets x seeds with reference detectors, tables and figures

'dagmm SUBCOMMAND --help' lists a subcommand's options ('dagmm fit --model.help DAGMM' the model's);
configs/ is the repository's folder (run dagmm in its root); 'dagmm --version' the package's version.
A variant of your own (compression, mixture family, loss term, score): README, 'Your own variant';
'dagmm fit --model my_module.MyDAGMM' trains it (its module in the current folder or on PYTHONPATH)."""


SUBCOMMANDS = ("fit", "validate", "test", "predict", "benchmark")
FIT_ALONE = "say what to train, e.g. 'dagmm fit --config configs/quickstart.yaml' ('dagmm fit --help': every option)"


def script() -> None:
    """The installed ``dagmm`` command: ``main`` with the current folder on the import path, as under
    ``python -m dagmm_lightning`` (a script's path has its own folder instead), so that a user's module
    (``--model my_variants.DeepDAGMM``) imports from there."""
    try:
        here = os.getcwd()
    except FileNotFoundError:  # started in a folder since removed
        here = None
    if here is not None and "" not in sys.path and here not in sys.path:
        sys.path.append(here)
    interruptible_main()


class StoppedBySigterm(BaseException):
    """SIGTERM where no run handles it (``stop_on_sigterm``); a BaseException, as KeyboardInterrupt: code
    that catches Exception (an optional import's, jsonargparse's wrapping of a link's error) lets it by."""


def stop_on_sigterm() -> None:
    """SIGTERM, where no run handles it (while the command starts, reads a table out of core before its
    run: minutes), raises ``StoppedBySigterm`` in this process: one line and exit 143 (had: the process ended
    without a word). An ignored SIGTERM stays ignored; a process forked from this one dies of it as by
    default."""
    import signal

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    mine = os.getpid()

    def stop(signum, frame):
        if os.getpid() != mine:  # (a forked child: the default's death)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise StoppedBySigterm

    signal.signal(signal.SIGTERM, stop)


def interruptible_main() -> None:
    """``main``, with Ctrl-C one line and exit 130, and SIGTERM one line and exit 143, where no run handles
    them (e.g. while torch and Lightning import, seconds); then the process ends at once (``exit_now``)."""
    try:
        stop_on_sigterm()
        main()
        sys.stdout.flush()  # (here, not at the interpreter's exit, where a closed pipe is a printed error)
    except KeyboardInterrupt:
        print("dagmm: interrupted", file=sys.stderr)
        exit_now(130)
    except StoppedBySigterm:
        print("dagmm: stopped by SIGTERM", file=sys.stderr)
        exit_now(143)
    except BrokenPipeError:  # the reader went first (dagmm --help | head -1): no traceback, as other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        exit_now(1)
    except SystemExit as stop:
        exit_now(stop.code)
    exit_now(0)


def exit_now(code) -> None:
    """Ends the process with ``code`` (an int, or None: 0) without the interpreter's teardown of every
    module, about 1 s once torch and Lightning are imported (a signal then turned a finished run's exit
    code into 143 or 130): the atexit functions run and the output (C libraries' too) is flushed first.
    Where another code is given or another non-daemon thread still runs, ``sys.exit(code)``: Python's own
    exit, which waits."""
    import threading

    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    if code is None or isinstance(code, int):
        end_on_sigterm_with(code or 0)
    if code is not None and not isinstance(code, int) or any(t.is_alive() for t in others):
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()  # (logging's shutdown, multiprocessing's children, weakref finalizers, ...)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to write there
            pass
    flush_c_streams()
    os._exit(code or 0)


def end_on_sigterm_with(code: int) -> None:
    """From here a SIGTERM ends the exiting process at once with ``code``, its output flushed: one that came
    while the exit functions ran (a ddp run's launcher stopping its other processes, their parent's death
    signal) had raised in them, a traceback after the run's last line."""
    import signal

    def end(signum, frame):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)

    try:
        signal.signal(signal.SIGTERM, end)
    except ValueError:  # (not the main thread: no handler can be set there)
        pass


def flush_c_streams() -> None:
    """fflush(NULL): what C libraries printed through stdio and still buffer (a redirected stdout is
    block-buffered) is written, as the C runtime's own exit would; os._exit skips that."""
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C runtime to find this way (Windows): nothing to flush here
        pass


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)  # without importing torch or Lightning: answers at once
        return
    if args[0] == "--version":
        from importlib.metadata import version

        print(f"dagmm {version('dagmm-lightning')}")
        return
    if not args[0].startswith("-") and args[0] not in SUBCOMMANDS:
        print(f"dagmm: error: no subcommand {args[0]!r}; choose from {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        sys.exit(2)
    first = first_subcommand(args)  # options before it: jsonargparse's "Option ... is not accepted before ..."
    if args[0].startswith("-") and first is not None and not subcommand_sections(args[:first]):
        command = shlex.join(["dagmm", args[first], *args[:first], *args[first + 1 :]])
        print(f"dagmm: error: the subcommand comes first: {command}", file=sys.stderr)
        sys.exit(2)
    if args[0].startswith("-") and first is None:
        print(
            f"dagmm: error: no subcommand; give one first: dagmm {{{','.join(SUBCOMMANDS)}}} [options]", file=sys.stderr
        )
        sys.exit(2)
    if args == ["fit"]:  # not a run of the defaults (1,000 epochs on the embedded table)
        print(f"dagmm: error: {FIT_ALONE}", file=sys.stderr)
        sys.exit(2)
    try:
        if args[0] == "benchmark":
            from dagmm_lightning.benchmark.runner import main as benchmark
            from dagmm_lightning.cli import PARSED_ARGS

            PARSED_ARGS[:] = args[1:]  # (its errors name config files' settings: not another command's)
            own_warnings_as_lines()
            benchmark(args[1:])
        else:
            from dagmm_lightning.cli import build_cli

            own_warnings_as_lines()
            build_cli(argv)  # None: LightningCLI reads the command line itself
    except Exception as err:
        ours = own_error(err) or settings_error(err)
        if ours is None:
            raise
        bars = sys.modules.get("tqdm.std")  # a progress bar still drawn: ended first, so the error has its own line
        for bar in list(getattr(getattr(bars, "tqdm", None), "_instances", [])):
            bar.close()
        print(f"dagmm: error: {ours}", file=sys.stderr)
        sys.exit(2)


def first_subcommand(args: list[str]) -> int | None:
    """The position of the first subcommand's name in ``args`` that is not an option's value, or None."""
    for i, arg in enumerate(args):
        value = i > 0 and args[i - 1].startswith("-") and "=" not in args[i - 1]
        if arg in SUBCOMMANDS and not value:
            return i
    return None


def subcommand_sections(args: list[str]) -> bool:
    """Whether a config file given in ``args`` (``--config F``, ``-c F``) holds a section of a subcommand's
    settings (``fit:``): LightningCLI's way to give them before the subcommand."""
    import yaml

    files = [b for a, b in zip(args, [*args[1:], None], strict=False) if a in ("--config", "-c") and b]
    files += [a.split("=", 1)[1] for a in args if a.startswith(("--config=", "-c="))]
    for name in files:
        try:
            content = yaml.safe_load(Path(name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(content, dict) and set(content) & set(SUBCOMMANDS):
            return True
    return False


def settings_error(err: Exception) -> str | None:
    """Lightning's word on a setting it refuses only once a run starts (``val_check_interval`` past the
    epoch, gradient clipping with manual optimisation, a callback's package not installed), in one line."""
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    seen = set()
    while err is not None and id(err) not in seen:  # also behind jsonargparse's errors of instantiation
        missing_package = isinstance(err, ModuleNotFoundError) and "pip install" in str(err)
        if isinstance(err, MisconfigurationException) or missing_package:
            text = " ".join(str(err).split())
            past = re.fullmatch(r"You restored a checkpoint with current_epoch=(\d+), but .*max_epochs=(\d+)\)\.", text)
            if past:  # a resume past --trainer.max_epochs
                epochs = f"{past[1]} epoch{'' if past[1] == '1' else 's'}"
                return (
                    f"{text} The checkpoint has trained {epochs} already: give --trainer.max_epochs above "
                    f"{past[1]} to train on (or test the checkpoint: dagmm test --ckpt_path)"
                )
            return text
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


if __name__ == "__main__":
    if __spec__ is not None:  # python -m: usage lines (--model.help's too) name dagmm; DDP relaunches by -m
        sys.argv[0] = "dagmm"
    interruptible_main()
