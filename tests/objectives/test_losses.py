"""Loss terms: closed forms and the β-TCVAE decomposition."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from nsvae.objectives.beta_tcvae import decomposed_kl, log_importance_weights
from nsvae.objectives.beta_vae import BetaVAEConfig, capacity_at
from nsvae.objectives.losses import kl_elementwise, kl_subset, kl_total, permute_dims, reconstruction


def test_kl_closed_form():
    mu = torch.tensor([[0.0, 1.0, -2.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 0.0, math.log(4.0)]], dtype=torch.float64)
    kl = kl_elementwise(mu, logvar)
    # 0.5 (mu^2 + s^2 - 1 - log s^2)
    expected = [0.0, 0.5, 0.5 * (4 + 4 - 1 - math.log(4))]
    assert kl[0].tolist() == pytest.approx(expected, abs=1e-12)
    reference = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    torch.testing.assert_close(kl, reference)


def test_kl_reductions_sum_latents_mean_batch():
    kl = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    assert float(kl_total(kl)) == 9.0
    assert float(kl_subset(kl, [0, 2])) == 6.0
    assert float(kl_subset(kl, [])) == 0.0


def test_bernoulli_reconstruction_is_bce_summed_per_image():
    logits = torch.tensor([[[[2.0, -1.0]]], [[[0.0, 3.0]]]])
    x = torch.tensor([[[[1.0, 0.0]]], [[[1.0, 1.0]]]])
    p = torch.sigmoid(logits)
    per_image = -(x * p.log() + (1 - x) * (1 - p).log()).sum(dim=(1, 2, 3))
    assert float(reconstruction(logits, x)) == pytest.approx(float(per_image.mean()), rel=1e-6)


def test_gaussian_reconstruction_is_squared_error_of_the_sigmoid():
    logits = torch.tensor([[[[0.0, 2.0]]]])
    x = torch.tensor([[[[0.25, 1.0]]]])
    expected = (0.5 - 0.25) ** 2 + (torch.sigmoid(torch.tensor(2.0)).item() - 1.0) ** 2
    assert float(reconstruction(logits, x, "gaussian")) == pytest.approx(expected)
    with pytest.raises(ValueError, match="likelihood"):
        reconstruction(logits, x, "poisson")


def test_permute_dims_permutes_each_column():
    z = torch.arange(20.0).reshape(5, 4)
    g = torch.Generator().manual_seed(0)
    p = permute_dims(z, g)
    for j in range(4):
        assert sorted(p[:, j].tolist()) == z[:, j].tolist()
    assert not torch.equal(p, z)


def test_mss_weights():
    w = log_importance_weights(4, 100).double().exp()
    m = 3
    assert w.sum(dim=1).tolist() == pytest.approx([1.0] * 4)
    assert torch.diagonal(w).tolist() == pytest.approx([1 / 100] * 4)
    strat = (100 - m) / (100 * m)
    assert [w[i, (i + 1) % 4].item() for i in range(4)] == pytest.approx([strat] * 4)
    assert w[0, 2].item() == pytest.approx(1 / m)


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_decomposition_telescopes_to_the_sampled_kl(estimator):
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(32, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(32, 3, generator=g, dtype=torch.float64) * 0.3
    z = mu + (0.5 * logvar).exp() * torch.randn(32, 3, generator=g, dtype=torch.float64)
    parts = decomposed_kl(z, mu, logvar, dataset_size=1000, estimator=estimator)
    sampled_kl = (Normal(mu, (0.5 * logvar).exp()).log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(1).mean()
    assert float(parts["mi"] + parts["tc"] + parts["dim_kl"]) == pytest.approx(float(sampled_kl), abs=1e-9)


def independent_codes(batch: int, correlated: bool):
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(batch, 2, generator=g, dtype=torch.float64)
    if correlated:
        mu[:, 1] = mu[:, 0]
    logvar = torch.full_like(mu, math.log(0.05))
    z = mu + (0.5 * logvar).exp() * torch.randn(batch, 2, generator=g, dtype=torch.float64)
    return z, mu, logvar


def test_total_correlation_vanishes_for_independent_latents_and_not_for_copies():
    # Posteriors around independent means, drawn from a large dataset: q(z) factorises, TC = 0.
    z, mu, logvar = independent_codes(2048, correlated=False)
    tc = float(decomposed_kl(z, mu, logvar, dataset_size=10**6)["tc"])
    assert abs(tc) < 0.1
    z, mu, logvar = independent_codes(2048, correlated=True)
    assert float(decomposed_kl(z, mu, logvar, dataset_size=10**6)["tc"]) > 1.0


def test_capacity_schedule():
    cfg = BetaVAEConfig(capacity=True, c_start=0.0, c_max=25.0, c_steps=100)
    assert [capacity_at(cfg, t) for t in (0, 50, 100, 1000)] == [0.0, 12.5, 25.0, 25.0]
