"""β-VAE (Higgins et al. 2017) and its capacity-annealed form (Burgess et al. 2018).

- Higgins: ``recon + β · KL``.
- Burgess (``capacity=True``): ``recon + γ · |KL − C(t)|`` with the target
  capacity ``C`` raised linearly from ``c_start`` to ``c_max`` nats over
  ``c_steps`` iterations and held after (the paper's dSprites setting:
  γ = 1000, C from 0 to 25 nats over 100,000 iterations).
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Objective, check_ranges


@dataclass(frozen=True)
class BetaVAEConfig:
    beta: float = 4.0
    capacity: bool = False
    gamma: float = 1000.0
    c_start: float = 0.0
    c_max: float = 25.0
    c_steps: int = 100_000

    def __post_init__(self):
        check_ranges(
            self, beta="nonnegative", gamma="nonnegative", c_start="nonnegative", c_max="nonnegative", c_steps="count"
        )


def capacity_at(config: BetaVAEConfig, iteration: int) -> float:
    """Burgess et al.'s target KL at ``iteration`` (linear ramp, then constant)."""
    frac = min(1.0, iteration / config.c_steps)
    return config.c_start + (config.c_max - config.c_start) * frac


class BetaVAEObjective(Objective):
    name = "beta_vae"

    def train_step(self, x, x2=None, generator=None):
        out = self.forward(x, generator)
        recon, kl_el, kl = out.recon, out.kl_el, out.kl
        logs = {}
        if self.config.capacity:
            c = capacity_at(self.config, self.iteration)
            loss = recon + self.config.gamma * (kl - c).abs()
            logs["capacity"] = c
        else:
            loss = recon + self.config.beta * kl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        return self.step_logs({**self.core_logs(recon, kl_el), **logs, "loss": loss.detach()})
