"""Speed benchmark: seconds per training epoch of `dagmm fit` against a plain PyTorch loop doing the same
math (same modules, same whole-batch indexing), run alternately in one process.

    python benchmarks/speed.py --config configs/dagmm.yaml --rounds 3 --epochs 3

Validation and checkpointing are off on both sides; the Lightning side keeps its defaults otherwise
(progress bar, logging every 50 steps). The first epoch of each round is a warm-up and not counted.
Wall time and the process's CPU time are both reported: on a machine shared with other jobs the CPU
time (with one torch thread) is the steadier measure of the work each side does.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch

from dagmm_lightning.cli import build_cli
from dagmm_lightning.losses import squared_error
from dagmm_lightning.networks import reconstruction_features


class EpochTimer(L.Callback):
    def __init__(self) -> None:
        self.seconds: list[tuple[float, float]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append((time.perf_counter() - self._start[0], time.process_time() - self._start[1]))


def plain_epochs(model, x: torch.Tensor, batch_size: int, epochs: int) -> list[tuple[float, float]]:
    """The DAGMM objective in a bare loop over the same model's networks and mixture."""
    hp, net = model.hparams, model.model
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr)
    model.train()
    seconds = []
    for _ in range(epochs):
        start = (time.perf_counter(), time.process_time())
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch_size):
            batch = x[order[i : i + batch_size]]
            z = net.compression.encoder(batch)
            x_hat = net.compression.decoder(z)
            rows = torch.cat([z, reconstruction_features(batch, x_hat)], 1)
            params = net.mixture.batch_parameters(rows, net.estimation(rows))
            loss = (
                squared_error(batch, x_hat).mean()
                + hp.lambda_energy * net.mixture.energy(rows, params).mean()
                + hp.lambda_cov * net.mixture.penalty(params)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds.append((time.perf_counter() - start[0], time.process_time() - start[1]))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/dagmm.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per round and side (first is warm-up)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = [
        "--config",
        args.config,
        "--trainer.limit_val_batches",
        "0",
        "--checkpoint.save_top_k",
        "0",
        "--checkpoint.save_last",
        "false",
        "--trainer.logger",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.max_epochs",
        str(args.epochs),
    ]
    plain, lightning = [], []
    for _ in range(args.rounds):
        cli = build_cli(base, run=False, save_config=False)
        cli.datamodule.setup("fit")
        x = cli.datamodule.train_dataloader().x
        plain += plain_epochs(cli.model, x, cli.datamodule.batch_size, args.epochs)[1:]
        cli = build_cli(base, run=False, save_config=False)
        timer = EpochTimer()
        cli.trainer.callbacks.append(timer)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        lightning += timer.seconds[1:]
    print(f"torch threads: {torch.get_num_threads()}, {len(plain)} epochs per side")
    for i, kind in enumerate(("wall", "CPU")):
        p = statistics.median(s[i] for s in plain)
        q = statistics.median(s[i] for s in lightning)
        print(f"{kind:>4} s/epoch, median: plain loop {p:.3f}, dagmm fit {q:.3f}, ratio {q / p:.3f}")


if __name__ == "__main__":
    main()
