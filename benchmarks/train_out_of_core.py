"""``dagmm fit`` on a table read out of core (``--data.out_of_core true``): time and peak memory (RSS) as
the table grows, and the same model as training in memory.

    python benchmarks/train_out_of_core.py --rows 500000 2500000 5000000 --work /tmp/predict_stream

The tables are ``predict_stream.py``'s (the KDDCUP99 10 % file replicated with small noise on its
numeric columns, 41 columns, 118 features once encoded, a 0/1 label column). Each run is a separate
``dagmm fit`` process: ``configs/table.yaml`` (the paper's networks, batch 256), the paper protocol's
split of the table (training rows: half of the label-0 rows, less a tenth for validation), one epoch,
no validation; its wall time (file passes, training, the training-set refit) and peak RSS (``os.wait4``)
are reported, beside the table's size as float32. On the first (smallest) table the same run also
trains in memory, and the two checkpoints' weights, mixture and threshold are compared.

    python benchmarks/train_out_of_core.py --rows 200000 1000000 --work /tmp/predict_stream --improved 300

runs the README's first command for a table instead, without validation as above
(``configs/improved.yaml`` composed with ``configs/table.yaml``: networks sized from the data, an
ensemble of 5, the network's own scoring fit on at most 65,536 training rows; up to 32 components
re-seeded before a0a56df, refined by EM before 90b1498) for 300 steps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from predict_stream import dagmm, write_tables  # this folder's script

ROOT = Path(__file__).resolve().parents[1]
FEATURES = 118


def fit(path: Path, logs: Path, out_of_core: bool, improved_steps: int | None) -> tuple[float, float, Path]:
    configs = ["--config", str(ROOT / "configs/table.yaml")]
    schedule = ["--trainer.max_epochs", "1", "--trainer.max_steps", "-1"]
    if improved_steps is not None:  # the README's first command for a table: the improved method composed
        configs = ["--config", str(ROOT / "configs/improved.yaml"), *configs]
        schedule = ["--trainer.max_epochs", "-1", "--trainer.max_steps", str(improved_steps)]
    args = ["fit", *configs, "--data.path", str(path), *schedule, "--trainer.limit_val_batches", "0"]
    args += ["--data.label_column", "label", "--data.out_of_core", str(out_of_core).lower()]
    args += ["--trainer.enable_progress_bar", "false"]
    args += ["--trainer.logger.init_args.save_dir", str(logs)]
    seconds, peak = dagmm(args)
    return seconds, peak, max(logs.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[500_000, 2_500_000, 5_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/predict_stream"))
    parser.add_argument("--kind", choices=["csv", "parquet"], default="csv")
    parser.add_argument(
        "--improved",
        type=int,
        metavar="STEPS",
        help="configs/improved.yaml composed with table.yaml, STEPS steps (not one epoch of table.yaml)",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print("| rows | file | reading | seconds | seconds / M rows | peak RSS (MiB) | table as float32 (MiB) |")
    print("|---|---|---|---|---|---|---|")
    checkpoints = {}
    for number, rows in enumerate(args.rows):
        path = write_tables(rows, args.work)[args.kind]
        for out_of_core in (True, False) if number == 0 else (True,):
            method = "" if args.improved is None else f"_improved{args.improved}"
            logs = args.work / f"logs_fit_{rows}_{out_of_core}{method}"
            seconds, peak, checkpoint = fit(path, logs, out_of_core, args.improved)
            if number == 0:
                checkpoints[out_of_core] = checkpoint
            size = rows * FEATURES * 4 / 2**20
            reading = "out of core" if out_of_core else "in memory"
            print(
                f"| {rows:,} | {args.kind} | {reading} | {seconds:.0f} | {seconds / rows * 1e6:.0f} | {peak:,.0f} | "
                f"{size:,.0f} |",
                flush=True,
            )
    states = [torch.load(checkpoints[flag], weights_only=False)["state_dict"] for flag in (False, True)]
    differing = [name for name in states[0] if not torch.equal(states[0][name], states[1][name])]
    print(
        f"\n{args.rows[0]:,} rows: of the {len(states[0])} tensors of the model's state, differing between in memory "
        f"and out of core: {differing or 'none'}"
    )


if __name__ == "__main__":
    main()
