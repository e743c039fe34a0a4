"""How busy this process's cores are with other work. torch runs an operator on all its threads (one per
core by default) and each waits for the others at its end: where another process keeps a core busy, a
fit takes several times as long (BENCHMARKS.md section 12, "Threads beside other work")."""

from __future__ import annotations

import os
import time
from pathlib import Path

SAMPLE_SECONDS = 0.25
BUSY_CORE = 0.75  # cores' worth of other work from which torch's threads outnumber the idle cores


def cpu_times(stat: str, cpus: set[int]) -> tuple[float, float]:
    """(busy, total) clock ticks of the cores ``cpus`` in a ``/proc/stat`` text (its ``cpuN`` lines: user,
    nice, system, idle, iowait, irq, softirq, steal, ...; idle and iowait are not busy)."""
    busy = total = 0.0
    for line in stat.splitlines():
        name, *fields = line.split() or [""]
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        ticks = [float(v) for v in fields[:8]]
        total += sum(ticks)
        busy += sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0.0)
    return busy, total


def cores_busy(seconds: float = SAMPLE_SECONDS) -> float | None:
    """How many of this process's cores other processes keep busy over the next ``seconds`` (this one
    sleeps meanwhile); None where ``/proc/stat`` is not there (not Linux)."""
    try:
        cpus = os.sched_getaffinity(0)
        first = cpu_times(Path("/proc/stat").read_text(), cpus)
        time.sleep(seconds)
        second = cpu_times(Path("/proc/stat").read_text(), cpus)
    except (OSError, AttributeError, ValueError):
        return None
    busy, total = second[0] - first[0], second[1] - first[1]
    return busy / total * len(cpus) if total > 0 else None


def threads_beside_busy_cores(threads: int, run: str = "the fit", processes: int = 1) -> str | None:
    """A warning's text where ``processes`` processes of ``threads`` torch threads each outnumber the cores
    other work leaves idle, else None; ``run``: what would be slow."""
    busy = cores_busy() if threads * processes > 1 else None
    if busy is None or busy < BUSY_CORE:
        return None
    cores = len(os.sched_getaffinity(0))
    if threads * processes <= cores - busy + 0.5:
        return None
    idle = max(1, round(cores - busy))
    if processes == 1:
        running = f"torch runs {threads} threads that wait on each other at every operator"
        fewer = f"fewer threads, e.g. OMP_NUM_THREADS={idle} dagmm ..."
    else:  # (a DDP run's: each process's threads wait on each other, and the processes at each step)
        running = (
            f"its {processes} processes run {threads} torch thread{'s' * (threads != 1)} each, more than the idle cores"
        )
        each = max(1, idle // processes)
        advice = [f"fewer threads, e.g. OMP_NUM_THREADS={each} dagmm ..."] if threads > each else []
        advice += ["fewer processes (--trainer.devices)"] if processes * min(threads, each) > idle else []
        fewer = " and ".join(advice)
    return (
        f"other work keeps {busy:.1f} of {cores} cores busy, and {running}: {run} can take several times as long; "
        f"start it with {fewer}"
    )
