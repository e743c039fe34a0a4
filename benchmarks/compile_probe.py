"""Does ``torch.compile`` pay for our training step? Seconds per epoch of a bare loop over our paper
KDDCUP99 model (random rows, 175 steps of 1,024), eager, with the networks compiled, and with the whole
``DAGMMModel`` compiled; and the same for the frozen reference of ``speed.py``.

    python benchmarks/compile_probe.py
"""

import time

import torch
from speed import FrozenDAGMM  # this folder's script

from dagmm_lightning.models import DAGMM


def epoch(step, x: torch.Tensor) -> float:
    start = time.perf_counter()
    for i in range(0, len(x), 1024):
        step(x[i : i + 1024])
    return round(time.perf_counter() - start, 3)


def main() -> None:
    torch.manual_seed(0)
    x = torch.rand(179_200, 118)
    model = DAGMM(118, (60, 30, 10), 1, n_components=4, lambda_cov=0.005, lr=1e-4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    labels = torch.zeros(1024, dtype=torch.long)

    def ours(forward):
        def step(batch):
            terms = model.training_terms(forward(batch), labels[: len(batch)])
            loss = torch.stack([t.double() for t in terms.values()]).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        return step

    net = model.model
    print("ours, eager", [epoch(ours(net), x) for _ in range(3)])
    net.compression, net.estimation = torch.compile(net.compression), torch.compile(net.estimation)
    start = time.perf_counter()
    epoch(ours(net), x)
    print("ours, networks compiled: compile + first epoch", round(time.perf_counter() - start, 1), "s")
    print("ours, networks compiled", [epoch(ours(net), x) for _ in range(3)])
    whole = torch.compile(net)
    start = time.perf_counter()
    epoch(ours(whole), x)
    print("ours, whole model compiled: compile + first epoch", round(time.perf_counter() - start, 1), "s")
    print("ours, whole model compiled", [epoch(ours(whole), x) for _ in range(3)])

    reference = FrozenDAGMM(118)
    reference_optimizer = torch.optim.Adam(reference.parameters(), lr=1e-4)

    def frozen(loss_fn):
        def step(batch):
            loss = loss_fn(batch, 0.1, 0.005, 1e-6)
            reference_optimizer.zero_grad()
            loss.backward()
            reference_optimizer.step()

        return step

    print("frozen reference, eager", [epoch(frozen(reference.loss), x) for _ in range(3)])
    compiled = torch.compile(reference.loss)
    start = time.perf_counter()
    epoch(frozen(compiled), x)
    print("frozen reference compiled: compile + first epoch", round(time.perf_counter() - start, 1), "s")
    print("frozen reference compiled", [epoch(frozen(compiled), x) for _ in range(3)])


if __name__ == "__main__":
    main()
