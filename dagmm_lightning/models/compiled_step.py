"""One training step (forward, backward and Adam's update) as one ``torch.compile`` graph: ``DAGMM(compile=True)``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad_and_value


class CompiledAdamStep:
    """Forward, backward and ``torch.optim.Adam``'s update of ``model``'s parameters, compiled together.

    The gradients never leave the graph and Adam's update is fused into it, so a step costs one call
    instead of dozens of small kernels and their Python dispatch. The update writes into the parameters
    and into ``optimizer``'s own state (``step``, ``exp_avg``, ``exp_avg_sq``, created as Adam creates
    them), so checkpoints, resumed runs and an eager step taken in between see one optimizer. It is
    applied only where the loss is finite: a step with a NaN loss (a failed Cholesky factor inside the
    graph) changes nothing and returns the NaN, for the caller to take the step eagerly.

    The graph is compiled for one batch size, the first one it sees (a shorter last batch would cost a
    second compile): ``accepts`` tells whether a batch has it.

    Args:
        model: the plain torch model whose parameters train (all of them, in one Adam param group).
        objective: (x, y) -> dict of weighted loss terms (scalars) through ``model``; their sum is minimised.
        optimizer: a ``torch.optim.Adam`` without weight decay, amsgrad or maximize over those parameters.
    """

    def __init__(self, model: nn.Module, objective: Callable, optimizer: torch.optim.Adam) -> None:
        group = optimizer.param_groups[0]
        self.names, self.params = zip(*((n, p) for n, p in model.named_parameters() if p.requires_grad), strict=True)
        if len(optimizer.param_groups) != 1 or {id(p) for p in group["params"]} != set(map(id, self.params)):
            raise ValueError("the optimizer must hold exactly the model's trainable parameters, in one group")
        if group["weight_decay"] or group["amsgrad"] or group["maximize"]:
            raise ValueError("the compiled step is plain Adam: no weight_decay, amsgrad or maximize")
        self.model, self.optimizer = model, optimizer
        self.objective = _Objective(model, objective)  # the weights swapped in for every call to model inside
        # The C++ wrapper calls the kernels without Python (~10 % of a step). Dynamo's guards stay whole: the
        # compiled code is cached per function, so a second model in the process must fail them to get its
        # own graph (skipping the module guards saved ~0.3 ms a call but reused the first model's constants).
        self._compiled = torch.compile(self._step, dynamic=False, options={"cpp_wrapper": True})
        self.batch_rows: int | None = None

    def accepts(self, x: torch.Tensor) -> bool:
        """Whether the compiled graph takes the batch x (N, F): the batch size it was compiled for."""
        return self.batch_rows in (None, len(x))

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step on the batch x (N, F), y (N,): the float64 loss and its terms, before the update."""
        self.batch_rows = len(x)
        group, state = self.optimizer.param_groups[0], self.optimizer.state
        for p in self.params:
            if not state[p]:  # as Adam's first step makes them (its step counter a float32 tensor)
                state[p].update(
                    step=torch.zeros((), dtype=torch.float32, device=p.device),
                    exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                    exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format),
                )
        moments = [[state[p][key] for p in self.params] for key in ("step", "exp_avg", "exp_avg_sq")]
        lr = torch.tensor(float(group["lr"]), dtype=torch.float64)  # a tensor: a schedule does not recompile
        beta1, beta2 = group["betas"]
        self.optimizer._opt_called = True  # what torch's LR schedulers check: this update is the optimizer's step
        return self._compiled([p.detach() for p in self.params], *moments, lr, beta1, beta2, group["eps"], x, y)

    def _step(self, params, steps, exp_avgs, exp_avg_sqs, lr, beta1: float, beta2: float, eps: float, x, y):
        def loss_of(weights):
            named = {f"model.{name}": w for name, w in zip(self.names, weights, strict=True)}
            terms = functional_call(self.objective, named, (x, y))
            return torch.stack([t.to(torch.float64) for t in terms.values()]).sum(), terms

        grads, (loss, terms) = grad_and_value(loss_of, has_aux=True)(list(params))
        finite = torch.isfinite(loss)
        for p, g, step, m, v in zip(params, grads, steps, exp_avgs, exp_avg_sqs, strict=True):
            new_step = step + 1
            new_m = torch.lerp(m, g, 1 - beta1)
            new_v = v * beta2 + (1 - beta2) * g * g
            size = (lr / (1 - beta1**new_step)).to(p.dtype)
            denom = (new_v.sqrt() / (1 - beta2**new_step).sqrt().to(p.dtype)) + eps
            step.copy_(torch.where(finite, new_step, step))
            m.copy_(torch.where(finite, new_m, m))
            v.copy_(torch.where(finite, new_v, v))
            p.copy_(torch.where(finite, p - size * new_m / denom, p))
        return loss, terms


class _Objective(nn.Module):
    """``objective`` as a module that holds ``model``, so that ``functional_call`` swaps the weights for all of it."""

    def __init__(self, model: nn.Module, objective: Callable) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.objective(x, y)
