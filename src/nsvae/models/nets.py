"""Encoders, decoders and the VAE module of the original implementation.

Networks (``docs/reference/original-implementation.md`` §3). Conv layers are 4x4, stride 2,
padding 1 (each halves the side); transposed convs 4x4, stride 2, padding 1
(each doubles it); inputs are 64x64. The encoder's last Linear gives ``2d``
numbers: the first ``d`` are ``mu``, the last ``d`` are ``logvar``, with no
activation. The decoder gives **logits** (the sigmoid lives in the loss).

``NetConfig.architecture`` picks one of:

- ``conv`` (dSprites, the Non-Syn repository's network): Conv 1→32→32→64→64
  (ReLU) → Linear(1024→128) → Linear(128→2d); decoder Linear(d→128) [ReLU]
  → Linear(128→1024) [ReLU] → ConvT 64→64→32→32→C (ReLU between). The two
  bracketed ReLUs follow ``fc_relus``: ``"final"`` (the HEAD model: both
  decoder-FC ReLUs, none after the encoder's FC) or ``"paper"`` (the
  paper-era model of the README figures: no FC ReLU at all). There is no
  setting with an encoder-FC ReLU (the original had one only between two
  commits of 2018-10-21).
- ``conv_rgb`` (CelebA, 3D Chairs): the same stack with a 256-wide FC
  layer and ReLU after every FC layer (``fc_relus`` does not apply).
- ``dlib_conv``: disentanglement_lib's ``conv_encoder`` / ``deconv_decoder``
  (``methods/shared/architectures.py``), the network of Locatello et al.'s
  study and of disentanglement_lib's FactorVAE: Conv 4x4/2 C→32, 4x4/2
  32→32, **2x2/2** 32→64, **2x2/2** 64→64 (ReLU; TensorFlow's "same"
  padding, which is 1 for the 4x4 and 0 for the 2x2 layers here) →
  Linear(1024→256) ReLU → Linear(256→2d) (its separate ``means`` and
  ``log_var`` heads, as one layer); decoder Linear(d→256) ReLU →
  Linear(256→1024) ReLU → ConvT 4x4/2 64→64→32→32→C (ReLU between).
  It differs from Kim & Mnih's own table (4x4 kernels throughout, FC 128),
  which the ``conv`` network follows but for a ReLU after the encoder's FC
  layer (§3.2). ``fc_relus`` does not apply.
  TensorFlow flattens channels-last, so its FC weights are ours with the
  inputs in another order (the same family of functions). The weights
  start from PyTorch's default initialisation, not TensorFlow's
  Glorot-uniform kernels and zero biases.
- ``mlp``: 4096→1200→1200 (ReLU) → 2d; decoder d→1200→1200→1200 (Tanh) → 4096.

``convtranspose_init="pytorch0.4"`` re-initialises every ConvTranspose
weight and bias with U(±1/sqrt(in_channels·16)), the bound PyTorch 0.4.1
used (modern PyTorch uses out_channels as fan-in; §3.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import FieldError

ARCHITECTURES = ("conv", "conv_rgb", "dlib_conv", "mlp")
FC_RELUS = ("final", "paper")
CONVT_INITS = ("modern", "pytorch0.4")


@dataclass(frozen=True)
class NetConfig:
    """The network of a run. ``channels`` is the image's (1 for dSprites, 3 for CelebA)."""

    architecture: str = "conv"
    z_dim: int = 10
    channels: int = 1
    #: ``conv`` only: "final" (decoder-FC ReLUs, the HEAD model) or "paper" (no FC ReLUs); the other
    #: architectures have fixed FC ReLUs and ignore it.
    fc_relus: str = "final"
    convtranspose_init: str = "modern"

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise FieldError("architecture", f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.fc_relus not in FC_RELUS:
            raise FieldError("fc_relus", f"fc_relus must be one of {FC_RELUS}, got {self.fc_relus!r}")
        if self.convtranspose_init not in CONVT_INITS:
            raise FieldError(
                "convtranspose_init",
                f"convtranspose_init must be one of {CONVT_INITS}, got {self.convtranspose_init!r}",
            )
        if self.z_dim < 1:
            raise FieldError("z_dim", f"z_dim must be at least 1, got {self.z_dim}")
        if self.channels not in (1, 3):
            raise FieldError("channels", f"channels must be 1 or 3, got {self.channels}")


def _conv_stack(channels: int, small_kernels: bool = False) -> nn.Sequential:
    """64x64 -> 64x4x4, flattened. ``small_kernels``: disentanglement_lib's 2x2/2 (padding 0) 3rd and 4th layers."""
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(((channels, 32), (32, 32), (32, 64), (64, 64))):
        kernel, padding = (2, 0) if small_kernels and i >= 2 else (4, 1)
        layers += [nn.Conv2d(c_in, c_out, kernel, 2, padding), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.Flatten())


def _deconv_stack(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Unflatten(1, (64, 4, 4)),
        nn.ConvTranspose2d(64, 64, 4, 2, 1),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(64, 32, 4, 2, 1),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(32, 32, 4, 2, 1),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(32, channels, 4, 2, 1),
    )


def _maybe_relu(flag: bool) -> list[nn.Module]:
    return [nn.ReLU(inplace=True)] if flag else []


def build_encoder(cfg: NetConfig) -> nn.Sequential:
    d = cfg.z_dim
    if cfg.architecture == "conv":
        return nn.Sequential(_conv_stack(cfg.channels), nn.Linear(1024, 128), nn.Linear(128, 2 * d))
    if cfg.architecture in ("conv_rgb", "dlib_conv"):
        small = cfg.architecture == "dlib_conv"
        return nn.Sequential(
            _conv_stack(cfg.channels, small), nn.Linear(1024, 256), nn.ReLU(inplace=True), nn.Linear(256, 2 * d)
        )
    pixels = cfg.channels * 64 * 64
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(pixels, 1200),
        nn.ReLU(inplace=True),
        nn.Linear(1200, 1200),
        nn.ReLU(inplace=True),
        nn.Linear(1200, 2 * d),
    )


def build_decoder(cfg: NetConfig) -> nn.Sequential:
    d = cfg.z_dim
    if cfg.architecture == "conv":
        relu = cfg.fc_relus == "final"
        return nn.Sequential(
            nn.Linear(d, 128), *_maybe_relu(relu), nn.Linear(128, 1024), *_maybe_relu(relu), _deconv_stack(cfg.channels)
        )
    if cfg.architecture in ("conv_rgb", "dlib_conv"):
        return nn.Sequential(
            nn.Linear(d, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, 1024),
            nn.ReLU(inplace=True),
            _deconv_stack(cfg.channels),
        )
    pixels = cfg.channels * 64 * 64
    return nn.Sequential(
        nn.Linear(d, 1200),
        nn.Tanh(),
        nn.Linear(1200, 1200),
        nn.Tanh(),
        nn.Linear(1200, 1200),
        nn.Tanh(),
        nn.Linear(1200, pixels),
        nn.Unflatten(1, (cfg.channels, 64, 64)),
    )


def pytorch04_convtranspose_init_(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Re-initialise every ConvTranspose2d as PyTorch 0.4.1 did: U(±1/sqrt(in_channels·k·k))."""
    for m in module.modules():
        if isinstance(m, nn.ConvTranspose2d):
            bound = 1.0 / math.sqrt(m.in_channels * m.kernel_size[0] * m.kernel_size[1])
            with torch.no_grad():
                m.weight.uniform_(-bound, bound, generator=generator)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=generator)


class VAE(nn.Module):
    """Gaussian encoder q(z|x) = N(mu, diag(exp(logvar))), decoder giving logits, prior N(0, I)."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        self.z_dim = cfg.z_dim
        self.channels_last = False
        self.encoder = build_encoder(cfg)
        self.decoder = build_decoder(cfg)
        if cfg.convtranspose_init == "pytorch0.4":
            pytorch04_convtranspose_init_(self.decoder)

    def to_fast_layout(self) -> VAE:
        """Use the channels-last memory format for conv nets (measured faster on CPU; benchmarks/RESULTS.md).

        Inputs are converted in :meth:`encode`, so callers can pass ordinary NCHW batches.
        Returns ``self``; the numbers are the same up to floating-point rounding.
        """
        if self.cfg.architecture != "mlp":
            self.to(memory_format=torch.channels_last)
            self.channels_last = True
        return self

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each ``(B, d)``."""
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        stats = self.encoder(x)
        return stats[:, : self.z_dim], stats[:, self.z_dim :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C, 64, 64)``."""
        return self.decoder(z)

    @staticmethod
    def reparametrize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None):
        """``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` (always stochastic, as the original)."""
        eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """``(logits, mu, logvar, z)`` for a batch ``x``."""
        mu, logvar = self.encode(x)
        z = self.reparametrize(mu, logvar, generator)
        return self.decode(z), mu, logvar, z

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def decoder_parameters(self) -> list[nn.Parameter]:
        return list(self.decoder.parameters())


@dataclass(frozen=True)
class DiscriminatorConfig:
    """FactorVAE's discriminator: ``layers`` hidden layers of ``width`` units, LeakyReLU(``slope``).

    The original Non-Syn repository: 5 x 1000, slope 0.01 (PyTorch's default);
    disentanglement_lib's ``fc_discriminator`` (after Kim & Mnih 2018, appendix A):
    6 x 1000, slope 0.2 (TensorFlow's ``leaky_relu`` default); 1Konny's port: 5 x 1000, slope 0.2.
    """

    layers: int = 5
    width: int = 1000
    slope: float = 0.01

    def __post_init__(self):
        if self.layers < 1 or self.width < 1:
            raise ValueError(f"the discriminator needs layers >= 1 and width >= 1, got {self.layers}, {self.width}")
        if self.slope < 0:
            raise ValueError(f"LeakyReLU slope must be >= 0, got {self.slope}")


class Discriminator(nn.Module):
    """``D(z) -> (B, 2)`` logits: class 0 = a sample of q(z), class 1 = of the product of its marginals."""

    def __init__(self, z_dim: int, cfg: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        layers: list[nn.Module] = []
        width_in = z_dim
        for _ in range(cfg.layers):
            layers += [nn.Linear(width_in, cfg.width), nn.LeakyReLU(cfg.slope, inplace=True)]
            width_in = cfg.width
        layers.append(nn.Linear(width_in, 2))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
