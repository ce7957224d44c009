"""PyTorch 0.4.1's Adam (optim.eps_placement = "pytorch0.4") against a literal transcription of its update."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from nsvae import objectives
from nsvae.models import VAE, NetConfig
from nsvae.objectives.adam import Adam04
from nsvae.objectives.base import OptimConfig, make_adam

GRADS = [[0.5, -2.0, 1e-6], [0.25, 1.0, 0.0], [0.0, 0.0, 0.0], [-1.5, 3.0, 2e-7]]  # a zero step: momentum only


def adam_041_by_hand(p, grads, lr, beta1, beta2, eps):
    """PyTorch 0.4.1's Adam, element by element in Python floats:

    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  denom = sqrt(v) + eps;
    p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / denom
    """
    p = list(p)
    m = [0.0] * len(p)
    v = [0.0] * len(p)
    for t, g in enumerate(grads, start=1):
        step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        for i in range(len(p)):
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
            p[i] -= step_size * m[i] / (math.sqrt(v[i]) + eps)
    return p


@pytest.mark.parametrize("eps", [1e-8, 1e-3])
def test_matches_the_literal_041_update(eps):
    start = [1.0, -0.5, 0.25]
    param = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    opt = Adam04([param], lr=1e-2, betas=(0.9, 0.999), eps=eps)
    for g in GRADS:
        param.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    expected = adam_041_by_hand(start, GRADS, 1e-2, 0.9, 0.999, eps)
    assert param.tolist() == pytest.approx(expected, rel=1e-13, abs=1e-15)
    assert opt.state[param]["step"] == len(GRADS)


def test_eps_sits_before_the_bias_correction():
    # First step, g = 1: 0.4.1 moves lr / (1 + eps / sqrt(1 - b2)); modern Adam lr / (1 + eps).
    lr, eps = 1e-2, 1e-2
    old = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    new = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    a04 = Adam04([old], lr=lr, eps=eps)
    modern = torch.optim.Adam([new], lr=lr, eps=eps, foreach=False)
    for p, opt in ((old, a04), (new, modern)):
        p.grad = torch.ones(1, dtype=torch.float64)
        opt.step()
    assert -old.item() == pytest.approx(lr / (1 + eps / math.sqrt(1 - 0.999)), rel=1e-12)
    assert -new.item() == pytest.approx(lr / (1 + eps), rel=1e-12)
    assert -old.item() < 0.8 * -new.item()  # eps weighs ~31.6x more at step 1


def test_with_eps_zero_it_is_modern_adam():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, dtype=torch.float64, generator=g))
    b = torch.nn.Parameter(a.detach().clone())
    opt_a = Adam04([a], lr=1e-3, eps=0.0)
    opt_b = torch.optim.Adam([b], lr=1e-3, eps=0.0, foreach=False)
    for _ in range(5):
        grad = torch.randn(5, dtype=torch.float64, generator=g)
        a.grad, b.grad = grad.clone(), grad.clone()
        opt_a.step()
        opt_b.step()
    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def test_none_gradients_are_skipped_and_state_round_trips():
    x = torch.nn.Parameter(torch.ones(2))
    y = torch.nn.Parameter(torch.ones(2))
    opt = Adam04([x, y], lr=0.1)
    x.grad = torch.tensor([1.0, -1.0])
    opt.step()  # y has no gradient: not stepped, no state
    assert opt.state[x]["step"] == 1 and len(opt.state[y]) == 0 and torch.equal(y, torch.ones(2))
    y.grad = torch.tensor([0.5, 0.5])
    opt.step()  # x at step 2, y at step 1: two step sizes in one call
    assert (opt.state[x]["step"], opt.state[y]["step"]) == (2, 1)
    twin_x, twin_y = torch.nn.Parameter(x.detach().clone()), torch.nn.Parameter(y.detach().clone())
    twin = Adam04([twin_x, twin_y], lr=0.1)
    twin.load_state_dict(copy.deepcopy(opt.state_dict()))
    for p, q in ((x, twin_x), (y, twin_y)):
        q.grad = p.grad.clone()
    opt.step()
    twin.step()
    assert torch.equal(x, twin_x) and torch.equal(y, twin_y)


def test_the_option_picks_the_optimiser_for_every_adam_of_the_run():
    params = [torch.nn.Parameter(torch.zeros(1))]
    assert type(OptimConfig().adam(params)) is torch.optim.Adam
    assert type(OptimConfig(eps_placement="pytorch0.4").adam(params)) is Adam04
    assert type(make_adam(params, eps_placement="pytorch0.4", lr=1e-4)) is Adam04
    with pytest.raises(ValueError, match="eps_placement"):
        OptimConfig(eps_placement="tf")
    torch.manual_seed(0)
    model = VAE(NetConfig(z_dim=4))
    fvae = objectives.build("factor_vae", model, optim=OptimConfig(eps_placement="pytorch0.4"))
    assert type(fvae.optimizer) is Adam04 and type(fvae.d_optimizer) is Adam04


def test_nonsyn_two_steps_with_the_041_adam():
    torch.manual_seed(0)
    model = VAE(NetConfig(z_dim=6))
    objective = objectives.build("nonsyn", model, optim=OptimConfig(eps_placement="pytorch0.4"))
    x = (torch.rand(8, 1, 64, 64, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    logs = objective.train_step(x, generator=torch.Generator().manual_seed(2))
    assert math.isfinite(logs["loss"])
    # Both steps through the one Adam, the decoder's second a momentum-only move: every parameter at step 2.
    assert {objective.optimizer.state[p]["step"] for p in model.parameters()} == {2}
