"""Does ``torch.compile`` pay for our training step? Seconds per epoch of a bare loop over our paper
KDDCUP99 model (random rows, 175 steps of 1,024), eager, with the networks compiled, and with the whole
``DAGMMModel`` compiled; and the same for the frozen reference of ``speed.py``, whose whole step (forward,
backward and Adam as one function of the parameters, ``torch.func``) is also compiled: the least a
compiled step of this math costs here.

    python benchmarks/compile_probe.py
"""

import time

import torch
from speed import FrozenDAGMM  # this folder's script
from torch.func import functional_call, grad_and_value

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
            terms = model.training_terms(forward(batch), labels[: len(batch)], None)
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

    # the whole step as one function: parameters and Adam's moments in, updated ones out (torch.optim.Adam's
    # update written out, betas 0.9 / 0.999, eps 1e-8), so that one graph holds forward, backward and update
    loss_of = grad_and_value(lambda p, batch: functional_call(reference, p, (batch, 0.1, 0.005, 1e-6), strict=True))
    reference.forward = reference.loss

    def adam_step(p, m, v, t, batch):
        grads, loss = loss_of(p, batch)
        m = {n: 0.9 * m[n] + 0.1 * g for n, g in grads.items()}
        v = {n: 0.999 * v[n] + 0.001 * g * g for n, g in grads.items()}
        scale = 1e-4 / (1 - 0.9**t)
        p = {n: p[n] - scale * m[n] / ((v[n] / (1 - 0.999**t)).sqrt() + 1e-8) for n in p}
        return p, m, v, loss

    state = {"p": {n: w.detach().clone() for n, w in reference.named_parameters()}, "t": 0}
    state["m"] = {n: torch.zeros_like(w) for n, w in state["p"].items()}
    state["v"] = {n: torch.zeros_like(w) for n, w in state["p"].items()}
    whole_step = torch.compile(adam_step)

    def functional(batch):
        state["t"] += 1
        t = torch.tensor(float(state["t"]))
        state["p"], state["m"], state["v"], _ = whole_step(state["p"], state["m"], state["v"], t, batch)

    start = time.perf_counter()
    epoch(functional, x)
    print("frozen reference, whole step compiled: compile + first epoch", round(time.perf_counter() - start, 1), "s")
    print("frozen reference, whole step compiled", [epoch(functional, x) for _ in range(3)])
    print("frozen reference, eager, again", [epoch(frozen(reference.loss), x) for _ in range(3)])


if __name__ == "__main__":
    import sys

    from script_usage import usage_or_exit  # this folder's script

    usage_or_exit(__doc__, sys.argv[1:], 0)
    main()
