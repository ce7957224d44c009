"""DIP-VAE (Kumar, Sattigeri & Balakrishnan, ICLR 2018): the ELBO plus a push of the codes' covariance towards I.

``loss = recon + KL + λ_od · Σ_{i≠j} C_ij² + λ_d · Σ_i (C_ii − 1)²``, where ``C`` is, over the batch,

- kind ``"i"`` (DIP-VAE-I): the covariance of the posterior means, ``Cov[μ(x)]``;
- kind ``"ii"`` (DIP-VAE-II): the covariance of the codes under the aggregate posterior,
  ``E[Σ(x)] + Cov[μ(x)]`` with ``Σ(x) = diag(exp(logvar(x)))``.

Both moments are the batch's plain means (``E[μμᵀ] − E[μ]E[μ]ᵀ``, divided by the batch size, not by one less),
and the penalty is one number per batch added to the batch-mean ELBO terms, as disentanglement_lib's
``DIPVAE`` computes it (``methods/unsupervised/vae.py``: ``compute_covariance_z_mean`` and
``regularize_diag_off_diag_dip``).

The defaults follow disentanglement_lib: ``λ_d`` is ``10 · λ_od`` for DIP-VAE-I and ``λ_od`` for DIP-VAE-II
(its unsupervised study's ``lambda_d_factor``, with ``λ_od`` swept over 1, 2, 5, 10, 20, 50), and ``λ_od = 10``,
the value of its training tests (``train_test.py``). ``lambda_d`` set explicitly overrides the factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import FieldError
from .base import Objective, check_ranges

#: "i" (the covariance of the posterior means) or "ii" (of the codes under the aggregate posterior).
KINDS = ("i", "ii")
#: λ_d / λ_od when ``lambda_d`` is not given, per kind (disentanglement_lib's unsupervised study).
DIAGONAL_FACTORS = {"i": 10.0, "ii": 1.0}


@dataclass(frozen=True)
class DIPVAEConfig:
    kind: str = "i"
    lambda_od: float = 10.0
    #: The weight of the diagonal's distance to 1; unset: ``DIAGONAL_FACTORS[kind] · lambda_od``.
    lambda_d: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise FieldError("kind", f"kind must be one of {KINDS}, got {self.kind!r}")
        check_ranges(self, lambda_od="nonnegative")
        if self.lambda_d is not None:
            check_ranges(self, lambda_d="nonnegative")

    @property
    def diagonal_weight(self) -> float:
        """λ_d as trained: ``lambda_d`` when set, else the kind's factor times ``lambda_od``."""
        return DIAGONAL_FACTORS[self.kind] * self.lambda_od if self.lambda_d is None else self.lambda_d


def dip_covariance(mu: torch.Tensor, logvar: torch.Tensor, kind: str) -> torch.Tensor:
    """The batch's ``(d, d)`` covariance that DIP-VAE penalises (module docstring), from ``(B, d)`` posteriors."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    centred = mu - mu.mean(dim=0, keepdim=True)
    cov = centred.T @ centred / mu.shape[0]
    if kind == "ii":
        cov = cov + torch.diag(logvar.exp().mean(dim=0))
    return cov


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """``λ_od · Σ_{i≠j} C_ij² + λ_d · Σ_i (C_ii − 1)²``: the distance of ``cov`` to the identity, weighted."""
    diagonal = cov.diagonal()
    off_diagonal = cov - torch.diag(diagonal)
    return lambda_od * off_diagonal.pow(2).sum() + lambda_d * (diagonal - 1.0).pow(2).sum()


class DIPVAEObjective(Objective):
    name = "dip_vae"
    batch_statistic = "penalises the covariance of a batch's codes"

    def train_step(self, x, x2=None, generator=None):
        out = self.forward(x, generator)
        cov = dip_covariance(out.mu, out.logvar, self.config.kind)
        penalty = dip_penalty(cov, self.config.lambda_od, self.config.diagonal_weight)
        loss = out.recon + out.kl + penalty
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        logs = self.core_logs(out.recon, out.kl_el)
        return self.step_logs({**logs, "dip": penalty.detach(), "loss": loss.detach()})
