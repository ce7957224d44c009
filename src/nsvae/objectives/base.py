"""What every objective shares: the optimiser, the per-step logs, checkpoint state.

An objective owns the model's optimiser(s) and performs one training
iteration in :meth:`Objective.train_step`, returning the numbers to log.
Every objective logs the same core quantities, so methods can be compared
on them:

- ``recon``: reconstruction loss (sum over pixels, mean over the batch);
- ``kl``: total KL (sum over latents, mean over the batch);
- ``kl_per_dim``: the batch-mean KL of each latent (the ``K_j`` of the
  Non-Syn VAE);
- ``synergy_proxy``: the seed's synergy estimate, the KL of the latents the
  greedy selection leaves out (``omega`` of the proxy, α aside), so that
  the claim that FactorVAE lowers synergy implicitly can be checked;
- ``loss``: the objective's own loss as it was minimised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch

from ..errors import FieldError
from ..models import VAE
from .losses import kl_elementwise, kl_total, reconstruction
from .step_logs import StepLogs


def check_ranges(config: Any, **rules: str) -> None:
    """Check fields of a config dataclass: ``name="positive" | "nonnegative" | "unit" | "open_unit" | "count"``.

    Every float must be finite; ``unit`` is [0, 1), ``open_unit`` (0, 1),
    ``count`` an integer >= 1. The message starts with the field's name
    (the config reader prefixes the section).
    """
    for name, rule in rules.items():
        value = getattr(config, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise FieldError(name, f"{name} must be a finite number, got {value}")
        ok = {
            "positive": lambda v: v > 0,
            "nonnegative": lambda v: v >= 0,
            "unit": lambda v: 0 <= v < 1,
            "open_unit": lambda v: 0 < v < 1,
            "count": lambda v: v >= 1,
        }[rule](value)
        if not ok:
            wanted = {
                "positive": "> 0",
                "nonnegative": ">= 0",
                "unit": "in [0, 1)",
                "open_unit": "in (0, 1)",
                "count": "at least 1",
            }[rule]
            raise FieldError(name, f"{name} must be {wanted}, got {value}")


#: Where Adam adds eps: "modern" (today's torch.optim.Adam: to the bias-corrected sqrt(v)) or "pytorch0.4"
#: (PyTorch 0.4.1, the original's, and TensorFlow 1: to the raw sqrt(v), the bias correction in the step size).
EPS_PLACEMENTS = ("modern", "pytorch0.4")


@dataclass(frozen=True)
class OptimConfig:
    """Adam for the VAE; the original: lr 1e-4, betas (0.9, 0.999), eps 1e-8, no weight decay.

    ``eps_placement`` applies to every Adam of the run (also FactorVAE's discriminator's).
    """

    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    #: "modern" (torch.optim.Adam) or "pytorch0.4" (the original's PyTorch 0.4.1 Adam, nsvae.objectives.adam).
    eps_placement: str = "modern"

    def __post_init__(self):
        check_ranges(self, lr="positive", beta1="unit", beta2="unit", eps="positive")
        if self.eps_placement not in EPS_PLACEMENTS:
            raise FieldError(
                "eps_placement", f"eps_placement must be one of {EPS_PLACEMENTS}, got {self.eps_placement!r}"
            )

    def adam(self, params) -> torch.optim.Optimizer:
        return make_adam(
            params, lr=self.lr, betas=(self.beta1, self.beta2), eps=self.eps, eps_placement=self.eps_placement
        )


def make_adam(params, eps_placement: str = "modern", **kwargs) -> torch.optim.Optimizer:
    """Adam with the fused kernel where this torch build has it for the parameters' device.

    The same algorithm as the default (for-each) Adam, a third of its time on this CPU
    (0.9 ms against 2.6 ms a step for the dSprites VAE; benchmarks/RESULTS.md).
    ``eps_placement="pytorch0.4"``: PyTorch 0.4.1's Adam instead (:class:`nsvae.objectives.adam.Adam04`).
    """
    params = list(params)
    if eps_placement == "pytorch0.4":
        from .adam import Adam04

        return Adam04(params, **kwargs)
    if eps_placement != "modern":
        raise ValueError(f"eps_placement must be one of {EPS_PLACEMENTS}, got {eps_placement!r}")
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device without the fused kernel
        return torch.optim.Adam(params, **kwargs)


@dataclass(frozen=True)
class CommonConfig:
    """Settings every objective takes."""

    likelihood: str = "bernoulli"
    #: omega of the logged synergy proxy (the Non-Syn VAE uses its own omega for training).
    proxy_omega: float = 0.9
    #: number of images in the training set (β-TCVAE's estimators need it).
    dataset_size: int = 737280

    def __post_init__(self):
        check_ranges(self, proxy_omega="open_unit", dataset_size="count")


class ForwardPass(NamedTuple):
    """What one forward of an objective gives its training step (a tuple too, in this order)."""

    logits: torch.Tensor  #: the decoder's output, (B, C, H, W)
    mu: torch.Tensor  #: the posterior means, (B, d)
    logvar: torch.Tensor  #: the posterior log-variances, (B, d)
    z: torch.Tensor  #: the sampled codes, (B, d)
    recon: torch.Tensor  #: the batch-mean reconstruction loss
    kl_el: torch.Tensor  #: the KL to the prior per sample and latent, (B, d)
    kl: torch.Tensor  #: the batch-mean total KL


class Objective:
    """Base class: build with ``(model, method_config, common, optim)``; call ``train_step``."""

    name: ClassVar[str] = ""
    #: True if ``train_step`` needs a second, independent batch ``x2``.
    needs_second_batch: ClassVar[bool] = False
    #: What the loss estimates from the other codes of a batch (so a batch of one cannot train it), or "".
    batch_statistic: ClassVar[str] = ""

    def __init__(self, model: VAE, config: Any, common: CommonConfig = CommonConfig(), optim=OptimConfig()):
        self.model = model
        self.config = config
        self.common = common
        self.optim = optim
        self.optimizer = optim.adam(model.parameters())
        self.iteration = 0

    # -- the shared pieces --------------------------------------------------------------------

    def forward(self, x: torch.Tensor, generator: torch.Generator | None) -> ForwardPass:
        """One forward through the VAE and its ELBO terms (:class:`ForwardPass`)."""
        logits, mu, logvar, z = self.model(x, generator)
        recon = reconstruction(logits, x, self.common.likelihood)
        kl_el = kl_elementwise(mu, logvar)
        return ForwardPass(logits, mu, logvar, z, recon, kl_el, kl_total(kl_el))

    def core_logs(
        self, recon: torch.Tensor, kl_el: torch.Tensor, per_dim: torch.Tensor | None = None
    ) -> dict[str, Any]:
        """The logs every method reports, as tensors where they were computed (no host copy here).

        ``per_dim``: the batch-mean KLs of ``kl_el`` already on the host, if the method copied them.
        ``kl`` and ``synergy_proxy`` are derived from ``kl_per_dim`` when the logs are read
        (:class:`~nsvae.objectives.step_logs.StepLogs`).
        """
        if per_dim is None:
            per_dim = kl_el.detach().mean(dim=0).double()
        return {"recon": recon.detach(), "kl_per_dim": per_dim}

    def step_logs(self, values: dict[str, Any]) -> StepLogs:
        """A step's logs, read lazily (one host copy, at the first read), with the synergy proxy derived."""
        return StepLogs(values, proxy_omega=self.common.proxy_omega)

    # -- to be provided by each method ---------------------------------------------------------

    def train_step(
        self, x: torch.Tensor, x2: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> dict[str, Any]:
        raise NotImplementedError

    # -- checkpoints --------------------------------------------------------------------------

    def extra_modules(self) -> dict[str, torch.nn.Module]:
        """Trainable modules besides the VAE (FactorVAE's discriminator)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        state = {"iteration": self.iteration, "optimizer": self.optimizer.state_dict()}
        state.update({f"module.{k}": m.state_dict() for k, m in self.extra_modules().items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.optimizer.load_state_dict(state["optimizer"])
        for k, m in self.extra_modules().items():
            m.load_state_dict(state[f"module.{k}"])
