"""One training step (forward, backward and Adam's update) as one ``torch.compile`` graph: ``DAGMM(compile=True)``."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad_and_value

from dagmm_lightning.losses import summed_terms

MOMENTS = ("exp_avg", "exp_avg_sq")
STATE = ("step", *MOMENTS)  # torch.optim.Adam's state of a parameter


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

    Dynamo's guards (~0.7 ms a call, a tenth of a step) are checked at the first call, after
    ``check_guards()``, and wherever a snapshot of the usual suspects among the values the graph bakes
    in differs from the last checked call: Adam's betas and eps, the batch's shapes and dtypes, every
    module's training flag, grad mode and ``settings()``. Otherwise the cached graph runs with
    ``skip_guard_eval_unsafe``: any other Python value changed in place (a module attribute such as a
    mixture's ``jitter``) reaches the graph only at the next ``check_guards()``. The graph has a dynamo
    cache of its own (``isolate_recompiles``), so another model's step never runs this one's graph.
    (On a torch without ``isolate_recompiles`` every call checks the guards.)

    Args:
        model: the plain torch model whose parameters train (all of them, in one Adam param group).
        objective: (x, y) -> dict of weighted loss terms (scalars) through ``model``; their sum is minimised.
        optimizer: a ``torch.optim.Adam`` without weight decay, amsgrad or maximize over those parameters.
        settings: () -> a comparable snapshot of the other Python values ``objective`` reads (its
            hyperparameters); a change makes the next call check the guards (and recompile).
    """

    def __init__(
        self,
        model: nn.Module,
        objective: Callable,
        optimizer: torch.optim.Adam,
        settings: Callable[[], object] = lambda: None,
    ) -> None:
        problem = plain_adam_problem(optimizer, model)
        if problem is not None:
            raise ValueError(problem)
        self.names, self.params = zip(*((n, p) for n, p in model.named_parameters() if p.requires_grad), strict=True)
        self.model, self.optimizer, self.settings = model, optimizer, settings
        self.objective = _Objective(model, objective)  # the weights swapped in for every call to model inside
        # The C++ wrapper calls the kernels without Python (~10 % of a step). Without isolate_recompiles the
        # compiled code is cached per function, shared by every instance: a second model's step would find
        # the first one's graph (and its constants) among the entries that skipped guards leave unchecked.
        options = {"cpp_wrapper": True, "fallback_random": True}  # random draws by torch's generator
        try:
            self._compiled = torch.compile(self._step, dynamic=False, options=options, isolate_recompiles=True)
            self._skips_guards = True
        except TypeError:  # a torch before isolate_recompiles: its cache is shared, so the guards must run
            self._compiled = torch.compile(self._step, dynamic=False, options=options)
            self._skips_guards = False
        self._checked_snapshot: object = None  # the snapshot at the last call whose guards dynamo checked
        self._all_modules = list(model.modules())  # (model.modules() itself takes ~40 us a call)
        self.batch_rows: int | None = None
        if len({(p.dtype, p.device) for p in self.params}) != 1:
            raise ValueError("the compiled step needs every parameter in one dtype and on one device")
        self.sizes, self.shapes = [p.numel() for p in self.params], [p.shape for p in self.params]
        owner = torch.repeat_interleave(torch.arange(len(self.sizes)), torch.tensor(self.sizes))
        self._owner = owner.to(self.params[0].device)  # the parameter of every flat weight, for its step count
        self._flat: list[torch.Tensor] | None = None
        self._pointers: list[int] = []
        self._lr: tuple[float, torch.Tensor | None] = (math.nan, None)  # the learning rate and its tensor

    def check_guards(self) -> None:
        """Make the next call check dynamo's guards (for instance at every epoch's start)."""
        self._checked_snapshot = None

    def accepts(self, x: torch.Tensor) -> bool:
        """Whether the compiled graph takes the batch x (N, F): the batch size it was compiled for."""
        return self.batch_rows in (None, len(x))

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step on the batch x (N, F), y (N,): the float64 loss and its terms, before the update."""
        self.batch_rows = len(x)
        group = self.optimizer.param_groups[0]
        if self._lr[0] != float(group["lr"]):  # a tensor: a schedule does not recompile; made when lr changes
            self._lr = (float(group["lr"]), torch.tensor(float(group["lr"]), dtype=torch.float64))
        lr = self._lr[1]
        beta1, beta2 = group["betas"]
        self.optimizer._opt_called = True  # what torch's LR schedulers check: this update is the optimizer's step
        args = (*self._flat_buffers(), lr, beta1, beta2, group["eps"], x, y)
        snapshot = (
            (beta1, beta2, group["eps"], torch.is_grad_enabled()),
            [(t.shape, t.dtype, t.device) for t in (x, y)],
            [m.training for m in self._all_modules],
            self.settings(),
        )
        if snapshot != self._checked_snapshot or not self._skips_guards:
            result = self._compiled(*args)
            self._checked_snapshot = snapshot
            return result
        with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
            return self._compiled(*args)

    def _flat_buffers(self) -> list[torch.Tensor]:
        """The weights (W,), Adam's step counts (n,) and moments (W,) (W,) as one tensor each, the parameters
        and the optimizer's state views into them: four graph inputs instead of 4 n (dynamo checks every
        input at every call, and writes back every mutated one). Made again where something replaced a
        view (a loaded checkpoint)."""
        state = self.optimizer.state
        if self._flat is not None and self._pointers == self._state_pointers():
            return self._flat
        for p in self.params:
            if not state[p]:  # as Adam's first step makes them (its step counter a float32 tensor)
                state[p].update(
                    step=torch.zeros((), dtype=torch.float32, device=p.device),
                    exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                    exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format),
                )
        weights = torch.cat([p.detach().reshape(-1) for p in self.params])
        steps = torch.stack([state[p]["step"].to(torch.float32) for p in self.params])
        exp_avg, exp_avg_sq = (torch.cat([state[p][k].reshape(-1) for p in self.params]) for k in MOMENTS)
        chunks = [flat.split(self.sizes) for flat in (weights, exp_avg, exp_avg_sq)]
        for i, p in enumerate(self.params):
            p.data = chunks[0][i].view_as(p)
            state[p].update(step=steps[i], exp_avg=chunks[1][i].view_as(p), exp_avg_sq=chunks[2][i].view_as(p))
        self._flat = [weights, steps, exp_avg, exp_avg_sq]
        self._pointers = self._state_pointers()
        return self._flat

    def _state_pointers(self) -> list[int]:
        """Where the parameters and their Adam state live now (0 where the state is not made yet)."""
        state = self.optimizer.state
        return [t.data_ptr() if t is not None else 0 for p in self.params for t in (p, *map(state[p].get, STATE))]

    def _step(self, weights, steps, exp_avg, exp_avg_sq, lr, beta1: float, beta2: float, eps: float, x, y):
        def loss_of(flat):
            parts = [w.view(shape) for w, shape in zip(flat.split(self.sizes), self.shapes, strict=True)]
            named = {f"model.{name}": w for name, w in zip(self.names, parts, strict=True)}
            terms = functional_call(self.objective, named, (x, y))
            return summed_terms(terms), terms

        grad, (loss, terms) = grad_and_value(loss_of, has_aux=True)(weights)
        finite = torch.isfinite(loss)
        new_steps = steps + 1
        # Adam's bias corrections 1 - beta ** t as -expm1(t log beta): inductor computes them per weight (W,),
        # where a vector pow took ~0.1 ms a step; expm1 also keeps the digits that 1 - 0.999... loses
        log1, log2 = (math.log(b) if b > 0 else -math.inf for b in (beta1, beta2))
        correction1 = -torch.expm1(new_steps * log1)[self._owner]
        root_correction2 = (-torch.expm1(new_steps * log2)).sqrt()[self._owner]
        new_m = torch.lerp(exp_avg, grad, 1 - beta1)
        new_v = exp_avg_sq * beta2 + (1 - beta2) * grad * grad
        size = (lr / correction1).to(weights.dtype)
        denom = new_v.sqrt() / root_correction2.to(weights.dtype) + eps
        steps.copy_(torch.where(finite, new_steps, steps))
        exp_avg.copy_(torch.where(finite, new_m, exp_avg))
        exp_avg_sq.copy_(torch.where(finite, new_v, exp_avg_sq))
        weights.copy_(torch.where(finite, weights - size * new_m / denom, weights))
        return loss, terms


class _Objective(nn.Module):
    """``objective`` as a module that holds ``model``, so that ``functional_call`` swaps the weights for all of it."""

    def __init__(self, model: nn.Module, objective: Callable) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.objective(x, y)


def plain_adam_problem(optimizer: torch.optim.Optimizer, model: nn.Module) -> str | None:
    """Why ``optimizer`` cannot be the compiled step's (a plain ``torch.optim.Adam`` over exactly the
    trainable parameters of ``model``, in one group), or None."""
    if type(optimizer) is not torch.optim.Adam:
        return f"the compiled step is plain Adam, not {type(optimizer).__name__}"
    params = {id(p) for p in model.parameters() if p.requires_grad}
    group = optimizer.param_groups[0]
    if len(optimizer.param_groups) != 1 or {id(p) for p in group["params"]} != params:
        return "the optimizer must hold exactly the model's trainable parameters, in one group"
    if group["weight_decay"] or group["amsgrad"] or group["maximize"]:
        return "the compiled step is plain Adam: no weight_decay, amsgrad or maximize"
    return None
