"""Other work on the cores: /proc/stat's ticks, and `dagmm fit`'s warning where torch's threads outnumber
the idle cores."""

import os
import sys

from dagmm_lightning import cores

STAT = """cpu  300 0 100 600 10 0 0 0 0 0
cpu0 100 0 50 300 5 0 0 0 0 0
cpu1 200 0 50 300 5 0 0 0 0 0
intr 12345 0 0

ctxt 999
"""


def test_busy_and_total_ticks_of_the_processs_cores_by_hand():
    assert cores.cpu_times(STAT, {0}) == (150.0, 455.0)  # user 100 + system 50; idle 300 and iowait 5 not busy
    assert cores.cpu_times(STAT, {0, 1}) == (400.0, 1010.0)  # 455 + 555 of the per-core lines, not the total line
    assert cores.cpu_times(STAT, {7}) == (0.0, 0.0)


def test_the_machines_busy_cores_are_between_none_and_all(monkeypatch):
    monkeypatch.undo()  # the real sampling (conftest turns it off for every other test)
    busy = cores.cores_busy(0.05)
    if not sys.platform.startswith("linux"):  # no /proc/stat
        assert busy is None
    else:
        assert busy is not None and 0.0 <= busy <= len(os.sched_getaffinity(0)) + 1e-9


def test_a_warning_only_where_torchs_threads_outnumber_the_idle_cores(monkeypatch):
    count = len(os.sched_getaffinity(0))
    sampled = []
    monkeypatch.setattr(cores, "cores_busy", lambda seconds=0.25: sampled.append(seconds) or 1.0)
    text = cores.threads_beside_busy_cores(count + 1)
    assert text.startswith(f"other work keeps 1.0 of {count} cores busy, and torch runs {count + 1} threads")
    assert f"OMP_NUM_THREADS={max(1, count - 1)} dagmm" in text
    assert cores.threads_beside_busy_cores(1) is None and len(sampled) == 1  # one thread: nothing to sample
    monkeypatch.setattr(cores, "cores_busy", lambda seconds=0.25: 0.2)  # a little other work: fine
    assert cores.threads_beside_busy_cores(count) is None
    monkeypatch.setattr(cores, "cores_busy", lambda seconds=0.25: None)  # not Linux: nothing known
    assert cores.threads_beside_busy_cores(count + 1) is None
