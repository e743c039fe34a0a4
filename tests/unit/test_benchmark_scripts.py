"""Every script under benchmarks/ answers --help with its usage and exits, without starting its run."""

import runpy
import sys

import pytest

from ..conftest import ROOT

SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_benchmark_script_prints_its_usage_for_help(script, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the scripts import their neighbours
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "usage:" in out or out.strip().splitlines()[0] in script.read_text()  # argparse's, or the docstring
