"""Loss terms: closed forms and the β-TCVAE decomposition."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from nsvae.objectives.beta_tcvae import BetaTCVAEConfig, decomposed_kl, log_importance_weights
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


def _log_normal(x: float, mean: float, logvar: float) -> float:
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 / math.exp(logvar))


def chen_mws_by_hand(z, mu, logvar, n):
    """Chen et al.'s minibatch-weighted sampling written out with loops (their vae_quant.py without --mss).

    log q(z_i) ~ log [1/(N B) sum_k q(z_i|x_k)],  log prod_j q(z_ij) ~ sum_j log [1/(N B) sum_k q(z_ij|x_k)].
    """
    b, d = len(z), len(z[0])
    mi = tc = dim_kl = 0.0
    for i in range(b):
        log_qz_x = sum(_log_normal(z[i][j], mu[i][j], logvar[i][j]) for j in range(d))
        log_pz = sum(_log_normal(z[i][j], 0.0, 0.0) for j in range(d))
        joint = sum(math.exp(sum(_log_normal(z[i][j], mu[k][j], logvar[k][j]) for j in range(d))) for k in range(b))
        log_qz = math.log(joint / (n * b))
        log_prod = sum(
            math.log(sum(math.exp(_log_normal(z[i][j], mu[k][j], logvar[k][j])) for k in range(b)) / (n * b))
            for j in range(d)
        )
        mi += (log_qz_x - log_qz) / b
        tc += (log_qz - log_prod) / b
        dim_kl += (log_prod - log_pz) / b
    return {"mi": mi, "tc": tc, "dim_kl": dim_kl}


def test_default_estimator_is_chens_minibatch_weighted_sampling():
    # Chen et al.'s code takes --mss only when asked (store_true): its default is MWS, and so is ours.
    assert BetaTCVAEConfig().estimator == "mws"
    g = torch.Generator().manual_seed(5)
    mu = torch.randn(5, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 3, generator=g, dtype=torch.float64) * 0.5 - 0.5
    z = mu + (0.5 * logvar).exp() * torch.randn(5, 3, generator=g, dtype=torch.float64)
    parts = decomposed_kl(z, mu, logvar, dataset_size=737280)  # the default estimator
    expected = chen_mws_by_hand(z.tolist(), mu.tolist(), logvar.tolist(), 737280)
    for key in ("mi", "tc", "dim_kl"):
        assert float(parts[key]) == pytest.approx(expected[key], rel=1e-10, abs=1e-10), key
    # MSS is a different estimate on the same batch (the option, not the default).
    mss = decomposed_kl(z, mu, logvar, dataset_size=737280, estimator="mss")
    assert abs(float(mss["tc"]) - expected["tc"]) > 1e-3


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
    # MSS estimates the value; MWS (the default) contains the constant (d - 1) log(N B) (here about 21),
    # but still ranks the two batches the same way.
    z, mu, logvar = independent_codes(2048, correlated=False)
    tc = float(decomposed_kl(z, mu, logvar, dataset_size=10**6, estimator="mss")["tc"])
    assert abs(tc) < 0.1
    tc_mws = float(decomposed_kl(z, mu, logvar, dataset_size=10**6, estimator="mws")["tc"])
    z, mu, logvar = independent_codes(2048, correlated=True)
    assert float(decomposed_kl(z, mu, logvar, dataset_size=10**6, estimator="mss")["tc"]) > 1.0
    assert float(decomposed_kl(z, mu, logvar, dataset_size=10**6, estimator="mws")["tc"]) > tc_mws + 1.0


def test_capacity_schedule():
    cfg = BetaVAEConfig(capacity=True, c_start=0.0, c_max=25.0, c_steps=100)
    assert [capacity_at(cfg, t) for t in (0, 50, 100, 1000)] == [0.0, 12.5, 25.0, 25.0]
