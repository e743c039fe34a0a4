"""Dense stacks shared by every network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import nn

from dagmm_lightning.errors import ConfigurationError, DataError, check_choice


class Tanh(nn.Tanh):
    """``nn.Tanh``, but inside ``torch.compile`` computed as 2 sigmoid(2x) - 1 (within 3e-7 of tanh): inductor's
    tanh is a slow vector routine, its sigmoid an exponential; ~0.3 ms (7-9 %) of a compiled training step of
    the paper's KDDCUP99 model. Eager runs are ``nn.Tanh`` itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():
            return super().forward(x)
        return 2.0 * torch.sigmoid(2.0 * x) - 1.0


Activation = Literal["tanh", "relu", "leaky_relu", "elu", "gelu", "sigmoid"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


class MemberLinear(nn.Module):
    """``members`` independent dense layers in one batched matrix product: x (M, N, n_in) -> (M, N, n_out);
    an input shared by every member, x (N, n_in), takes one matrix product with all members' weights.

    Each member's weight and bias start as ``nn.Linear``'s do: uniform in +-1 / sqrt(n_in).
    """

    def __init__(self, members: int, n_in: int, n_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(members, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, n_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            return torch.baddbmm(self.bias, x, self.weight)
        members, n_in, n_out = self.weight.shape
        shared = x @ self.weight.transpose(0, 1).reshape(n_in, members * n_out)  # (N, M * n_out)
        return shared.view(len(x), members, n_out).transpose(0, 1) + self.bias

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[2]

    def extra_repr(self) -> str:
        members, n_in, n_out = self.weight.shape
        return f"members={members}, n_in={n_in}, n_out={n_out}"


class Dropout(nn.Dropout):
    """``nn.Dropout``, but inside ``torch.compile`` its mask is uniform draws compared with p: the compiled
    step draws them with torch's generator (``fallback_random``) in ~0.1 ms a step of the paper's KDDCUP99
    model, where ``nn.Dropout``'s ``aten.bernoulli_`` took ~0.2 ms. Eager runs draw exactly as ``nn.Dropout``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and 0 < self.p < 1 and torch.compiler.is_compiling()):
            return super().forward(x)
        return x * (torch.rand_like(x) >= self.p) / (1 - self.p)


def _fused_linear():
    """oneDNN's fused dense layer + activation (the kernel inductor's CPU freezing pass emits), or None
    where this torch build lacks it."""
    try:
        return torch.ops.mkldnn._linear_pointwise if torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):
        return None


FUSED_LINEAR = _fused_linear()
FUSED_ACTIVATIONS = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid"}  # oneDNN post-ops; tanh is folded (below)


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.device == b.device and torch.equal(a, b)


class InferenceStep(NamedTuple):
    """One fused layer of an inference plan: y = post(x W^T + b), then, if ``affine``, y -> 2 y - 1."""

    weight: torch.Tensor
    bias: torch.Tensor
    post: str
    affine: bool


class MLP(nn.Sequential):
    """A dense stack (``mlp``). In inference (eval mode, no autograd, float32 on the CPU, outside
    ``torch.compile`` and autocast, no hooks) it runs as oneDNN fused dense + activation kernels with
    tanh(a) computed as 2 sigmoid(2a) - 1, the factors folded into the weights (2x faster than the eager
    stack on the paper's KDDCUP99 networks, whose time goes to tanh; equal to it within float32 rounding); an
    ensemble's ``MemberLinear`` stack as one such plan per member. The folded weights are rebuilt whenever a
    weight differs from those they were folded from. Other activations, other dtypes and training run
    eagerly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = getattr(self[0], "in_features", None) if len(self) else None
        if width is not None and (x.ndim < 2 or x.shape[-1] != width):  # (fused, oneDNN said only 'primitive')
            shape = f"(N, {width})" + (f" or (members, N, {width})" if isinstance(self[0], MemberLinear) else "")
            raise DataError(f"the network takes rows of {width} features, {shape}; got x of shape {tuple(x.shape)}")
        if not self._fusable(x) or (plans := self._inference_plans()) is None:
            return super().forward(x)
        if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[0] != len(plans)):
            return super().forward(x)
        if not isinstance(self[0], MemberLinear):
            return self._run(plans[0], x) if x.ndim == 2 else super().forward(x)
        inputs = x.unbind(0) if x.ndim == 3 else [x] * len(plans)  # (M, N, F), or (N, F) shared by every member
        return torch.stack([self._run(plan, rows) for plan, rows in zip(plans, inputs, strict=True)])

    def _fusable(self, x: torch.Tensor) -> bool:
        if FUSED_LINEAR is None or torch.is_grad_enabled() or x.dtype != torch.float32 or x.device.type != "cpu":
            return False
        if torch.compiler.is_compiling() or _cpu_autocast():
            return False
        return not any(m.training or m._forward_hooks or m._forward_pre_hooks for m in (self, *self))

    @staticmethod
    def _run(plan: list[InferenceStep], x: torch.Tensor) -> torch.Tensor:
        for step in plan:
            x = FUSED_LINEAR(x, step.weight, step.bias, step.post, [], "")
            if step.affine:
                x = x.mul_(2.0).sub_(1.0)
        return x

    def _inference_plans(self) -> list[list[InferenceStep]] | None:
        """The plans of the current weights, folded again whenever a weight differs from those they were
        folded from (compared by value: the compiled training step writes the weights through a flat buffer,
        which leaves the parameters' version counters as they were)."""
        weights = [p.detach() for p in self.parameters()]
        source = self.__dict__.get("_plan_source")
        same = source is not None and len(source) == len(weights)
        if not (same and all(_same_tensor(a, b) for a, b in zip(source, weights, strict=True))):
            self._plans, self._plan_source = self._fold(), [w.clone() for w in weights]
        return self._plans

    def _fold(self) -> list[list[InferenceStep]] | None:
        """The stack as fused steps, one list per member (float64 folding, then float32), or None if it
        holds a module the plan does not cover."""
        if any(p.dtype != torch.float32 for p in self.parameters()):
            return None
        steps: list[list] = []  # [weight (M, out, in), bias (M, out), post, affine] in float64
        dense = MemberLinear if isinstance(self[0], MemberLinear) else nn.Linear  # one kind per stack
        for module in self:
            if isinstance(module, dense):
                if isinstance(module, MemberLinear):
                    weight, bias = module.weight.double().transpose(1, 2), module.bias.double()[:, 0]
                else:
                    weight = module.weight.double().unsqueeze(0)
                    bias = (
                        module.bias.double().unsqueeze(0)
                        if module.bias is not None
                        else weight.new_zeros(1, len(weight[0]))
                    )
                if steps and steps[-1][3]:  # the input is s with activation 2 s - 1: W (2 s - 1) + b
                    bias, weight, steps[-1][3] = bias - weight.sum(-1), 2.0 * weight, False
                steps.append([weight, bias, "none", False])
            elif isinstance(module, (nn.Dropout, nn.Identity)):
                continue
            elif not steps or steps[-1][2] != "none" or steps[-1][3]:
                return None
            elif isinstance(module, nn.Tanh):  # tanh(a) = 2 sigmoid(2 a) - 1
                steps[-1][0:4] = [2.0 * steps[-1][0], 2.0 * steps[-1][1], "sigmoid", True]
            elif type(module) in FUSED_ACTIVATIONS:
                steps[-1][2] = FUSED_ACTIVATIONS[type(module)]
            else:
                return None
        if not steps:
            return None
        f32 = torch.float32
        return [
            [InferenceStep(w[m].to(f32).contiguous(), b[m].to(f32), post, a) for w, b, post, a in steps]
            for m in range(len(steps[0][0]))
        ]

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_plans", None), state.pop("_plan_source", None)
        return state


def mlp(sizes: Sequence[int], activation: Activation, dropout: float = 0.0, members: int = 1) -> MLP:
    """Dense layers ``sizes[0] -> ... -> sizes[-1]``; activation (and dropout) between layers, none after
    the last one. ``members`` > 1: that many independent stacks at once (``MemberLinear``), on inputs
    (members, N, sizes[0])."""
    check_choice("activation", activation, Activation)
    if any(int(s) < 1 for s in sizes):
        raise ConfigurationError(f"layer sizes must be positive, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(
            nn.Linear(int(n_in), int(n_out)) if members == 1 else MemberLinear(members, int(n_in), int(n_out))
        )
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(Dropout(dropout))
    return MLP(*layers)
