"""``dagmm predict`` on CSV and Parquet files of growing length: rows/s and peak memory (RSS).

    python benchmarks/predict_stream.py --rows 500000 2500000 5000000 --work /tmp/predict_stream

The table is the KDDCUP99 10 % file (41 features, 3 of them text) replicated with small noise on its
numeric columns (each copy its own), with its 0/1 label column. A model is trained on its first 100,000
rows (``configs/table.yaml``'s paper network, 1 epoch: the speed does not depend on the weights), then
each file is scored by a separate ``dagmm predict`` process, whose wall time and peak RSS (``os.wait4``)
are reported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from dagmm_lightning.data.loaders import read_kddcup99_file

ROOT = Path(__file__).resolve().parents[1]


def write_tables(rows: int, work: Path) -> dict[str, Path]:
    """CSV and Parquet files of ``rows`` rows, written copy by copy (bounded memory)."""
    table = read_kddcup99_file(ROOT / "data" / "kddcup.data_10_percent.gz")
    base = table.features.assign(label=table.is_anomaly.astype(int))
    numeric = [c for c in base.columns if c not in table.symbolic and c != "label"]
    paths = {suffix: work / f"kdd_{rows}.{suffix}" for suffix in ("csv", "parquet")}
    if all(p.exists() for p in paths.values()):
        return paths
    rng, written, writers = np.random.default_rng(0), 0, {}
    try:
        while written < rows:
            part = base.iloc[: rows - written].copy()
            part[numeric] = part[numeric].astype(float) + rng.normal(0, 0.01, (len(part), len(numeric)))
            arrow = pa.Table.from_pandas(part, preserve_index=False)
            if not writers:
                writers = {"csv": pa_csv.CSVWriter(paths["csv"], arrow.schema)}
                writers["parquet"] = pq.ParquetWriter(paths["parquet"], arrow.schema)
            for writer in writers.values():
                writer.write_table(arrow)
            written += len(part)
    finally:
        for writer in writers.values():
            writer.close()
    return paths


# Runs each command it reads (a JSON list per line) and answers [wall seconds, exit code, peak RSS in KiB].
LAUNCHER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    start = time.perf_counter()
    child = subprocess.Popen(json.loads(line), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    print(json.dumps([time.perf_counter() - start, os.waitstatus_to_exitcode(status), usage.ru_maxrss]), flush=True)
"""
_launcher: subprocess.Popen | None = None


def dagmm(args: list[str]) -> tuple[float, float]:
    """Run ``dagmm`` in a child process; its wall seconds and peak RSS in MiB (``os.wait4``).

    The child is started by a small launcher process, not by this script: on Linux a child's peak RSS
    starts at the peak of the process that forked it (the high-water mark is copied at fork and kept
    through exec), so a child of this script, which held the tables it wrote, would report that peak."""
    global _launcher
    if _launcher is None:
        pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        _launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], **pipes)
    _launcher.stdin.write(json.dumps([sys.executable, "-m", "dagmm_lightning", *args]) + "\n")
    _launcher.stdin.flush()
    seconds, code, peak_kib = json.loads(_launcher.stdout.readline())
    if code != 0:
        raise RuntimeError(f"dagmm {' '.join(args)} failed")
    return seconds, peak_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[500_000, 2_500_000, 5_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/predict_stream"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    train = write_tables(100_000, args.work)["csv"]
    logs = args.work / "logs"
    fit = ["fit", "--config", str(ROOT / "configs/table.yaml"), "--data.path", str(train)]
    fit += ["--data.label_column", "label", "--trainer.max_epochs", "1", "--trainer.max_steps", "-1"]
    fit += ["--trainer.logger.init_args.save_dir"]
    dagmm([*fit, str(logs), "--trainer.enable_progress_bar", "false"])
    checkpoint = max(logs.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    print("| rows | file | seconds | rows/s | peak RSS (MiB) |\n|---|---|---|---|---|")
    for rows in args.rows:
        for kind, path in write_tables(rows, args.work).items():
            out = args.work / f"scores_{rows}_{kind}.csv"
            predict = ["predict", "--ckpt_path", str(checkpoint), "--data.predict_file", str(path)]
            seconds, peak = dagmm([*predict, "--prediction_writer.output_path", str(out)])
            with open(out) as f:
                scored = sum(1 for _ in f) - 1
            assert scored == rows, (scored, rows)
            print(f"| {rows:,} | {kind} | {seconds:.1f} | {rows / seconds:,.0f} | {peak:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
