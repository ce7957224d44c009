"""A trained VAE along its latents: the encoder the metrics read, the KL per latent, decoded traversals.

Computations only (torch, no drawing), shared by the layers above:
training's periodic traversal pictures and learning curves,
:mod:`nsvae.evaluation`, and the figures of :mod:`nsvae.viz`, which lay
these arrays out and label them.

- :func:`posterior_encoder` wraps a model into ``represent_posterior(obs) ->
  (mean, logvar)``, the numpy function :mod:`nsvae.metrics` takes (the
  metrics never import torch);
- :func:`kl_per_latent`: the mean KL of each latent over some images;
- :func:`sweep`, :func:`traversal_images`, :func:`traversal_grid`: codes with
  one latent swept over a range of values, decoded. Decoded logits go through
  a sigmoid (pixel means in [0, 1]); none of these draws random numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from ..pictures import tile_grid

__all__ = [
    "CPU_ENCODE_BATCH",
    "GPU_ENCODE_BATCH",
    "as_batch",
    "decode_means",
    "kl_per_latent",
    "model_device",
    "posterior_encoder",
    "sweep",
    "traversal_grid",
    "traversal_images",
]

#: Images per encoder call on the CPU: 128 keeps the first layer's activations (16 MiB) under the heap
#: reuse limit of ``keep_freed_memory``; encoding 4,096 images took 160 us each against 205 in batches of 512.
CPU_ENCODE_BATCH = 128
GPU_ENCODE_BATCH = 512


def posterior_encoder(model, device=None, batch_size: int | None = None):
    """``represent_posterior(obs) -> (mean, logvar)`` (float64 numpy) for a trained VAE, in batches.

    ``batch_size`` images per encoder call; default 128 on the CPU, 512 on a GPU.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if batch_size is None:
        batch_size = CPU_ENCODE_BATCH if device.type == "cpu" else GPU_ENCODE_BATCH
    model.eval()

    def represent_posterior(obs: np.ndarray):
        means, logvars = [], []
        with torch.inference_mode():
            for start in range(0, len(obs), batch_size):
                x = torch.as_tensor(np.asarray(obs[start : start + batch_size]), dtype=torch.float32).to(device)
                mu, logvar = model.encode(x)
                means.append(mu.double().cpu().numpy())
                logvars.append(logvar.double().cpu().numpy())
        if not means:
            d = model.z_dim
            return np.zeros((0, d)), np.zeros((0, d))
        return np.concatenate(means), np.concatenate(logvars)

    return represent_posterior


def model_device(model) -> torch.device:
    """The device of ``model``'s parameters."""
    return next(model.parameters()).device


def as_batch(images, device) -> torch.Tensor:
    """``images`` ``(N, C, H, W)`` or one ``(C, H, W)`` (numpy or torch) as a float32 batch on ``device``."""
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images, dtype=torch.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] < 1:
        raise ValueError(f"images must have shape (N, C, H, W) or (C, H, W) with N >= 1, got {tuple(x.shape)}")
    return x.to(device)


@torch.no_grad()
def kl_per_latent(model, images, batch_size: int = 256) -> np.ndarray:
    """Mean KL(q(z_j|x) || N(0, 1)) of each latent over ``images``: float64 ``(d,)``, in nats.

    ``images``: ``(N, C, H, W)`` in [0, 1] (numpy or torch). The KL of each
    image and latent is :func:`nsvae.objectives.losses.kl_elementwise` (the
    training objectives' own), averaged over the images, not summed over
    latents: the ``kl_per_dim`` of the training log, on these images.
    """
    from ..objectives.losses import kl_elementwise

    x = as_batch(images, model_device(model))
    total = None
    for start in range(0, x.shape[0], batch_size):
        mu, logvar = model.encode(x[start : start + batch_size])
        part = kl_elementwise(mu, logvar).double().sum(dim=0)
        total = part if total is None else total + part
    return (total / x.shape[0]).cpu().numpy()


@torch.no_grad()
def decode_means(model, codes: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Pixel means of ``codes`` ``(n, d)``, decoded ``chunk`` at a time (bounded memory), on the CPU."""
    out = [torch.sigmoid(model.decode(codes[i : i + chunk])).float().cpu() for i in range(0, codes.shape[0], chunk)]
    return torch.cat(out)


@torch.no_grad()
def sweep(model, base: torch.Tensor, values: torch.Tensor, absolute: bool) -> np.ndarray:
    """Decode ``base`` codes ``(N, d)`` with each latent swept: float32 ``(d, N, V, C, H, W)`` in [0, 1].

    ``[i, n, k]`` is code ``n`` with latent ``i`` set to ``values[k]``
    (``absolute``) or moved by it (``base[n, i] + values[k]``); every other
    latent keeps its base value.
    """
    n, d = base.shape
    v = values.numel()
    codes = base[None, :, None, :].repeat(d, 1, v, 1)  # (d, N, V, d)
    rows = torch.arange(d, device=base.device)
    swept = values.view(1, 1, v) if absolute else base.t()[:, :, None] + values.view(1, 1, v)
    codes[rows, :, :, rows] = swept.expand(d, n, v)
    decoded = decode_means(model, codes.reshape(d * n * v, d))
    return decoded.view(d, n, v, *decoded.shape[1:]).numpy()


@torch.no_grad()
def traversal_images(
    model, image: torch.Tensor, n_values: int = 9, limit: float = 3.0, absolute: bool = True
) -> np.ndarray:
    """Decoded traversals of ``image`` ``(C, H, W)``: float32 ``(z_dim, n_values, C, H, W)`` in [0, 1].

    ``model`` is an :class:`nsvae.models.VAE` (anything with ``encode`` and
    ``decode``); it draws no random numbers.
    """
    if n_values < 1:
        raise ValueError(f"n_values must be at least 1, got {n_values}")
    device = model_device(model)
    x = torch.as_tensor(image, dtype=torch.float32, device=device)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"image must have shape (C, H, W), got {tuple(image.shape)}")
    mu, _ = model.encode(x)
    values = torch.linspace(-limit, limit, n_values, device=device)
    return sweep(model, mu, values, absolute)[:, 0]


def traversal_grid(
    model,
    image: torch.Tensor,
    n_values: int = 9,
    limit: float = 3.0,
    absolute: bool = True,
    pad: int = 1,
) -> np.ndarray:
    """The traversals as one picture ``(C, rows·(H+pad)+pad, cols·(W+pad)+pad)``, white grid lines.

    Training's periodic pictures (``traversals/step_*.png`` and TensorBoard): one row per latent,
    image ``image``'s mean code with the latent set to each of ``linspace(-limit, limit, n_values)``.
    """
    return tile_grid(traversal_images(model, image, n_values, limit, absolute), pad)
