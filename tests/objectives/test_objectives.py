"""Each objective's update: which parameters move, with which gradient, and one real step for every method."""

from __future__ import annotations

import copy

import pytest
import torch

from nsvae import objectives
from nsvae.models import VAE, NetConfig
from nsvae.objectives.factor_vae import discriminator_loss
from nsvae.objectives.losses import kl_elementwise, kl_subset
from nsvae.objectives.nonsyn import NonSynConfig


def batch(n=16, channels=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, channels, 64, 64, generator=g) < 0.2).float()


def small_model(seed=0, **kw):
    torch.manual_seed(seed)
    return VAE(NetConfig(z_dim=6, **kw))


@pytest.mark.parametrize("method", list(objectives.METHODS))
@pytest.mark.parametrize(
    "net",
    [
        dict(architecture="conv"),
        dict(architecture="conv_rgb", channels=3),
        dict(architecture="dlib_conv"),
        dict(architecture="mlp"),
    ],
)
def test_one_real_step_for_every_method_and_net(method, net):
    model = small_model(**net)
    objective = objectives.build(method, model)
    before = copy.deepcopy(model.state_dict())
    channels = net.get("channels", 1)
    logs = objective.train_step(batch(channels=channels), batch(channels=channels, seed=1), torch.Generator())
    assert {"recon", "kl", "kl_per_dim", "synergy_proxy", "loss"} <= set(logs)
    assert len(logs["kl_per_dim"]) == 6 and torch.isfinite(torch.tensor(logs["loss"]))
    assert logs["synergy_proxy"] <= logs["kl"] + 1e-9
    changed = [k for k in before if not torch.equal(before[k], model.state_dict()[k])]
    assert len(changed) == len(before)  # every parameter moved
    assert objective.iteration == 1


def test_synergy_step_uses_the_gradient_of_the_first_forward():
    model = small_model()
    objective = objectives.build("nonsyn", model, NonSynConfig(alpha=5.0, omega=0.9))
    reference = copy.deepcopy(model)
    x = batch()
    objective.train_step(x, generator=torch.Generator().manual_seed(0))
    # The same forward on the model as it was, before either step.
    mu, logvar = reference.encode(x)
    kl = kl_elementwise(mu, logvar)
    _, worst = objectives.greedy_select(kl.detach().mean(0), 0.9)
    assert worst, "the test needs a non-empty worst set"
    expected = torch.autograd.grad(5.0 * kl_subset(kl, worst), list(reference.encoder.parameters()))
    # The synergy step leaves its gradients in .grad: the encoder's equal the expected ones ...
    for p, g in zip(model.encoder.parameters(), expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
    # ... and the decoder only gets zero-filled gradients (the momentum-only move).
    assert all(torch.count_nonzero(p.grad) == 0 for p in model.decoder.parameters())
    # The mu and logvar rows of the best latents get no synergy gradient.
    last = model.encoder[-1]
    best = [j for j in range(6) if j not in worst]
    rows = best + [6 + j for j in best]
    assert torch.count_nonzero(last.weight.grad[rows]) == 0
    # Both steps go through the same Adam: every parameter has taken two steps.
    steps = {int(objective.optimizer.state[p]["step"]) for p in model.parameters()}
    assert steps == {2}


def test_without_decoder_momentum_step_the_decoder_steps_once():
    model = small_model()
    objective = objectives.build("nonsyn", model, NonSynConfig(decoder_momentum_step=False))
    objective.train_step(batch(), generator=torch.Generator())
    assert {int(objective.optimizer.state[p]["step"]) for p in model.decoder.parameters()} == {1}
    assert {int(objective.optimizer.state[p]["step"]) for p in model.encoder.parameters()} == {2}


def test_joint_update_is_one_step_on_the_summed_loss():
    model = small_model()
    twin = copy.deepcopy(model)
    objective = objectives.build("nonsyn", model, NonSynConfig(update="joint"))
    x = batch()
    objective.train_step(x, generator=torch.Generator().manual_seed(4))
    logits, mu, logvar, _ = twin(x, torch.Generator().manual_seed(4))
    from nsvae.objectives.losses import kl_total, reconstruction

    kl = kl_elementwise(mu, logvar)
    _, worst = objectives.greedy_select(kl.detach().mean(0), 0.9)
    loss = reconstruction(logits, x) + kl_total(kl) + 5.0 * kl_subset(kl, worst)
    grads = torch.autograd.grad(loss, list(twin.parameters()))
    for p, g in zip(model.parameters(), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)
    assert {int(objective.optimizer.state[p]["step"]) for p in model.parameters()} == {1}


@pytest.mark.parametrize("source", ["re_encode", "second_batch"])
def test_synergy_source_options_run(source):
    model = small_model()
    objective = objectives.build("nonsyn", model, NonSynConfig(synergy_source=source))
    assert objective.needs_second_batch == (source == "second_batch")
    logs = objective.train_step(batch(), batch(seed=2), torch.Generator())
    assert set(logs["best"]) | set(logs["worst"]) == set(range(6))
    rates = objective.selection_rates()
    assert [b + w for b, w in zip(rates["best_rate"], rates["worst_rate"])] == [1.0] * 6


@pytest.mark.parametrize("source", ["re_encode", "second_batch"])
def test_fresh_synergy_sources_take_the_gradient_after_the_elbo_step(source):
    # second_batch is the original's --sample sample (the talk's "sample the values of mu and log var for
    # the 2nd step"): encode x2 with the encoder as the ELBO step left it, select, penalise.
    model = small_model()
    objective = objectives.build("nonsyn", model, NonSynConfig(synergy_source=source))
    seen = {}
    step = objective.synergy_step

    def capture(grads):
        seen["model"] = copy.deepcopy(model)  # the parameters between the two steps
        seen["grads"] = [g.clone() for g in grads]
        step(grads)

    objective.synergy_step = capture
    x, x2 = batch(), batch(seed=2)
    logs = objective.train_step(x, x2, torch.Generator().manual_seed(0))
    halfway = seen["model"]
    mu, logvar = halfway.encode(x2 if source == "second_batch" else x)
    kl = kl_elementwise(mu, logvar)
    best, worst = objectives.greedy_select(kl.detach().mean(0), 0.9)
    assert (logs["best"], logs["worst"]) == (best, worst)
    assert worst, "the test needs a non-empty worst set"
    expected = torch.autograd.grad(5.0 * kl_subset(kl, worst), list(halfway.encoder.parameters()))
    for g, e in zip(seen["grads"], expected):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


def test_discriminator_loss_gives_the_vae_no_gradient():
    model = small_model()
    objective = objectives.build("factor_vae", model)
    x = batch()
    _, _, _, z = model(x)
    z2 = model(batch(seed=3))[3]
    loss = discriminator_loss(objective.discriminator, z, z2)
    loss.backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in objective.discriminator.parameters())


def test_factor_vae_step_moves_the_discriminator_only_by_its_own_loss():
    model = small_model()
    objective = objectives.build("factor_vae", model)
    disc_before = copy.deepcopy(objective.discriminator.state_dict())
    objective.train_step(batch(), batch(seed=1), torch.Generator())
    # One discriminator Adam step: its optimiser has stepped once, the VAE's once.
    assert {int(objective.d_optimizer.state[p]["step"]) for p in objective.discriminator.parameters()} == {1}
    assert {int(objective.optimizer.state[p]["step"]) for p in model.parameters()} == {1}
    assert not all(torch.equal(v, objective.discriminator.state_dict()[k]) for k, v in disc_before.items())
    with pytest.raises(ValueError, match="second batch"):
        objective.train_step(batch())


def test_objective_state_round_trip():
    model = small_model()
    objective = objectives.build("nonsyn", model)
    for _ in range(2):
        objective.train_step(batch(), generator=torch.Generator())
    state = copy.deepcopy(objective.state_dict())
    fresh = objectives.build("nonsyn", copy.deepcopy(model))
    fresh.load_state_dict(state)
    assert fresh.iteration == 2
    assert torch.equal(fresh.best_counts, objective.best_counts)


def test_selection_shares_divide_by_the_total_count_as_the_original():
    # The original printed, per latent, count / sum(counts) of a collections.Counter of the chosen sets.
    from collections import Counter

    model = small_model()
    objective = objectives.build("nonsyn", model, NonSynConfig(omega=0.6))
    best_counter, worst_counter = Counter(), Counter()
    for seed in range(4):
        logs = objective.train_step(batch(seed=seed), generator=torch.Generator().manual_seed(seed))
        best_counter.update(logs["best"])
        worst_counter.update(logs["worst"])
    rates = objective.selection_rates()
    for key, counter in (("best_share", best_counter), ("worst_share", worst_counter)):
        total = sum(counter.values())
        assert rates[key] == pytest.approx([counter[j] / total for j in range(6)], abs=1e-15)
    # Against hand-set counts: shares sum to one over latents; rates are per-step fractions.
    objective.best_counts = torch.tensor([3, 1, 0, 0, 0, 0])
    objective.worst_counts = torch.tensor([0, 2, 3, 3, 3, 3])
    objective.iteration = 3
    rates = objective.selection_rates()
    assert rates["best_share"] == [0.75, 0.25, 0.0, 0.0, 0.0, 0.0]
    assert rates["worst_share"] == pytest.approx([0.0, 2 / 14, 3 / 14, 3 / 14, 3 / 14, 3 / 14])
    assert rates["best_rate"] == pytest.approx([1.0, 1 / 3, 0.0, 0.0, 0.0, 0.0])
    objective.worst_counts = torch.zeros(6, dtype=torch.int64)  # an always-empty set: shares 0, no division by 0
    assert objective.selection_rates()["worst_share"] == [0.0] * 6


def test_convtranspose_init_option():
    torch.manual_seed(0)
    model = VAE(NetConfig(convtranspose_init="pytorch0.4"))
    last = model.decoder[-1][-1]
    bound = 1.0 / (32 * 16) ** 0.5
    assert last.weight.abs().max() <= bound and last.weight.abs().max() > 0.9 * bound
    paper = VAE(NetConfig(fc_relus="paper"))
    assert not any(isinstance(m, torch.nn.ReLU) for m in list(paper.decoder)[:3])
    final = VAE(NetConfig())
    assert sum(isinstance(m, torch.nn.ReLU) for m in list(final.decoder)[:4]) == 2


def test_factor_vae_step_gradients_are_separated():
    from nsvae.objectives.factor_vae import tc_estimate
    from nsvae.objectives.losses import kl_total, permute_dims, reconstruction

    model = small_model()
    objective = objectives.build("factor_vae", model)
    twin, twin_disc = copy.deepcopy(model), copy.deepcopy(objective.discriminator)
    x, x2 = batch(), batch(seed=1)
    objective.train_step(x, x2, torch.Generator().manual_seed(5))
    # The VAE's gradients are those of recon + KL + γ·TC alone (nothing from the discriminator loss).
    g = torch.Generator().manual_seed(5)
    logits, mu, logvar, z = twin(x, g)
    vae_loss = reconstruction(logits, x) + kl_total(kl_elementwise(mu, logvar)) + 6.4 * tc_estimate(twin_disc(z))
    for p, expected in zip(
        model.parameters(), torch.autograd.grad(vae_loss, list(twin.parameters()), retain_graph=True)
    ):
        torch.testing.assert_close(p.grad, expected, rtol=1e-5, atol=1e-6)
    # The discriminator's gradients are those of its loss on z and the permuted second batch.
    twin_opt = objectives.OptimConfig().adam(twin.parameters())
    twin_opt.zero_grad()
    vae_loss.backward()
    twin_opt.step()
    with torch.no_grad():
        mu2, logvar2 = twin.encode(x2)
        z_perm = permute_dims(twin.reparametrize(mu2, logvar2, g), g)
    d_loss = discriminator_loss(twin_disc, z, z_perm)
    for p, expected in zip(
        objective.discriminator.parameters(), torch.autograd.grad(d_loss, list(twin_disc.parameters()))
    ):
        torch.testing.assert_close(p.grad, expected, rtol=1e-5, atol=1e-6)


def test_fast_layout_gives_the_same_numbers():
    model = small_model()
    fast = copy.deepcopy(model).to_fast_layout()
    x = batch()
    torch.testing.assert_close(fast.encode(x), model.encode(x), rtol=1e-4, atol=1e-5)
    z = torch.randn(3, 6)
    torch.testing.assert_close(fast.decode(z), model.decode(z), rtol=1e-4, atol=1e-5)
    assert fast.channels_last and not model.channels_last
