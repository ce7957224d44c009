"""β-TCVAE (Chen et al. 2018): the KL split into index-code MI, total correlation and dimension-wise KL.

``loss = recon + α · MI + β · TC + γ · dimKL`` with, over the batch's samples
``z_i ~ q(z|x_i)``::

    MI     = mean_i [log q(z_i|x_i) − log q(z_i)]
    TC     = mean_i [log q(z_i) − Σ_j log q(z_ij)]
    dimKL  = mean_i [Σ_j log q(z_ij) − log p(z_i)]

The aggregate densities are estimated from the minibatch of size ``B``
drawn from a dataset of size ``N`` (``estimator``):

- ``mws``, the default: minibatch-weighted sampling, ``log q(z_i) ≈
  logsumexp_k log q(z_i|x_k) − log(N·B)`` and the same for each
  ``q(z_ij)``. This is what Chen et al.'s code (rtqichen/beta-tcvae,
  ``vae_quant.py``) computes unless it is run with ``--mss``: the flag is
  opt-in (``action='store_true'``), so MWS is their default estimator.
- ``mss``: minibatch-stratified sampling, Chen et al.'s alternative (their
  ``--mss``, "the improved minibatch estimator"): the same sum with
  importance weights ``1/N`` for ``k = i``, ``(N − M)/(N·M)`` for the next
  sample (cyclically) and ``1/M`` for the others, ``M = B − 1``; each row
  sums to one. These are the weights as the paper defines them; the
  released code writes the ``1/N`` and stratum weights into the first two
  columns instead of the diagonal (its flat stride is ``B``, not ``B + 1``;
  see rtqichen/beta-tcvae pull request #1), which this module does not copy.

The other defaults (α = γ = 1, β = 6) follow the paper's dSprites runs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from ..errors import FieldError
from .base import Objective, check_ranges
from .losses import gaussian_log_density

#: The first is the default: minibatch-weighted sampling, as Chen et al.'s code runs without ``--mss``.
ESTIMATORS = ("mws", "mss")


@dataclass(frozen=True)
class BetaTCVAEConfig:
    beta: float = 6.0
    alpha: float = 1.0
    gamma: float = 1.0
    #: "mws" (Chen et al.'s code default) or "mss" (their ``--mss`` option).
    estimator: str = "mws"

    def __post_init__(self):
        check_ranges(self, beta="nonnegative", alpha="nonnegative", gamma="nonnegative")
        if self.estimator not in ESTIMATORS:
            raise FieldError("estimator", f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")


@functools.lru_cache(maxsize=8)
def log_importance_weights(batch: int, dataset_size: int, device=None) -> torch.Tensor:
    """log of the minibatch-stratified sampling weights, ``(B, B)`` (row i: the weights of sample i's sum).

    Kept per (batch, size, device): built on the host, a fresh copy every step would make each CUDA
    step wait for a host-to-device copy. The tensor is shared: read it, never change it in place.
    """
    n, m = dataset_size, batch - 1
    if m < 1:
        raise ValueError("minibatch-stratified sampling needs a batch of at least 2")
    strat = (n - m) / (n * m)
    w = torch.full((batch, batch), 1.0 / m, dtype=torch.float64)
    idx = torch.arange(batch)
    w[idx, idx] = 1.0 / n
    w[idx, (idx + 1) % batch] = strat
    return w.log().to(device=device, dtype=torch.float32)


def decomposed_kl(z, mu, logvar, dataset_size: int, estimator: str = "mws") -> dict[str, torch.Tensor]:
    """``{"mi", "tc", "dim_kl"}`` batch estimates for samples ``z`` of ``N(mu, exp(logvar))``."""
    batch = z.shape[0]
    log_qz_given_x = gaussian_log_density(z, mu, logvar).sum(dim=1)  # (B,)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(dim=1)
    # pairwise[i, k, j] = log q(z_ij | x_k)
    pairwise = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])
    if estimator == "mss":
        weights = log_importance_weights(batch, dataset_size, z.device)
        log_qz = torch.logsumexp(weights + pairwise.sum(dim=2), dim=1)
        log_prod_qzj = torch.logsumexp(weights[:, :, None] + pairwise, dim=1).sum(dim=1)
    elif estimator == "mws":
        norm = math.log(batch * dataset_size)
        log_qz = torch.logsumexp(pairwise.sum(dim=2), dim=1) - norm
        log_prod_qzj = (torch.logsumexp(pairwise, dim=1) - norm).sum(dim=1)
    else:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    return {
        "mi": (log_qz_given_x - log_qz).mean(),
        "tc": (log_qz - log_prod_qzj).mean(),
        "dim_kl": (log_prod_qzj - log_pz).mean(),
    }


class BetaTCVAEObjective(Objective):
    name = "beta_tcvae"
    batch_statistic = "estimates the total correlation from the other codes of a batch"

    def train_step(self, x, x2=None, generator=None):
        out = self.forward(x, generator)
        mu, logvar, z, recon, kl_el = out.mu, out.logvar, out.z, out.recon, out.kl_el
        parts = decomposed_kl(z, mu, logvar, self.common.dataset_size, self.config.estimator)
        cfg = self.config
        loss = recon + cfg.alpha * parts["mi"] + cfg.beta * parts["tc"] + cfg.gamma * parts["dim_kl"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        logs = self.core_logs(recon, kl_el)
        logs.update({k: v.detach() for k, v in parts.items()}, loss=loss.detach())
        return self.step_logs(logs)
