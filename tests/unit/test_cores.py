"""Other work on the cores: /proc/stat's ticks, and `dagmm fit`'s warning where torch's threads outnumber
the idle cores."""

import os
import sys

import torch

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
    # a multi-process run's: each process's threads (had: this process's count, "torch runs 2 threads" for
    # 2 DDP processes of 1 thread each, and advice that changes nothing)
    text = cores.threads_beside_busy_cores(1, processes=count + 1)
    assert f"cores busy, and its {count + 1} processes run 1 torch thread each, more than the idle cores: " in text
    assert text.endswith("start it with fewer processes (--trainer.devices)")
    text = cores.threads_beside_busy_cores(count, processes=2)
    assert f"and its 2 processes run {count} torch threads each" in text and "OMP_NUM_THREADS=" in text
    assert f"OMP_NUM_THREADS={max(1, max(1, count - 1) // 2)} dagmm" in text
    text = cores.threads_beside_busy_cores(2, processes=count + 1)  # one thread each is still too many
    assert text.endswith("OMP_NUM_THREADS=1 dagmm ... and fewer processes (--trainer.devices)")
    monkeypatch.setattr(cores, "cores_busy", lambda seconds=0.25: 0.2)  # a little other work: fine
    assert cores.threads_beside_busy_cores(count) is None
    monkeypatch.setattr(cores, "cores_busy", lambda seconds=0.25: None)  # not Linux: nothing known
    assert cores.threads_beside_busy_cores(count + 1) is None


def test_a_multi_process_runs_threads_are_those_lightning_gives_each_process(monkeypatch):
    from types import SimpleNamespace

    from dagmm_lightning.cli import threads_and_processes

    cpus = len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads_and_processes(SimpleNamespace(num_devices=2, world_size=2)) == (max(1, cpus // 2), 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # (as given: Lightning keeps it)
    assert threads_and_processes(SimpleNamespace(num_devices=2, world_size=4)) == (3, 2)  # this machine's two
    assert threads_and_processes(SimpleNamespace(num_devices=1, world_size=1)) == (torch.get_num_threads(), 1)


def test_more_processes_than_cores_on_cpus_are_warned_of():
    from types import SimpleNamespace

    from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

    from dagmm_lightning.cli import more_processes_than_cores

    cores = len(os.sched_getaffinity(0))
    run = SimpleNamespace(num_devices=cores + 1, world_size=cores + 1, accelerator=CPUAccelerator())
    assert more_processes_than_cores(run) == (
        f"--trainer.devices {cores + 1} starts {cores + 1} processes on {cores} cores: they take turns on the cores "
        f"and wait for each other at every step, slower than {cores} processes would be; give --trainer.devices "
        f"{cores} or fewer"
    )
    assert (
        more_processes_than_cores(SimpleNamespace(num_devices=cores, world_size=cores, accelerator=CPUAccelerator()))
        is None
    )
    assert (
        more_processes_than_cores(
            SimpleNamespace(num_devices=cores + 1, world_size=cores + 1, accelerator=CUDAAccelerator())
        )
        is None
    )
