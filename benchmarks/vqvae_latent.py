"""Training-side signals of a trained model on Thyroid (no label read): how many codes the training rows
use and their perplexity, the training rows' median squared reconstruction error, the energy's median
and 99th percentile, and the span (max - min) of the latent over the training rows.

    python benchmarks/vqvae_latent.py SEED EPOCHS CONFIG [dagmm fit options ...]
    python benchmarks/vqvae_latent.py 1 20000 configs/vqvae.yaml --model.init_args.energy_trains_compression false

The model config is composed with configs/paper/thyroid.yaml (the paper's schedule unless EPOCHS says
otherwise); validation off, one thread, checkpoints in a temporary folder.
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np
import torch

from dagmm_lightning.cli import build_cli


def main(argv: list[str]) -> None:
    seed, epochs, config, extra = int(argv[0]), int(argv[1]), argv[2], argv[3:]
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        args = ["fit", "--config", config, "--config", "configs/paper/thyroid.yaml", "--seed_everything", str(seed)]
        args += ["--trainer.max_epochs", str(epochs), "--trainer.logger", "false", "--checkpoint.dirpath", folder]
        args += ["--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false"]
        cli = build_cli([*args, "--trainer.enable_model_summary", "false", *extra], save_config=False)
        model = cli.model.eval().model
        x_train, _ = cli.datamodule.arrays("train")
        with torch.no_grad():
            out = model(torch.from_numpy(np.asarray(x_train)))
    codes = out.codes.numpy() if out.codes is not None else np.zeros(len(x_train), dtype=int)
    share = np.bincount(codes) / len(codes)
    share = share[share > 0]
    perplexity = float(np.exp(-(share * np.log(share)).sum()))
    energy, z = out.energy.numpy(), out.z.numpy()
    print(
        f"seed {seed}, {epochs} epochs, {config} {' '.join(extra)}: codes used {len(share)}, perplexity "
        f"{perplexity:.1f}, training error median {np.median(out.error.numpy()):.3f}, energy median / p99 "
        f"{np.median(energy):.2f} / {np.quantile(energy, 0.99):.2f}, latent span {np.ptp(z):.3f}",
        flush=True,
    )


if __name__ == "__main__":
    from script_usage import usage_or_exit  # this folder's script

    usage_or_exit(__doc__, sys.argv[1:], 3)
    main(sys.argv[1:])
