"""What a training run tells as it goes: the progress bar, the console line, ``log.jsonl``, the traversal images and
the experiment trackers' scalars and pictures (TensorBoard, W&B, MLflow; :mod:`.trackers`)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import torch

from ..atomic import atomic_write
from ..config.schema import Config
from ..pictures import to_uint8
from .latents import traversal_grid
from .run import Run
from .trackers import curve_scalars, open_trackers, step_scalars


class TrainingLog:
    """The outputs of one training session of ``run`` (from ``start_step``; ``resumed``: a resume, whose trackers
    continue the run's tracker runs)."""

    def __init__(self, run: Run, config: Config, progress: bool, start_step: int, resumed: bool = False):
        from tqdm.auto import tqdm

        self.run = run
        self.config = config
        self.bar = tqdm(
            total=config.run.steps,
            initial=start_step,
            disable=not progress,
            unit="step",
            dynamic_ncols=True,
            desc=config.run.name,
        )
        self.trackers = open_trackers(run, config, start_step, resumed)

    def step(self) -> None:
        self.bar.update(1)  # the bar's numbers change at log steps only: reading them each step would wait for the GPU

    def message(self, text: str) -> None:
        if self.config.log.console or not self.bar.disable:
            self.bar.write(text, file=sys.stderr)

    def record(self, step: int, logs: dict[str, Any], rate: float, elapsed: float, loader) -> None:
        """One line of ``log.jsonl`` (the step's losses, the epoch, steps/s, seconds so far), the trackers' scalars
        and, with ``log.console``, the console line."""
        entry = {"step": step, "epoch": step * loader.batch_size / loader.size}
        entry.update(logs)
        self.bar.set_postfix(
            recon=f"{entry['recon']:.2f}", kl=f"{entry['kl']:.2f}", syn=f"{entry['synergy_proxy']:.3f}", refresh=False
        )
        entry.update(steps_per_s=rate, elapsed_s=elapsed)
        with open(self.run.log_path, "a", encoding="utf-8") as handle:
            handle.write(json_line(entry))
        self.trackers.scalars(step, step_scalars(entry, self.config.method))
        if self.config.log.console:
            total = self.config.run.steps
            parts = [f"step {step}/{total}", f"recon {logs['recon']:.3f}", f"kl {logs['kl']:.3f}"]
            parts.append(f"syn proxy {logs['synergy_proxy']:.4f}")
            if "best" in logs:
                parts.append(f"best {logs['best']} worst {logs['worst']}")
            parts.append(f"{rate:.2f} step/s")
            self.bar.write(" | ".join(parts), file=sys.stdout)

    def curve_point(self, entry: dict[str, Any]) -> None:
        self.trackers.scalars(entry["step"], curve_scalars(entry))
        if self.config.log.console:
            shown = ("factor_vae_score", "mig", "chen_mig", "synergy", "synergy.wms")
            parts = [f"{k} {entry['scores'][k]:.3f}" for k in shown if k in entry["scores"]]
            self.bar.write(f"eval step {entry['step']}: " + ", ".join(parts) + f" ({entry['seconds']:.0f} s)")

    def traversal(self, step: int, model, image: torch.Tensor) -> None:
        from PIL import Image

        grid = traversal_grid(model, image, n_values=self.config.log.traversal_values)
        self.trackers.image(step, "traversal", grid)
        path = self.run.traversal_dir / f"step_{step:07d}.png"
        picture = Image.fromarray(to_uint8(grid))
        atomic_write(path, lambda handle: picture.save(handle, format="PNG"))

    def close(self) -> None:
        self.bar.close()
        self.trackers.end_training()


def json_line(entry: dict[str, Any]) -> str:
    """``entry`` as one line of JSON; NaN and infinities as strings (JSON has none)."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        return v

    return json.dumps({k: clean(v) for k, v in entry.items()}, separators=(", ", ": ")) + "\n"
