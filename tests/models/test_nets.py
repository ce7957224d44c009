"""The networks' layer tables: disentanglement_lib's conv net, FactorVAE's discriminator."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nsvae.models import VAE, Discriminator, DiscriminatorConfig, NetConfig

# disentanglement_lib, methods/shared/architectures.py: conv_encoder and deconv_decoder.
# (kind, in, out, kernel, stride); all activations ReLU except on the heads and the last deconv.
DLIB_ENCODER = [
    ("conv", 1, 32, 4, 2),
    ("conv", 32, 32, 4, 2),
    ("conv", 32, 64, 2, 2),
    ("conv", 64, 64, 2, 2),
    ("fc", 1024, 256),
    ("fc", 256, 20),  # the means and log_var heads (10 + 10)
]
DLIB_DECODER = [
    ("fc", 10, 256),
    ("fc", 256, 1024),
    ("deconv", 64, 64, 4, 2),
    ("deconv", 64, 32, 4, 2),
    ("deconv", 32, 32, 4, 2),
    ("deconv", 32, 1, 4, 2),
]


def _table(module: nn.Module):
    rows = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            rows.append(("conv", m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0]))
        elif isinstance(m, nn.ConvTranspose2d):
            rows.append(("deconv", m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0]))
        elif isinstance(m, nn.Linear):
            rows.append(("fc", m.in_features, m.out_features))
    return rows


def _tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'SAME' padding (before, after) of a strided conv on a side of ``size``."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _relu_count(module: nn.Module) -> int:
    return sum(isinstance(m, nn.ReLU) for m in module.modules())


def test_dlib_conv_layer_table():
    model = VAE(NetConfig(architecture="dlib_conv", z_dim=10))
    assert _table(model.encoder) == DLIB_ENCODER
    assert _table(model.decoder) == DLIB_DECODER
    # ReLU after the four convs and the FC256 (encoder), after both FCs and three deconvs (decoder).
    assert (_relu_count(model.encoder), _relu_count(model.decoder)) == (5, 5)
    # Each conv pads as TensorFlow's "same" does on its input side (symmetric here).
    side = 64
    for conv in [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]:
        before, after = _tf_same_padding(side, conv.kernel_size[0], conv.stride[0])
        assert before == after == conv.padding[0]
        side //= 2
    # Parameters by hand (weights + biases):
    encoder = (
        (1 * 32 * 4 * 4 + 32)  # 544
        + (32 * 32 * 4 * 4 + 32)  # 16,416
        + (32 * 64 * 2 * 2 + 64)  # 8,256
        + (64 * 64 * 2 * 2 + 64)  # 16,448
        + (1024 * 256 + 256)  # 262,400
        + (256 * 20 + 20)  # 5,140
    )
    decoder = (
        (10 * 256 + 256)  # 2,816
        + (256 * 1024 + 1024)  # 263,168
        + (64 * 64 * 16 + 64)  # 65,600
        + (64 * 32 * 16 + 32)  # 32,800
        + (32 * 32 * 16 + 32)  # 16,416
        + (32 * 1 * 16 + 1)  # 513
    )
    assert (encoder, decoder) == (309_204, 381_313)
    assert sum(p.numel() for p in model.encoder.parameters()) == encoder
    assert sum(p.numel() for p in model.decoder.parameters()) == decoder


@pytest.mark.parametrize("channels", [1, 3])
def test_dlib_conv_shapes(channels):
    model = VAE(NetConfig(architecture="dlib_conv", z_dim=10, channels=channels))
    shapes = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    x = torch.rand(2, channels, 64, 64)
    logits, mu, logvar, z = model(x)
    for h in hooks:
        h.remove()
    assert shapes == [
        (32, 32, 32), (32, 16, 16), (64, 8, 8), (64, 4, 4),  # encoder
        (64, 8, 8), (32, 16, 16), (32, 32, 32), (channels, 64, 64),  # decoder
    ]  # fmt: skip
    assert mu.shape == logvar.shape == z.shape == (2, 10)
    assert logits.shape == (2, channels, 64, 64)


def test_dlib_conv_differs_from_the_shared_conv_net():
    # The Non-Syn repository's network (Kim & Mnih's table): 4x4 kernels throughout and FC 128.
    conv = _table(VAE(NetConfig(architecture="conv", z_dim=10)).encoder)
    assert [row[3] for row in conv if row[0] == "conv"] == [4, 4, 4, 4]
    assert ("fc", 1024, 128) in conv and ("fc", 1024, 256) not in conv


def test_dlib_discriminator_layer_table():
    # disentanglement_lib's fc_discriminator: six hidden layers of 1000, leaky ReLU (slope 0.2), 2 logits.
    disc = Discriminator(10, DiscriminatorConfig(layers=6, width=1000, slope=0.2))
    assert _table(disc) == [("fc", 10, 1000)] + [("fc", 1000, 1000)] * 5 + [("fc", 1000, 2)]
    slopes = [m.negative_slope for m in disc.modules() if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2] * 6
    assert sum(p.numel() for p in disc.parameters()) == (10 * 1000 + 1000) + 5 * (1000 * 1000 + 1000) + (1000 * 2 + 2)
    assert sum(p.numel() for p in disc.parameters()) == 5_018_002


@pytest.mark.parametrize("channels", [1, 3])
def test_the_mlp_net_is_the_originals_mlp_layer_for_layer(channels):
    """The named ablation `architecture = "mlp"` (docs/training.md, "Named ablations"): the original's MLP variant,
    4096c -> 1200 -> 1200 (ReLU) -> 2d and d -> 1200 -> 1200 -> 1200 (Tanh) -> 4096c, nothing more."""
    d, pixels = 7, channels * 64 * 64
    vae = VAE(NetConfig(architecture="mlp", z_dim=d, channels=channels))
    linear = [(m.in_features, m.out_features) for m in vae.modules() if isinstance(m, nn.Linear)]
    assert linear == [
        (pixels, 1200),
        (1200, 1200),
        (1200, 2 * d),
        (d, 1200),
        (1200, 1200),
        (1200, 1200),
        (1200, pixels),
    ]
    assert [type(m) for m in vae.encoder if not isinstance(m, (nn.Linear, nn.Flatten))] == [nn.ReLU, nn.ReLU]
    assert [type(m) for m in vae.decoder if not isinstance(m, (nn.Linear, nn.Unflatten))] == [nn.Tanh] * 3
    assert sum(p.numel() for p in vae.parameters()) == sum(i * o + o for i, o in linear)
    x = torch.rand(2, channels, 64, 64)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (2, d) and vae.decode(mu).shape == x.shape
