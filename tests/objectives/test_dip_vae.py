"""DIP-VAE: the covariance and penalty against disentanglement_lib's formulas, its defaults, its step."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from nsvae import objectives
from nsvae.config.schema import Config, loads
from nsvae.errors import FieldError, UserError
from nsvae.models import VAE, NetConfig
from nsvae.objectives.dip_vae import DIPVAEConfig, dip_covariance, dip_penalty
from nsvae.train.trainer import validate


def _posterior(batch=32, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(batch, d, generator=g, dtype=torch.float64) * torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    mu = mu + 0.3 * mu[:, :1]  # correlated columns, so the off-diagonal part is not zero
    logvar = torch.randn(batch, d, generator=g, dtype=torch.float64) - 1.0
    return mu, logvar


def test_the_covariances_are_disentanglement_libs_batch_moments():
    mu, logvar = _posterior()
    m = mu.numpy()
    # compute_covariance_z_mean: E[mu mu^T] - E[mu] E[mu]^T, plain means over the batch
    expected_i = (m[:, :, None] * m[:, None, :]).mean(axis=0) - np.outer(m.mean(axis=0), m.mean(axis=0))
    np.testing.assert_allclose(dip_covariance(mu, logvar, "i").numpy(), expected_i, rtol=1e-12, atol=1e-12)
    # DIP-VAE-II: E[diag(exp(logvar))] + Cov[mu]
    expected_ii = expected_i + np.diag(np.exp(logvar.numpy()).mean(axis=0))
    np.testing.assert_allclose(dip_covariance(mu, logvar, "ii").numpy(), expected_ii, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="kind"):
        dip_covariance(mu, logvar, "iii")


def test_the_penalty_by_hand():
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    # off-diagonal 2 * 0.5^2 = 0.5, weighted 3; diagonal (2-1)^2 + (1-1)^2 = 1, weighted 7
    assert float(dip_penalty(cov, 3.0, 7.0)) == pytest.approx(8.5, abs=1e-12)
    assert float(dip_penalty(torch.eye(4, dtype=torch.float64), 50.0, 500.0)) == 0.0


def test_a_whitened_code_costs_nothing_under_dip_vae_i():
    mu, logvar = _posterior(batch=64, d=4, seed=3)
    centred = mu - mu.mean(dim=0)
    cov = centred.T @ centred / len(mu)
    whitened = centred @ torch.linalg.inv(torch.linalg.cholesky(cov)).T  # batch covariance exactly I
    penalty = dip_penalty(dip_covariance(whitened, logvar, "i"), 10.0, 100.0)
    assert float(penalty) == pytest.approx(0.0, abs=1e-20)


def test_the_diagonal_weight_follows_the_kind_unless_given():
    assert DIPVAEConfig().diagonal_weight == 100.0  # kind "i": 10 x lambda_od, lambda_od = 10
    assert DIPVAEConfig(kind="ii").diagonal_weight == 10.0  # kind "ii": 1 x lambda_od
    assert DIPVAEConfig(kind="ii", lambda_od=2.0).diagonal_weight == 2.0
    assert DIPVAEConfig(lambda_od=2.0, lambda_d=3.0).diagonal_weight == 3.0
    with pytest.raises(FieldError, match="kind must be one of"):
        DIPVAEConfig(kind="2")
    with pytest.raises(FieldError, match="lambda_d must be >= 0"):
        DIPVAEConfig(lambda_d=-1.0)
    with pytest.raises(FieldError, match="lambda_od must be >= 0"):
        DIPVAEConfig(lambda_od=-1.0)


def test_the_config_file_reads_and_writes_the_table():
    config = loads('method = "dip_vae"\n[dip_vae]\nkind = "ii"\nlambda_od = 5.0\n')
    assert config.method_config() == DIPVAEConfig(kind="ii", lambda_od=5.0)
    with pytest.raises(UserError, match="dip_vae.kind"):
        loads('method = "dip_vae"\n[dip_vae]\nkind = "three"\n')


def _batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 64, 64, generator=g) < 0.2).float()


def test_with_zero_weights_the_step_is_the_vaes():
    torch.manual_seed(0)
    model = VAE(NetConfig(z_dim=6))
    twin = copy.deepcopy(model)
    dip = objectives.build("dip_vae", model, DIPVAEConfig(lambda_od=0.0, lambda_d=0.0))
    vae = objectives.build("vae", twin)
    for seed in range(2):
        dip.train_step(_batch(seed=seed), generator=torch.Generator().manual_seed(seed))
        vae.train_step(_batch(seed=seed), generator=torch.Generator().manual_seed(seed))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, twin.state_dict()[name]), name


def test_the_logged_loss_is_the_elbo_plus_the_logged_penalty():
    torch.manual_seed(0)
    objective = objectives.build("dip_vae", VAE(NetConfig(z_dim=6)), DIPVAEConfig(kind="ii"))
    logs = objective.train_step(_batch(), generator=torch.Generator().manual_seed(0))
    assert logs["dip"] > 0
    assert logs["loss"] == pytest.approx(logs["recon"] + logs["kl"] + logs["dip"], rel=1e-5)


def test_a_batch_of_one_is_refused_before_training():
    config = Config(method="dip_vae")
    config = config.replace(data=type(config.data)(batch_size=1))
    with pytest.raises(UserError, match="dip_vae penalises the covariance of a batch's codes"):
        validate(config, dataset=list(range(10)))


def test_the_presets_name_both_kinds_at_disentanglement_libs_factors():
    from nsvae.config import load_config

    for name, kind, diagonal, steps in [
        ("dip-vae-i", "i", 100.0, 149_760),
        ("dip-vae-ii", "ii", 10.0, 149_760),
        ("quick-dip-vae-i", "i", 100.0, 1500),
        ("quick-dip-vae-ii", "ii", 10.0, 1500),
    ]:
        config = load_config(name)
        assert (config.method, config.dip_vae.kind, config.run.steps) == ("dip_vae", kind, steps)
        assert config.dip_vae.diagonal_weight == diagonal and config.dip_vae.lambda_od == 10.0


def test_beta_tcvae_refuses_a_batch_of_one_by_the_same_class_attribute():
    config = Config(method="beta_tcvae")
    config = config.replace(data=type(config.data)(batch_size=1))
    with pytest.raises(UserError, match="beta_tcvae estimates the total correlation from the other codes"):
        validate(config, dataset=list(range(10)))
    validate(Config(method="vae").replace(data=type(config.data)(batch_size=1)), dataset=list(range(10)))
