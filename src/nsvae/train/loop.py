"""The training loop of one run, step by step.

:class:`Trainee` is what trains and what a checkpoint holds: the model, the
objective (its optimisers, FactorVAE's discriminator, selection counts), the
batch streams and the noise generator. :class:`TrainingLoop` trains it one
step at a time and then does, in this order, what is due at that step:

1. **watch**: whether the loss diverged (read from the device only at the
   steps that read it anyway);
2. **log**: a line of ``log.jsonl`` and the trackers' scalars (``log.every``);
3. **traversal**: a traversal image (``log.traversal_every``);
4. **curve point**: the learning curve's evaluation (``eval.every``);
5. the caller's **callback**;
6. **checkpoint** (``log.checkpoint_every``, the last step, or a stop signal);
7. **stop**: after a SIGINT/SIGTERM, once its checkpoint is written.

The order is part of exact resume: a resumed run repeats what an
uninterrupted one did at every step after its checkpoint.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..clock import timestamp
from ..config.schema import Config, to_dict
from ..stop_signals import StopSignals
from .divergence import DivergenceWatch
from .failures import FULL_DISK, TrainingDiverged, disk_full, diverged, set_failed
from .learning_curve import CurveRecorder
from .run import CHECKPOINT_FORMAT, Run
from .training_log import TrainingLog


def derive_seed(seed: int, *stream: int) -> int:
    """An independent 63-bit seed for a named random stream of ``seed``."""
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), *stream]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


NOISE_STREAM = 1  # derive_seed(run.seed, 1): reparametrisation and permutation noise
GLOBAL_STREAM = 2  # derive_seed(run.seed, 2): torch's global generator during training (unused by the methods)
SECOND_BATCH_STREAM = 1  # derive_seed(data.seed, 1): the second batch stream


@dataclasses.dataclass
class Trainee:
    """What trains, and every piece of state a checkpoint must hold for an exact resume."""

    model: torch.nn.Module
    objective: Any
    loader: Any
    loader2: Any  # the second batch stream (FactorVAE, Non-Syn second_batch), or None
    noise: torch.Generator
    device: torch.device

    @classmethod
    def build(cls, config: Config, dataset, device: torch.device) -> Trainee:
        """The model and objective (initial weights from ``run.seed``, without touching the caller's generator),
        the batch streams and the noise of training, each from its own seed."""
        from ..data.loader import BatchLoader
        from ..models import VAE
        from ..objectives import build

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.run.seed)
            model = VAE(config.model).to(device)
            if config.run.fast_layout:
                model.to_fast_layout()
            objective = build(config.method, model, config.method_config(), config.common, config.optim)
        model.train()
        loader = BatchLoader(dataset, config.data.batch_size, seed=config.data_seed, device=device)
        loader2 = None
        if objective.needs_second_batch:
            seed2 = derive_seed(config.data_seed, SECOND_BATCH_STREAM)
            loader2 = BatchLoader(dataset, config.data.batch_size, seed=seed2, device=device)
        noise = torch.Generator(device=device)
        noise.manual_seed(derive_seed(config.run.seed, NOISE_STREAM))
        return cls(model, objective, loader, loader2, noise, device)

    def train_step(self) -> dict[str, Any]:
        """One iteration; a NaN/Inf found inside the objective (its latent selection refuses them) -> logs of NaN."""
        from ..objectives.selection import NonFiniteKL

        x = next(self.loader)
        x2 = next(self.loader2) if self.loader2 is not None else None
        try:
            return self.objective.train_step(x, x2, self.noise)
        except NonFiniteKL as exc:
            return {"loss": float("nan"), "error": str(exc)}

    def checkpoint_state(self, config: Config, step: int, elapsed: float) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "elapsed_s": elapsed,
            "method": config.method,
            "config": to_dict(config),
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict(),
            "loader": self.loader.state_dict(),
            "loader2": None if self.loader2 is None else self.loader2.state_dict(),
            "noise_rng": self.noise.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "versions": {"nsvae": __version__, "torch": str(torch.__version__)},
        }

    def restore(self, state: dict[str, Any]) -> tuple[int, float]:
        """Load a checkpoint's state; returns its ``(step, seconds trained)``."""
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state["objective"])
        self.loader.load_state_dict(state["loader"])
        if self.loader2 is not None:
            self.loader2.load_state_dict(state["loader2"])
        self.noise.set_state(state["noise_rng"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        return int(state["step"]), float(state.get("elapsed_s", 0.0))


def traversal_image(dataset) -> torch.Tensor:
    """The fixed image of the traversal figures: image 0 (the original's first test image)."""
    return torch.from_numpy(np.ascontiguousarray(dataset.observations_at([0], np.random.default_rng(0))[0]))


class TrainingLoop:
    """Train ``trainee`` in ``run`` from ``step`` (``elapsed`` seconds already trained) to ``config.run.steps``."""

    def __init__(
        self,
        run: Run,
        config: Config,
        trainee: Trainee,
        dataset,
        stop: StopSignals,
        *,
        step: int,
        elapsed: float,
        resumed: bool,
        progress: bool,
        callback=None,
    ):
        self.run, self.config, self.trainee, self.stop, self.callback = run, config, trainee, stop, callback
        self.step, self.elapsed, self.last_saved = step, elapsed, step
        self.fixed_image = traversal_image(dataset)
        try:
            self.log = TrainingLog(run, config, progress, start_step=step, resumed=resumed)
        except OSError as exc:
            if exc.errno not in FULL_DISK:
                raise
            raise disk_full(run, exc, step, step if resumed else 0) from None
        self.curve = CurveRecorder(run, config, dataset)
        self.divergence = DivergenceWatch(trainee.device)
        # steps/s is measured over the steps since the last log line, without the curve points' evaluations
        self.t0 = self.window_t = time.perf_counter()
        self.window_steps = 0

    def run_to_end(self) -> Run:
        """The loop; the run's status.json says how it ended (finished, interrupted, failed)."""
        try:
            while self.step < self.config.run.steps:
                logs = self.train_one_step()
                log_due, traversal_due = self.log_due(), self.traversal_due()
                self.watch(sync=log_due or traversal_due or self.curve.due(self.step))
                if log_due:
                    self.write_log(logs)
                if traversal_due:
                    self.log.traversal(self.step, self.trainee.model, self.fixed_image)
                if self.curve.due(self.step):
                    self.curve_point()
                if self.callback is not None:
                    self.callback(self.step, logs)
                if self.checkpoint_due():
                    self.checkpoint()
                if self.stop_requested():
                    return self.stop_here()
            self.run.set_status("finished", step=self.step, finished=timestamp())
            return self.run
        except TrainingDiverged:
            raise
        except KeyboardInterrupt:
            self.run.set_status("interrupted", step=self.last_saved, signal="SIGINT", exit_code=130)
            raise
        except OSError as exc:
            if exc.errno not in FULL_DISK:
                set_failed(self.run, self.last_saved, f"{type(exc).__name__}: {exc}")
                raise
            raise disk_full(self.run, exc, self.step, self.last_saved) from None
        except BaseException as exc:
            set_failed(self.run, self.last_saved, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.log.close()

    # -- the steps of one iteration, in the loop's order ----------------------------------------

    def train_one_step(self) -> dict[str, Any]:
        logs = self.trainee.train_step()
        self.step += 1
        self.window_steps += 1
        self.log.step()
        self.divergence.watch(logs, self.step)
        return logs

    def log_due(self) -> bool:
        return self.step % self.config.log.every == 0 or self.step == self.config.run.steps

    def traversal_due(self) -> bool:
        every = self.config.log.traversal_every
        return bool(every) and self.step % every == 0

    def watch(self, sync: bool) -> None:
        """Raise if the loss diverged. Only steps that read the device anyway (``sync``) wait for it: nothing of a
        diverged model is logged or saved, and no other step waits."""
        bad = self.divergence.found(sync=sync)
        if bad:
            raise diverged(self.run, bad, self.last_saved)

    def write_log(self, logs: dict[str, Any]) -> None:
        now = time.perf_counter()
        rate = self.window_steps / max(now - self.window_t, 1e-9)
        self.window_t, self.window_steps = now, 0
        objective = self.trainee.objective
        if hasattr(objective, "selection_rates"):
            logs = {**logs, **objective.selection_rates()}
        self.log.record(self.step, logs, rate, self.elapsed + now - self.t0, self.trainee.loader)

    def curve_point(self) -> None:
        point = self.curve.record(self.step, self.trainee.model, self.trainee.device)
        self.log.curve_point(point)
        self.window_t += point["seconds"]  # steps_per_s measures training alone

    def checkpoint_due(self) -> bool:
        every = self.config.log.checkpoint_every
        return self.step % every == 0 or self.step == self.config.run.steps or bool(self.stop.signum)

    def checkpoint(self) -> None:
        self.watch(sync=True)
        elapsed = self.elapsed + time.perf_counter() - self.t0
        state = self.trainee.checkpoint_state(self.config, self.step, elapsed)
        self.run.write_checkpoint(state, self.step, keep=self.config.log.keep_checkpoints)
        self.last_saved = self.step
        self.run.set_status("running", step=self.step)

    def stop_requested(self) -> bool:
        return bool(self.stop.signum) and self.step == self.last_saved and self.step < self.config.run.steps

    def stop_here(self) -> Run:
        name = signal.Signals(self.stop.signum).name
        self.run.set_status("interrupted", step=self.step, signal=name, exit_code=128 + self.stop.signum)
        self.log.message(
            f"{name}: stopped at step {self.step}; checkpoint written. Resume with "
            f"`nsvae train --resume {self.run.path}`"
        )
        return self.run
