"""Networks: the original encoders and decoders, the VAE module, FactorVAE's discriminator."""

from .nets import (
    ARCHITECTURES,
    VAE,
    Discriminator,
    DiscriminatorConfig,
    NetConfig,
    build_decoder,
    build_encoder,
    pytorch04_convtranspose_init_,
)

__all__ = [
    "ARCHITECTURES",
    "VAE",
    "Discriminator",
    "DiscriminatorConfig",
    "NetConfig",
    "build_decoder",
    "build_encoder",
    "pytorch04_convtranspose_init_",
]
