"""The VAE (Kingma & Welling 2014): minimise reconstruction + KL, one Adam step per batch."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Objective


@dataclass(frozen=True)
class VAEConfig:
    """The plain VAE has no hyper-parameters beyond the shared ones."""


class VAEObjective(Objective):
    name = "vae"

    def train_step(self, x, x2=None, generator=None):
        out = self.forward(x, generator)
        recon, kl_el, kl = out.recon, out.kl_el, out.kl
        loss = recon + kl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        return self.step_logs({**self.core_logs(recon, kl_el), "loss": loss.detach()})
