"""Every script under benchmarks/ answers --help with its usage and exits, without starting its run."""

import runpy
import signal
import sys

import pytest

from ..conftest import ROOT

SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_benchmark_script_prints_its_usage_for_help(script, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the scripts import their neighbours
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])

    def started(*_):
        raise TimeoutError(f"{script.name} --help ran on for 60 s: it started its run")

    signal.signal(signal.SIGALRM, started)
    signal.alarm(60)
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "usage:" in out or out.strip().splitlines()[0] in script.read_text()  # argparse's, or the docstring
