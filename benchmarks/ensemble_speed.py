"""Ensemble cost: seconds per training epoch of `dagmm fit` with ``members`` = 1 and = N (one vectorised
model), alternately in one process, for each config given (KDDCUP99, the configs' own batch sizes).

    python benchmarks/ensemble_speed.py --configs configs/improved.yaml configs/dagmm.yaml --members 5

Validation and checkpointing are off; the first epoch of each run is a warm-up and not counted.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from speed import EpochTimer

from dagmm_lightning.cli import build_cli


def epoch_seconds(config: str, members: int, epochs: int) -> list[float]:
    """Wall seconds of each training epoch after the first."""
    args = ["--config", config, "--model.init_args.members", str(members), "--trainer.limit_val_batches", "0"]
    args += [
        "--checkpoint.save_last",
        "false",
        "--checkpoint.save_top_k",
        "0",
        "--trainer.logger",
        "false",
        "--trainer.enable_model_summary",
        "false",
    ]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.max_epochs", str(epochs)]
    args += ["--trainer.max_steps", "-1"]  # the improved config stops by steps: here by epochs
    cli = build_cli(args, run=False, save_config=False)
    timer = EpochTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return [wall for wall, _ in timer.seconds[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["configs/improved.yaml", "configs/dagmm.yaml"])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is a warm-up)")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"| config | s/epoch, 1 member | s/epoch, {args.members} members | ratio |\n|---|---|---|---|")
    for config in args.configs:
        times: dict[int, list[float]] = {1: [], args.members: []}
        for _ in range(args.rounds):
            for members in times:
                times[members] += epoch_seconds(config, members, args.epochs)
        one, many = (statistics.median(times[m]) for m in times)
        print(f"| {config} | {one:.2f} | {many:.2f} | {many / one:.2f} |", flush=True)


if __name__ == "__main__":
    main()
