"""Adam as PyTorch 0.4.1 computed it: ε added to √v before the bias correction.

The original Non-Syn code ran on PyTorch 0.4.1, whose Adam step is, per
parameter at step ``t`` (``m``, ``v`` the running moments)::

    m ← β1·m + (1 − β1)·g
    v ← β2·v + (1 − β2)·g²
    p ← p − lr · √(1 − β2^t) / (1 − β1^t) · m / (√v + ε)

Modern PyTorch divides by ``√v / √(1 − β2^t) + ε`` instead, that is
``p ← p − lr · m̂ / (√v̂ + ε)`` with the bias-corrected moments ``m̂``, ``v̂``.
The two agree except for where ε sits: in the 0.4.1 form it acts as
``ε / √(1 − β2^t)`` on the corrected scale, about 31.6·ε at the first step
(β2 = 0.999), falling to ε as ``t`` grows. TensorFlow 1's
``tf.train.AdamOptimizer`` (disentanglement_lib's optimiser) uses the same
form as 0.4.1 (its documented "epsilon hat").

Like 0.4.1, a parameter whose ``.grad`` is ``None`` is skipped (no moment
decay, no step count); a zero-filled gradient is a step like any other
(the momentum-only move of the original's synergy step). No weight decay,
no AMSGrad: the original used neither.
"""

from __future__ import annotations

import math

import torch

__all__ = ["Adam04"]


class Adam04(torch.optim.Optimizer):
    """Adam with PyTorch 0.4.1's ε placement (``optim.eps_placement = "pytorch0.4"``).

    State per parameter: ``step`` (an int), ``exp_avg`` and ``exp_avg_sq``,
    the names of ``torch.optim.Adam``'s state.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            # Parameters at the same step count share one step size: update them together.
            by_step: dict[int, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Adam04 does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                by_step.setdefault(state["step"], []).append(p)
            for t, params in by_step.items():
                grads = [p.grad for p in params]
                exp_avg = [self.state[p]["exp_avg"] for p in params]
                exp_avg_sq = [self.state[p]["exp_avg_sq"] for p in params]
                torch._foreach_mul_(exp_avg, beta1)
                torch._foreach_add_(exp_avg, grads, alpha=1 - beta1)
                torch._foreach_mul_(exp_avg_sq, beta2)
                torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
                denom = torch._foreach_sqrt(exp_avg_sq)
                torch._foreach_add_(denom, group["eps"])
                step_size = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                torch._foreach_addcdiv_(params, exp_avg, denom, value=-step_size)
        return loss
