"""Speed benchmark: seconds per training epoch of `dagmm fit` against plain PyTorch loops of the same
math, interleaved epoch by epoch in one process.

    python benchmarks/speed.py --config configs/dagmm.yaml --rounds 3 --epochs 3
    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmarks/speed.py --rounds 4 --epochs 6 --compile --steps-per-call 8

``--compile`` adds ``dagmm fit --model.init_args.compile true`` (its first epoch, compile included, is
reported apart; an empty inductor cache folder makes that compile cold), with ``--steps-per-call`` its
``steps_per_call``.

Two plain loops: ``ours``, a bare loop over our model's own networks and mixture (what Lightning adds),
and ``frozen``, the reference: the paper's KDDCUP99 DAGMM written out below in straightforward eager
PyTorch (float32 throughout, one Cholesky per batch for all components), calling nothing of ours, so
that speed work on the package cannot move it. Same rows, same whole-batch indexing, same batch size
and learning rate. After every epoch of a `dagmm fit`, one epoch of each plain loop runs (outside the
fit's timing), so that every side sees the machine in the same state: on a shared machine whose speed
drifts by tens of percent over minutes, blocks of epochs run one after the other moved the ratios by
+-0.1. Validation and checkpointing are off; the Lightning side keeps its defaults otherwise (progress
bar, logging every 50 steps). The first epoch of each side in a round is a warm-up and not counted.
Wall time and the process's CPU time are both reported; the ratio of a fit to the reference is also
given as the median of the ratios of each fit epoch to the reference epoch right after it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import lightning as L
import torch
from torch import nn

from dagmm_lightning.cli import build_cli
from dagmm_lightning.networks import reconstruction_features


class FrozenDAGMM(nn.Module):
    """The paper's KDDCUP99 DAGMM, plainly: encoder F-60-30-10-1 (tanh), mirrored decoder, mixture rows
    [z, relative Euclidean distance, cosine], estimation 3-10 (tanh, dropout 0.5)-K softmax."""

    def __init__(self, n_features: int, hidden=(60, 30, 10), latent=1, n_components=4) -> None:
        super().__init__()
        dims = [n_features, *hidden, latent]

        def stack(sizes):
            layers = []
            for a, b in zip(sizes[:-1], sizes[1:], strict=True):
                layers += [nn.Linear(a, b), nn.Tanh()]
            return nn.Sequential(*layers[:-1])

        self.encoder, self.decoder = stack(dims), stack(dims[::-1])
        self.estimation = nn.Sequential(
            nn.Linear(latent + 2, 10), nn.Tanh(), nn.Dropout(0.5), nn.Linear(10, n_components), nn.Softmax(dim=1)
        )

    def loss(self, x: torch.Tensor, lambda_energy: float, lambda_cov: float, jitter: float) -> torch.Tensor:
        z_c = self.encoder(x)
        x_hat = self.decoder(z_c)
        relative = (x - x_hat).norm(dim=1) / x.norm(dim=1).clamp_min(1e-3)
        cosine = nn.functional.cosine_similarity(x, x_hat, dim=1)
        z = torch.cat([z_c, relative[:, None], cosine[:, None]], dim=1)
        gamma = self.estimation(z)
        n_k = gamma.sum(0)
        phi, mu = n_k / len(x), gamma.T @ z / n_k[:, None]
        diff = z[:, None, :] - mu[None]  # (N, K, D)
        cov = torch.einsum("nk,nki,nkj->kij", gamma, diff, diff) / n_k[:, None, None]
        cov = cov + jitter * torch.eye(z.shape[1])
        tril = torch.linalg.cholesky(cov)
        solved = torch.linalg.solve_triangular(tril, diff.permute(1, 2, 0), upper=False)  # (K, D, N)
        log_det = 2 * tril.diagonal(dim1=1, dim2=2).log().sum(1)
        log_p = phi.log() - 0.5 * (solved.pow(2).sum(1).T + log_det + z.shape[1] * math.log(2 * math.pi))
        energy = -torch.logsumexp(log_p, dim=1)
        penalty = (1 / cov.diagonal(dim1=1, dim2=2)).sum()
        return (x - x_hat).pow(2).sum(1).mean() + lambda_energy * energy.mean() + lambda_cov * penalty


def timed(epoch) -> tuple[float, float]:
    start = (time.perf_counter(), time.process_time())
    epoch()
    return time.perf_counter() - start[0], time.process_time() - start[1]


class FrozenLoop:
    """The frozen reference: ``FrozenDAGMM`` with Adam at the config's rate, the same batches."""

    def __init__(self, model, x: torch.Tensor, batch_size: int) -> None:
        hp = self.hp = model.hparams
        self.reference = FrozenDAGMM(x.shape[1], tuple(hp.hidden_dims), hp.latent_dim, hp.n_components)
        self.optimizer = torch.optim.Adam(self.reference.parameters(), lr=hp.lr)
        self.x, self.batch_size = x, batch_size

    def epoch(self) -> None:
        hp, x, optimizer = self.hp, self.x, self.optimizer
        order = torch.randperm(len(x))
        for i in range(0, len(x), self.batch_size):
            loss = self.reference.loss(x[order[i : i + self.batch_size]], hp.lambda_energy, hp.lambda_cov, hp.jitter)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


class BareLoop:
    """The DAGMM objective in a bare loop over our model's networks and mixture."""

    def __init__(self, model, x: torch.Tensor, batch_size: int) -> None:
        self.model, self.x, self.batch_size = model, x, batch_size
        self.optimizer = torch.optim.Adam(model.parameters(), lr=model.hparams.lr)
        model.train()

    def epoch(self) -> None:
        hp, net, x, optimizer = self.model.hparams, self.model.model, self.x, self.optimizer
        order = torch.randperm(len(x))
        for i in range(0, len(x), self.batch_size):
            batch = x[order[i : i + self.batch_size]]
            z = net.compression.encoder(batch)
            x_hat = net.compression.decoder(z)
            features, error = reconstruction_features(batch, x_hat)
            rows = torch.cat([z, features], 1)
            params = net.mixture.batch_parameters(rows, net.estimation(rows))
            loss = (
                error.mean()
                + hp.lambda_energy * net.mixture.energy(rows, params).mean()
                + hp.lambda_cov * net.mixture.penalty(params)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


class EpochTimer(L.Callback):
    """Times every training epoch of a fit; after each one (outside its time) runs ``between``."""

    def __init__(self, between=lambda: None) -> None:
        self.seconds: list[tuple[float, float]] = []
        self.between = between

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append((time.perf_counter() - self._start[0], time.process_time() - self._start[1]))
        self.between()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/dagmm.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per round and side (first is warm-up)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--compile", action="store_true", help="also `dagmm fit` with --model.init_args.compile true")
    parser.add_argument("--steps-per-call", type=int, default=1, help="the compiled side's steps_per_call")
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
    frozen, plain, lightning, compiled, first_compiled, pairs = [], [], [], [], [], {"fit": [], "compiled": []}
    for _ in range(args.rounds):
        cli = build_cli(base, run=False, save_config=False)
        cli.datamodule.setup("fit")
        x, batch_size = cli.datamodule.train_dataloader().x, cli.datamodule.batch_size
        reference = FrozenLoop(cli.model, x, batch_size)
        bare = BareLoop(build_cli(base, run=False, save_config=False).model, x, batch_size)
        compiled_argv = [
            *base,
            "--model.init_args.compile",
            "true",
            "--model.init_args.steps_per_call",
            str(args.steps_per_call),
        ]
        sides = [("fit", base)] + [("compiled", compiled_argv)] * args.compile
        for side, argv in sides:  # later rounds reuse the first round's compiled code (the on-disk caches)
            cli = build_cli(argv, run=False, save_config=False)
            after, bare_after = [], []  # the epochs of the plain loops that ran after each fit epoch

            def between(side=side, after=after, bare_after=bare_after, reference=reference, bare=bare):
                after.append(timed(reference.epoch))
                if side == "fit":
                    bare_after.append(timed(bare.epoch))

            timer = EpochTimer(between)
            cli.trainer.callbacks.append(timer)
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
            frozen += after[1:]
            plain += bare_after[1:]
            (lightning if side == "fit" else compiled).extend(timer.seconds[1:])
            pairs[side] += [a[0] / b[0] for a, b in zip(timer.seconds[1:], after[1:], strict=True)]
            if side == "compiled":
                first_compiled.append(timer.seconds[0][0])
    print(f"torch threads: {torch.get_num_threads()}, {len(frozen)} reference epochs, {len(lightning)} per fit side")
    for i, kind in enumerate(("wall", "CPU")):
        f, p, q = (statistics.median(s[i] for s in side) for side in (frozen, plain, lightning))
        print(
            f"{kind:>4} s/epoch, median: frozen reference {f:.3f}, our networks in a bare loop {p:.3f}, "
            f"dagmm fit {q:.3f}; dagmm fit / frozen {q / f:.3f}, dagmm fit / bare loop {q / p:.3f}"
        )
        if compiled:
            c = statistics.median(s[i] for s in compiled)
            print(f"{kind:>4} s/epoch, median: dagmm fit compiled {c:.3f}; compiled / frozen {c / f:.3f}")
    for side, ratios in pairs.items():
        if ratios:
            print(
                f"{side}: median of (epoch / the reference epoch right after it) {statistics.median(ratios):.3f}, "
                f"range {min(ratios):.3f}-{max(ratios):.3f} over {len(ratios)} pairs"
            )
    if compiled:
        q, c = (statistics.median(s[0] for s in side) for side in (lightning, compiled))
        first = first_compiled[0]  # TORCHINDUCTOR_CACHE_DIR=<empty folder> for a cold compile
        print(
            f"compiled first epochs, compile included: {', '.join(f'{t:.1f}' for t in first_compiled)} s wall; "
            f"the first round's {first - c:.1f} s of compiling paid back after {(first - c) / max(q - c, 1e-9):.0f} "
            "epochs"
        )


if __name__ == "__main__":
    main()
