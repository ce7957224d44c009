"""The loss terms every objective shares, each computed in one place.

Reductions, as in the original implementation (``docs/reference/original-implementation.md`` §2):
every loss is a **sum over pixels and latents** per image, then a **mean
over the batch**.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LIKELIHOODS = ("bernoulli", "gaussian")
_LOG_2PI = math.log(2.0 * math.pi)


def reconstruction(logits: torch.Tensor, x: torch.Tensor, likelihood: str = "bernoulli") -> torch.Tensor:
    """Negative log-likelihood per image, averaged over the batch.

    - ``bernoulli``: binary cross-entropy on the logits, summed over pixels
      (dSprites; targets in [0, 1]).
    - ``gaussian``: squared error between ``sigmoid(logits)`` and ``x``,
      summed over pixels and channels (CelebA in the original: a Gaussian
      with unit variance, up to constants and a factor 1/2 it leaves out).
    """
    batch = x.shape[0]
    if likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / batch
    if likelihood == "gaussian":
        return F.mse_loss(torch.sigmoid(logits), x, reduction="sum") / batch
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")


def kl_elementwise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per sample and latent, ``(B, d)``, each >= 0."""
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())


def kl_total(kl: torch.Tensor) -> torch.Tensor:
    """Total KL of an elementwise KL matrix: sum over latents, mean over the batch."""
    return kl.sum(dim=1).mean()


def kl_subset(kl: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """KL of a subset of latents (sum over ``dims``, mean over the batch); 0 for an empty subset."""
    if not dims:
        return kl.new_zeros(())
    return kl[:, dims].sum(dim=1).mean()


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) elementwise (broadcasting)."""
    return -0.5 * (_LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shuffle each latent independently across the batch: samples of the product of the marginals."""
    batch, dims = z.shape
    keys = torch.rand((batch, dims), generator=generator, device=z.device if generator is None else generator.device)
    order = keys.argsort(dim=0).to(z.device)
    return torch.gather(z, 0, order)
