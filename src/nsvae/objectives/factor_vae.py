"""FactorVAE (Kim & Mnih 2018): a discriminator estimates the total correlation of q(z).

VAE loss: ``recon + KL + γ · TC`` with ``TC ≈ mean_b (D(z)_0 − D(z)_1)``,
the discriminator's logit difference on the batch's samples ``z``.
Discriminator loss: ``½ [CE(D(z), 0) + CE(D(z̃), 1)]`` where ``z̃`` is a
second, independent batch encoded by the updated VAE with every latent
permuted independently across the batch (samples of the product of the
marginals), as the original. The discriminator has its own Adam (lr 1e-4,
betas (0.5, 0.9); ``optim.eps_placement`` as the VAE's); it sees ``z``
detached, so no discriminator gradient reaches the VAE, and the VAE step
never moves the discriminator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models import Discriminator, DiscriminatorConfig
from .base import Objective, check_ranges, make_adam
from .losses import permute_dims


@dataclass(frozen=True)
class FactorVAEConfig:
    gamma: float = 6.4
    d_lr: float = 1e-4
    d_beta1: float = 0.5
    d_beta2: float = 0.9
    d_layers: int = 5
    d_width: int = 1000
    d_slope: float = 0.01

    def __post_init__(self):
        check_ranges(
            self,
            gamma="nonnegative",
            d_lr="positive",
            d_beta1="unit",
            d_beta2="unit",
            d_layers="count",
            d_width="count",
            d_slope="nonnegative",
        )

    def discriminator(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(layers=self.d_layers, width=self.d_width, slope=self.d_slope)


def tc_estimate(logits: torch.Tensor) -> torch.Tensor:
    """Kim & Mnih's density-ratio estimate of TC: mean of ``D(z)_0 − D(z)_1``."""
    return (logits[:, 0] - logits[:, 1]).mean()


def discriminator_loss_from_logits(logits_q: torch.Tensor, logits_perm: torch.Tensor) -> torch.Tensor:
    """``½ [CE(logits_q, 0) + CE(logits_perm, 1)]``: class 0 = q(z), class 1 = permuted codes."""
    zeros = torch.zeros(logits_q.shape[0], dtype=torch.long, device=logits_q.device)
    ones = torch.ones(logits_perm.shape[0], dtype=torch.long, device=logits_perm.device)
    return 0.5 * (F.cross_entropy(logits_q, zeros) + F.cross_entropy(logits_perm, ones))


def discriminator_loss(disc: Discriminator, z: torch.Tensor, z_perm: torch.Tensor) -> torch.Tensor:
    """The discriminator loss on detached codes: a loss for the discriminator only."""
    return discriminator_loss_from_logits(disc(z.detach()), disc(z_perm.detach()))


class FactorVAEObjective(Objective):
    name = "factor_vae"
    needs_second_batch = True

    def __init__(self, model, config, common, optim):
        super().__init__(model, config, common, optim)
        device = next(model.parameters()).device
        self.discriminator = Discriminator(model.z_dim, config.discriminator()).to(device)
        self.d_optimizer = make_adam(
            self.discriminator.parameters(),
            lr=config.d_lr,
            betas=(config.d_beta1, config.d_beta2),
            eps_placement=optim.eps_placement,
        )

    def extra_modules(self):
        return {"discriminator": self.discriminator}

    def state_dict(self):
        return {**super().state_dict(), "d_optimizer": self.d_optimizer.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.d_optimizer.load_state_dict(state["d_optimizer"])

    def train_step(self, x, x2=None, generator=None):
        if x2 is None:
            raise ValueError("FactorVAE needs a second batch x2 for the permuted codes")
        vae_params = list(self.model.parameters())
        d_params = list(self.discriminator.parameters())
        # VAE step. D(z) is computed once and serves both losses: the discriminator is not
        # updated before its own step, so D(z) there is the same. ``inputs=`` restricts each
        # backward to its own parameters: the VAE loss computes no discriminator weight
        # gradients, and the discriminator loss sends no gradient into the VAE.
        out = self.forward(x, generator)
        z, recon, kl_el, kl = out.z, out.recon, out.kl_el, out.kl
        d_z = self.discriminator(z)
        tc = tc_estimate(d_z)
        vae_loss = recon + kl + self.config.gamma * tc
        self.optimizer.zero_grad(set_to_none=True)
        vae_loss.backward(inputs=vae_params, retain_graph=True)
        self.optimizer.step()
        # Discriminator step: z from above, and permuted codes of a second batch from the updated VAE.
        with torch.no_grad():
            mu2, logvar2 = self.model.encode(x2)
            z_perm = permute_dims(self.model.reparametrize(mu2, logvar2, generator), generator)
        d_loss = discriminator_loss_from_logits(d_z, self.discriminator(z_perm))
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward(inputs=d_params)
        self.d_optimizer.step()
        self.iteration += 1
        logs = self.core_logs(recon, kl_el)
        logs.update(tc=tc.detach(), d_loss=d_loss.detach(), loss=vae_loss.detach())
        return self.step_logs(logs)
