"""The README's first command for a table (``--config configs/improved.yaml --config configs/table.yaml``)
on a long table whose text columns outweigh its numbers: time, peak memory (RSS) and the sizes chosen.

    python benchmarks/text_heavy_table.py --rows 2000000 --work /tmp/text_heavy 2> fit.log

The table (written once per row count, in chunks): 20 numeric columns, noisy mixtures of 4 hidden factors
(normal rows) in [0, 1]; 3 text columns of 30 categories each, drawn with Zipf-like frequencies that
depend on the first factor; and a 0/1 ``label`` column. 2 % of the rows are anomalies: half with 5 numeric
columns moved off the factors' plane, half with a category from the other end of its frequency order in
every text column. Once encoded, 110 features, 90 of them one-hot: after min-max scaling those carry
most of the variance, so keeping 99 % of it would take a latent of ~90 dimensions.

One ``dagmm fit`` process (``predict_stream.dagmm``: its wall seconds and peak RSS), out of core by
default (``--in-memory`` to read the table whole), 6,000 steps validated every 1,000 (``configs/table.yaml``'s
schedule; ``--steps`` and ``--every`` to change it). Its own lines (the sizes chosen, the fit summary) go
to stderr; printed (JSON): seconds, peak RSS, the sizes chosen, the rows the last fit read and the val
ROC AUC of every validation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import torch
from predict_stream import dagmm  # this folder's script
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dagmm_lightning.models.dagmm import FIT_COUNTS_KEY

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 100_000
NUMBERS, TEXTS, CATEGORIES, FACTORS = 20, 3, 30, 4


def write_table(rows: int, work: Path) -> Path:
    """The CSV file of ``rows`` rows (see the module's text); kept and reused once written."""
    path = work / f"text_heavy_{rows}.csv"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    loadings = rng.normal(size=(FACTORS, NUMBERS))
    names = [[f"{'abc'[t]}{c:02d}" for c in range(CATEGORIES)] for t in range(TEXTS)]
    frequency = 1.0 / np.arange(1, CATEGORIES + 1)
    writer, written = None, 0
    partial = path.with_suffix(".part")
    try:
        while written < rows:
            n = min(CHUNK, rows - written)
            factors = rng.normal(size=(n, FACTORS))
            numbers = factors @ loadings + rng.normal(0, 0.1, (n, NUMBERS))
            anomaly = rng.random(n) < 0.02
            moved = anomaly & (rng.random(n) < 0.5)
            numbers[moved, :5] += rng.normal(0, 3, (int(moved.sum()), 5))
            columns = {f"x{i}": 1 / (1 + np.exp(-numbers[:, i] / 3)) for i in range(NUMBERS)}
            for t in range(TEXTS):  # the first factor shifts which categories are common
                shift = (factors[:, 0] > 0).astype(int) * (t + 1)
                drawn = rng.choice(CATEGORIES, size=n, p=frequency / frequency.sum())
                drawn = np.where(anomaly & ~moved, CATEGORIES - 1 - drawn, drawn)
                columns[f"text{t}"] = np.array(names[t])[(drawn + shift) % CATEGORIES]
            columns["label"] = anomaly.astype(np.int64)
            table = pa.table(columns)
            writer = writer or pa_csv.CSVWriter(partial, table.schema)
            writer.write_table(table)
            written += n
    finally:
        if writer is not None:
            writer.close()
    partial.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/text_heavy"))
    parser.add_argument("--in-memory", action="store_true", help="read the table whole (default: out of core)")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--every", type=int, default=1000, help="steps between validations")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more dagmm fit arguments")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    path = write_table(args.rows, args.work)
    logs = args.work / f"logs_{args.rows}"
    command = ["fit", "--config", str(ROOT / "configs/improved.yaml"), "--config", str(ROOT / "configs/table.yaml")]
    command += ["--data.path", str(path), "--data.label_column", "label"]
    command += ["--data.out_of_core", str(not args.in_memory).lower(), "--trainer.max_steps", str(args.steps)]
    command += ["--trainer.val_check_interval", str(args.every), "--trainer.enable_progress_bar", "false"]
    command += ["--trainer.logger.init_args.save_dir", str(logs), *args.extra]
    seconds, peak = dagmm(command)
    checkpoint = max(logs.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    hp = saved["hyper_parameters"]
    sizes = {key: hp.get(key) for key in ("input_dim", "latent_dim", "hidden_dims", "fit_components", "fit_rows")}
    events = EventAccumulator(str(checkpoint.parents[1]))  # the run's TensorBoard folder
    events.Reload()
    val = [round(event.value, 4) for event in events.Scalars("val/roc_auc")]
    counts = saved.get(FIT_COUNTS_KEY, {})
    shown = {"rows": args.rows, "seconds": round(seconds), "peak_rss_mib": round(peak), **sizes}
    print(json.dumps(shown | {"rows_fitted": counts.get("rows_fitted"), "val_roc_auc": val}))


if __name__ == "__main__":
    main()
