"""The Non-Synergistic VAE (Barrientos & Sootla 2018): an ELBO step, then a synergy step.

Each iteration (``docs/reference/original-implementation.md`` §1.2 and §7, the faithful
default):

1. one forward of the batch: ``logits, mu, logvar``; the per-latent KLs
   ``K_j`` (batch means) go to the host once;
2. :func:`greedy_select` splits the latents into the greedy ``best`` set
   (the union information I_max) and the ``worst`` rest; the synergy
   estimate is ``Syn = KL(worst)`` and its loss ``α · Syn``;
3. the synergy gradient ``∇ α·Syn`` w.r.t. the encoder is taken from this
   **same forward, before any step**;
4. ELBO step: ``recon + KL`` backward, Adam step (encoder and decoder);
5. synergy step with the **same** Adam: the encoder gets the gradient of
   step 3; the decoder gets zero-filled gradients, so Adam moves it with
   momentum only, as PyTorch 0.4.1's ``zero_grad`` made the original do
   (Adam's step count advances twice per iteration).

Named options (each a measured departure from the original):

- ``synergy_source="re_encode"``: select and penalise on a fresh encoding
  of the same batch after the ELBO step (exact gradient at the new point);
- ``synergy_source="second_batch"``: on a second random batch, encoded
  after the ELBO step (the original's ``--sample sample``, which the talk
  describes as "sample the values of mu and log var for the 2nd step"; the
  code's default, ``no_sample``, is ``"same_forward"``);
- ``selection="sorted"``: the sorted simplification of the greedy rule;
- ``update="joint"``: one step on ``recon + KL + α·Syn``;
- ``decoder_momentum_step=False``: the decoder sits out the synergy step.

An empty worst set gives ``Syn = 0``; the synergy step is still taken
(zero gradients: a momentum-only move), like every other iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import FieldError
from .base import Objective, check_ranges
from .losses import kl_elementwise, kl_subset
from .selection import SELECTIONS, greedy_select, sorted_select
from .step_logs import HostCopy

__all__ = ["NonSynConfig", "NonSynObjective", "greedy_select", "sorted_select"]

SYNERGY_SOURCES = ("same_forward", "re_encode", "second_batch")
UPDATES = ("two_step", "joint")


@dataclass(frozen=True)
class NonSynConfig:
    alpha: float = 5.0
    omega: float = 0.9
    synergy_source: str = "same_forward"
    selection: str = "greedy"
    update: str = "two_step"
    decoder_momentum_step: bool = True

    def __post_init__(self):
        check_ranges(self, alpha="nonnegative", omega="open_unit")
        if self.synergy_source not in SYNERGY_SOURCES:
            raise FieldError(
                "synergy_source", f"synergy_source must be one of {SYNERGY_SOURCES}, got {self.synergy_source!r}"
            )
        if self.selection not in SELECTIONS:
            raise FieldError("selection", f"selection must be one of {tuple(SELECTIONS)}, got {self.selection!r}")
        if self.update not in UPDATES:
            raise FieldError("update", f"update must be one of {UPDATES}, got {self.update!r}")
        if self.update == "joint" and self.synergy_source != "same_forward":
            raise FieldError(
                "update", "update='joint' takes the synergy from the same forward (synergy_source='same_forward')"
            )


class NonSynObjective(Objective):
    name = "nonsyn"

    def __init__(self, model, config, common, optim):
        super().__init__(model, config, common, optim)
        self.select = SELECTIONS[config.selection]
        self.best_counts = torch.zeros(model.z_dim, dtype=torch.int64)
        self.worst_counts = torch.zeros(model.z_dim, dtype=torch.int64)

    @property
    def needs_second_batch(self) -> bool:  # type: ignore[override]
        return self.config.synergy_source == "second_batch"

    def synergy(self, kl_el: torch.Tensor, per_dim: torch.Tensor | None = None):
        """``(α·Syn, best, worst, K)`` for an elementwise KL matrix; the selection sees detached values.

        ``K``: the batch-mean KL per latent as a list of floats (the logs reuse it), from ``per_dim``
        (those KLs already on the host) or copied here.
        """
        if per_dim is None:
            per_dim = kl_el.detach().mean(dim=0).double().cpu()
        per_dim = per_dim.tolist()
        best, worst = self.select(per_dim, self.config.omega)
        return self.config.alpha * kl_subset(kl_el, worst), best, worst, per_dim

    def _encoder_gradient(self, syn_loss: torch.Tensor, worst: list[int], retain: bool) -> list[torch.Tensor]:
        params = self.model.encoder_parameters()
        if not worst or not syn_loss.requires_grad:
            return [torch.zeros_like(p) for p in params]
        grads = torch.autograd.grad(syn_loss, params, retain_graph=retain, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]

    def train_step(self, x, x2=None, generator=None):
        """One iteration on the update path the config names (one method each); the logs are the same for all."""
        cfg = self.config
        out = self.forward(x, generator)
        recon, kl_el = out.recon, out.kl_el
        elbo = recon + out.kl
        if cfg.synergy_source != "same_forward":
            syn_loss, best, worst, per_dim = self._synergy_after_the_elbo_step(elbo, x, x2)
        elif cfg.update == "joint":
            syn_loss, best, worst, per_dim = self._joint_step(elbo, kl_el)
        else:
            syn_loss, best, worst, per_dim = self._two_steps_from_one_forward(elbo, kl_el)
        self.iteration += 1
        self.best_counts[best] += 1
        self.worst_counts[worst] += 1
        logs = self.core_logs(recon, kl_el, per_dim)
        syn_loss = syn_loss.detach()
        logs.update(
            # Syn itself: alpha * Syn / alpha in double precision (float(x) / alpha as the host would do it)
            syn=syn_loss.double() / cfg.alpha if cfg.alpha else kl_subset(kl_el.detach(), worst),
            syn_loss=syn_loss,
            best=best,
            worst=worst,
            loss=elbo.detach() + syn_loss,
        )
        return self.step_logs(logs)

    def _backward_with_the_kls_on_the_host(self, elbo: torch.Tensor, kl_el: torch.Tensor):
        """The ELBO's backward, and the selection on the batch-mean KLs of the same forward.

        The selection needs the d per-latent KLs on the host. Their copy starts first and is read once the ELBO
        backward is queued behind it, so on CUDA the host waits while the GPU computes that backward instead of the
        GPU idling while the host selects. Both gradients are taken at the same point (no step yet), as in the
        original."""
        pending = HostCopy(kl_el.detach().mean(dim=0).double())
        self.optimizer.zero_grad(set_to_none=True)
        elbo.backward(retain_graph=True)
        return self.synergy(kl_el, pending.result())

    def _two_steps_from_one_forward(self, elbo: torch.Tensor, kl_el: torch.Tensor):
        """The faithful update: the synergy gradient of the ELBO step's forward, then the ELBO step, then the
        synergy step (encoder: that gradient; decoder: zero-filled, a momentum-only move)."""
        syn_loss, best, worst, per_dim = self._backward_with_the_kls_on_the_host(elbo, kl_el)
        g_syn = self._encoder_gradient(syn_loss, worst, retain=False)
        self.optimizer.step()  # the ELBO step
        self.synergy_step(g_syn)
        return syn_loss, best, worst, per_dim

    def _joint_step(self, elbo: torch.Tensor, kl_el: torch.Tensor):
        """The ablation ``update = "joint"``: one step on the gradient of recon + KL + α·Syn."""
        syn_loss, best, worst, per_dim = self._backward_with_the_kls_on_the_host(elbo, kl_el)
        if syn_loss.requires_grad:
            syn_loss.backward()  # accumulates onto the ELBO's
        self.optimizer.step()
        return syn_loss, best, worst, per_dim

    def _synergy_after_the_elbo_step(self, elbo: torch.Tensor, x, x2):
        """The ablations ``synergy_source = "re_encode" | "second_batch"``: the ELBO step, then the selection and
        the synergy step on a fresh encoding of the same batch or of a second one."""
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        elbo.backward()
        self.optimizer.step()  # the ELBO step
        if cfg.synergy_source == "second_batch" and x2 is None:
            raise ValueError("synergy_source='second_batch' needs a second batch x2")
        source = x if cfg.synergy_source == "re_encode" else x2
        mu_s, logvar_s = self.model.encode(source)
        syn_loss, best, worst, _ = self.synergy(kl_elementwise(mu_s, logvar_s))
        self.synergy_step(self._encoder_gradient(syn_loss, worst, retain=False))
        return syn_loss, best, worst, None  # the logs describe the first forward

    def synergy_step(self, encoder_grads: list[torch.Tensor]) -> None:
        """The second Adam step: encoder gradients given, decoder zero-filled (or left out)."""
        for p, g in zip(self.model.encoder_parameters(), encoder_grads):
            p.grad = g
        for p in self.model.decoder_parameters():
            if self.config.decoder_momentum_step:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                else:
                    p.grad.zero_()
            else:
                p.grad = None
        self.optimizer.step()

    def selection_rates(self) -> dict[str, list[float]]:
        """How often each latent has been in the best / worst set so far, normalised two ways.

        - ``best_rate``, ``worst_rate``: the fraction of iterations (per latent, best + worst = 1);
        - ``best_share``, ``worst_share``: the count over the total count of all latents' memberships
          of that set (each sums to 1 over the latents, 0 while the set has always been empty). This
          is the original's printed statistic: it divides each latent's count by the sum of the counts
          (``docs/reference/original-implementation.md`` §1.8), which is the fraction of steps divided by the mean
          size of the set.
        """
        n = max(self.iteration, 1)
        best, worst = self.best_counts.double(), self.worst_counts.double()
        return {
            "best_rate": (best / n).tolist(),
            "worst_rate": (worst / n).tolist(),
            "best_share": (best / max(float(best.sum()), 1.0)).tolist(),
            "worst_share": (worst / max(float(worst.sum()), 1.0)).tolist(),
        }

    def state_dict(self):
        return {**super().state_dict(), "best_counts": self.best_counts.clone(), "worst_counts": self.worst_counts}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.best_counts = state["best_counts"].clone()
        self.worst_counts = state["worst_counts"].clone()
