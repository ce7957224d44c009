"""Experiment trackers: TensorBoard, Weights & Biases and MLflow behind one small interface.

A :class:`Tracker` takes what training logs (the scalars of each log step
and each learning-curve point, the traversal pictures) and, after an
evaluation, the run's final scores. TensorBoard is one tracker among them
(``log.tensorboard``); ``log.trackers`` adds W&B and MLflow, which get the
same scalars under the same names at the same steps (:func:`step_scalars`,
:func:`curve_scalars`), the resolved config, and the versions of nsvae and
torch and the git commit of nsvae's source.

Three rules (docs/training.md, "Experiment trackers"):

- **a tracker never stops training.** W&B and MLflow are copies of what the
  run directory holds; when one fails (a full disk, a server gone, a bad key,
  any exception in its library) the run warns once, in one line
  (:class:`nsvae.errors.NsvaeWarning`), and goes on without it. TensorBoard's
  events are the run's own files, so a failure there is the run's (a full
  disk stops training with its checkpoint intact, as any other write does);
- **offline first.** W&B runs offline (files in ``RUN/wandb/``, ``wandb
  sync`` later) unless ``WANDB_MODE`` or ``WANDB_API_KEY`` say otherwise,
  and falls back to offline when it cannot reach its server; MLflow writes to
  a local file store (``RUN/mlruns``, a sweep's runs share ``SWEEP/mlruns``)
  unless ``log.mlflow_uri`` or ``MLFLOW_TRACKING_URI`` name another;
- **one tracker run per nsvae run.** The tracker runs' ids are kept in
  ``RUN/trackers.json``: a resumed run and its later evaluations continue
  them. A sweep's or study's run is grouped by its sweep and setting
  (:func:`in_sweep`, which the sweep's worker sets).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import importlib.util
import json
import os
import subprocess
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_json_atomic
from ..errors import NsvaeWarning, UserError
from ..pictures import to_uint8
from .run import TRACKERS_FILE

__all__ = [
    "SweepMembership",
    "Tracker",
    "Trackers",
    "check_installed",
    "curve_scalars",
    "in_sweep",
    "log_evaluation",
    "open_trackers",
    "read_records",
    "step_scalars",
]

#: log.trackers name -> (the module it imports, the extra that installs it).
EXTRAS = {"wandb": ("wandb", "nsvae[wandb]"), "mlflow": ("mlflow", "nsvae[mlflow]")}
LABELS = {"tensorboard": "TensorBoard", "wandb": "W&B", "mlflow": "MLflow"}
#: Seconds W&B may take to reach its server before the run logs offline instead (W&B's own default: 90).
WANDB_ONLINE_TIMEOUT = 20.0


# -- what is logged ------------------------------------------------------------------------------


def step_scalars(entry: Mapping[str, Any], method: str) -> dict[str, float]:
    """The scalars of one ``log.jsonl`` entry under their tracker names: ``loss/recon``, ``loss/kl``,
    ``loss/total``, ``synergy_proxy``, ``kl_per_dim/z<j>``, the Non-Syn VAE's selection rates per latent, every
    other number as ``<method>/<key>`` and the speed as ``speed/steps_per_s`` (the step, epoch and elapsed time
    are not scalars of their own)."""
    out = {
        "loss/recon": entry["recon"],
        "loss/kl": entry["kl"],
        "loss/total": entry["loss"],
        "synergy_proxy": entry["synergy_proxy"],
    }
    out.update({f"kl_per_dim/z{j}": v for j, v in enumerate(entry["kl_per_dim"])})
    for key in ("best_rate", "worst_rate", "best_share", "worst_share"):
        out.update({f"{key}/z{j}": v for j, v in enumerate(entry.get(key, ()))})
    skip = {"step", "epoch", "recon", "kl", "loss", "synergy_proxy", "elapsed_s"}
    for key, value in entry.items():
        if key not in skip and isinstance(value, (int, float)) and not isinstance(value, bool):
            out["speed/steps_per_s" if key == "steps_per_s" else f"{method}/{key}"] = value
    return {k: float(v) for k, v in out.items()}


def curve_scalars(point: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of one learning-curve point (an ``eval_curve.jsonl`` line): ``eval/<score>`` and
    ``eval/seconds``."""
    out = {f"eval/{key}": float(value) for key, value in point["scores"].items()}
    out["eval/seconds"] = float(point["seconds"])
    return out


def final_scalars(scores: Mapping[str, float], protocol: str) -> dict[str, float]:
    """An evaluation's headline scores as ``final/<protocol>/<metric>``."""
    return {f"final/{protocol}/{name}": float(value) for name, value in scores.items()}


@functools.cache
def source_commit() -> str | None:
    """The git commit of nsvae's source when it runs from a git checkout (an editable install), else None.

    Asked of the package's own files, so a virtual environment inside some other repository does not report that
    repository's commit."""
    here = Path(__file__).resolve().parents[1]  # the package: src/nsvae in a checkout
    try:
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", "__init__.py"], cwd=here, capture_output=True, timeout=10
        )
        if tracked.returncode != 0:
            return None
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() or None if head.returncode == 0 else None


def versions() -> dict[str, str | None]:
    import torch

    from .. import __version__

    return {"nsvae": __version__, "torch": str(torch.__version__), "git_commit": source_commit()}


# -- which trackers, where -----------------------------------------------------------------------


def check_installed(names: tuple[str, ...] | list[str], mlflow_uri: str = "") -> None:
    """Refuse, before any work, a tracker whose library is not installed (one line naming the extra to install),
    and an MLflow database URI without the libraries MLflow's database store needs."""
    for name in names:
        module, extra = EXTRAS[name]
        if importlib.util.find_spec(module) is None:
            raise UserError(
                f'log.trackers names {name!r}, but {module} is not installed: pip install "{extra}" '
                f"(or remove {name!r} from log.trackers)"
            )
    if "mlflow" in names:
        uri = mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        database = uri.split(":", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql", "mysql", "mssql")
        missing = [m for m in ("sqlalchemy", "alembic") if importlib.util.find_spec(m) is None]
        if database and missing:
            raise UserError(
                f"the MLflow tracking URI {uri!r} is a database, which needs {' and '.join(missing)}: pip install "
                "sqlalchemy alembic (or the full mlflow), or leave log.mlflow_uri empty for the local file store"
            )


@dataclasses.dataclass(frozen=True)
class SweepMembership:
    """The sweep a run belongs to: its tracker run is grouped by sweep and setting."""

    sweep: str
    setting: str
    seed: int
    #: The sweep's directory: its runs share one local MLflow store there (``SWEEP/mlruns``).
    sweep_dir: Path


_MEMBERSHIP: contextvars.ContextVar[SweepMembership | None] = contextvars.ContextVar("nsvae_sweep", default=None)


@contextlib.contextmanager
def in_sweep(membership: SweepMembership | None) -> Iterator[None]:
    """The tracker runs started inside are grouped as runs of ``membership`` (None: not in a sweep)."""
    token = _MEMBERSHIP.set(membership)
    try:
        yield
    finally:
        _MEMBERSHIP.reset(token)


def read_records(run) -> dict[str, dict[str, Any]]:
    """``RUN/trackers.json``: tracker name -> what identifies its run there (empty when absent or unreadable)."""
    try:
        records = json.loads((Path(run.path) / TRACKERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(records, dict):
        return {}
    return {k: v for k, v in records.items() if isinstance(v, dict)}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- the interface -------------------------------------------------------------------------------


class Tracker:
    """One destination of a run's logs. Subclasses override what they keep; the rest does nothing."""

    name = ""
    #: A failure of an essential tracker is the run's failure; the others are turned off with a warning.
    essential = False

    def record(self) -> dict[str, Any] | None:
        """What ``trackers.json`` keeps to continue this tracker's run (None: nothing to keep)."""
        return None

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        pass

    def image(self, step: int, tag: str, picture: np.ndarray) -> None:
        """``picture``: ``(C, H, W)`` float in [0, 1]."""

    def final_scores(self, step: int, values: Mapping[str, float]) -> None:
        pass

    def close(self, status: Mapping[str, Any] | None) -> None:
        """``status``: the run's ``status.json`` at the end of training; None after an evaluation (the tracker
        run's state is left as training left it)."""


class TensorBoardTracker(Tracker):
    """``RUN/events``; on resume the events after the checkpoint are purged."""

    name = "tensorboard"
    essential = True

    def __init__(self, run, start_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.run = run
        self.writer = SummaryWriter(str(run.events_dir), purge_step=start_step + 1 if start_step else None)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def image(self, step: int, tag: str, picture: np.ndarray) -> None:
        self.writer.add_image(tag, picture, step)

    def close(self, status: Mapping[str, Any] | None) -> None:
        try:
            self.writer.close()
        except OSError as exc:  # a full disk: the events of the last steps are lost, nothing else
            warnings.warn(f"TensorBoard events of {self.run.path} not all written: {exc}", NsvaeWarning, 2)


def _wandb_mode() -> str | None:
    """Offline unless the environment says otherwise: WANDB_MODE as set; an API key in the environment: online.
    (A key stored by ``wandb login`` alone does not turn W&B online: set WANDB_MODE=online for that.)"""
    if os.environ.get("WANDB_MODE"):
        return None  # wandb reads it
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class WandbTracker(Tracker):
    """A W&B run with its files in ``RUN/wandb/``; every scalar is plotted against the run's own ``step``."""

    name = "wandb"

    def __init__(self, run, config, record: dict[str, Any] | None, membership: SweepMembership | None, training: bool):
        import wandb

        from ..config.schema import to_dict

        self.wandb = wandb
        if record is None:
            record = {
                "id": None,  # W&B gives the new run its id
                "project": config.log.project,
                "group": membership.sweep if membership else None,
                "job_type": membership.setting if membership else None,
                "name": Path(run.path).name,
            }
        options = {k: record.get(k) for k in ("id", "project", "group", "job_type", "name")}
        document = None  # an evaluation adds scores to the run; its config is the training's
        if training:
            document = {**to_dict(config), "versions": versions()}
            if membership is not None:
                document["sweep"] = {"name": membership.sweep, "setting": membership.setting, "seed": membership.seed}
        mode = _wandb_mode()
        # W&B's own lines (where its files are, how to sync them) show where nsvae prints its own.
        settings = {"console": "off", "silent": not (training and config.log.console)}
        try:
            self.wb = self._init(options, document, mode, settings, run.path)
        except Exception as exc:
            if mode != "online":
                raise
            warnings.warn(
                f"W&B could not start online ({_one_line(exc)}); logging offline in {Path(run.path) / 'wandb'}, "
                "`wandb sync` it later",
                NsvaeWarning,
                stacklevel=2,
            )
            self.wb = self._init(options, document, "offline", settings, run.path)
        self.wb.define_metric("step")
        self.wb.define_metric("*", step_metric="step")
        self._record = {**record, "id": self.wb.id}

    def _init(self, options, document, mode, settings, directory):
        wandb = self.wandb
        timeout = {"init_timeout": WANDB_ONLINE_TIMEOUT} if mode == "online" else {}
        return wandb.init(
            **options,
            dir=str(directory),
            config=document,
            mode=mode,
            resume="allow",
            reinit="create_new",
            allow_val_change=True,
            settings=wandb.Settings(**settings, **timeout),
        )

    def record(self) -> dict[str, Any]:
        return self._record

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self.wb.log({**values, "step": step})

    def image(self, step: int, tag: str, picture: np.ndarray) -> None:
        self.wb.log({tag: self.wandb.Image(to_uint8(picture), caption=f"step {step}"), "step": step})

    def final_scores(self, step: int, values: Mapping[str, float]) -> None:
        self.wb.summary.update({**values, "final/step": step})

    def close(self, status: Mapping[str, Any] | None) -> None:
        code = 0
        if status is not None and status.get("state") != "finished":
            code = int(status.get("exit_code", 1))
        self.wb.finish(exit_code=code)


def _mlflow_uri(config, run, membership: SweepMembership | None) -> str:
    """``log.mlflow_uri``, else ``$MLFLOW_TRACKING_URI``, else the local file store: the sweep's
    (``SWEEP/mlruns``) for a sweep's run, the run's own (``RUN/mlruns``) otherwise."""
    if config.log.mlflow_uri:
        return config.log.mlflow_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    where = Path(membership.sweep_dir) if membership is not None else Path(run.path)
    return (where / "mlruns").resolve().as_uri()


def _local_store(uri: str) -> Path | None:
    """The directory of a local file store URI (``file:///...`` or a plain path), else None (a server, a database,
    Databricks)."""
    from urllib.parse import unquote, urlparse

    if uri == "databricks" or uri.startswith(("databricks:", "databricks-uc")):
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if len(parsed.scheme) <= 1:  # no scheme, or a Windows drive letter
        return Path(uri)
    return None


class MlflowTracker(Tracker):
    """An MLflow run: params are the config's keys, metrics the scalars at their steps, traversals images by step."""

    name = "mlflow"
    STATUS = {"finished": "FINISHED", "interrupted": "KILLED"}

    def __init__(self, run, config, record: dict[str, Any] | None, membership: SweepMembership | None, training: bool):
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        from ..config.schema import flatten

        self._metric = Metric
        uri = record["tracking_uri"] if record else _mlflow_uri(config, run, membership)
        store = _local_store(uri)
        if store is not None:
            uri = store.resolve().as_uri()  # recorded absolute: a resume from another directory finds the same store
            # MLflow 3 keeps its file store in maintenance mode behind this switch; nsvae's default local store is
            # one (a database store needs SQLAlchemy and a one-off migration of several seconds per store).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        params = {
            k: "" if v is None else str(list(v) if isinstance(v, tuple) else v) for k, v in flatten(config).items()
        }
        if record is not None:
            self.run_id = record["run_id"]
            self._record = record
            if not training:
                return  # an evaluation adds its scores and leaves the run's params and state as training left them
            # Params are immutable in MLflow: a key a resume changed (run.steps) is kept as a tag with its new value.
            logged = self.client.get_run(self.run_id).data.params
            changed = [RunTag(f"config.{k}", v) for k, v in params.items() if k in logged and logged[k] != v]
            new = [Param(k, v) for k, v in params.items() if k not in logged]
            self._log_batches(params=new, tags=changed)
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = membership.sweep if membership is not None else config.log.project
        experiment_id = self._experiment(experiment, store)
        known = versions()
        tags = {"nsvae.run_dir": str(Path(run.path).resolve()), "nsvae.version": known["nsvae"]}
        tags["torch.version"] = known["torch"]
        if known["git_commit"]:
            tags["mlflow.source.git.commit"] = known["git_commit"]
        if membership is not None:
            tags.update(sweep=membership.sweep, setting=membership.setting, seed=str(membership.seed))
        created = self.client.create_run(experiment_id, run_name=Path(run.path).name, tags=tags)
        self.run_id = created.info.run_id
        self._log_batches(params=[Param(k, v) for k, v in params.items()])
        self._record = {"run_id": self.run_id, "experiment_id": experiment_id, "experiment": experiment}
        self._record["tracking_uri"] = uri

    def _experiment(self, name: str, store: Path | None) -> str:
        """The id of experiment ``name``, created if new; a local store's runs (a sweep's workers) create it
        one at a time, so that a sweep's runs never make two experiments of one name."""
        from ..locks import FileLock

        def get_or_create() -> str:
            found = self.client.get_experiment_by_name(name)
            return found.experiment_id if found is not None else self.client.create_experiment(name)

        if store is None:
            return get_or_create()
        store.mkdir(parents=True, exist_ok=True)
        with FileLock(store / ".nsvae-experiments.lock").hold():
            return get_or_create()

    def _log_batches(self, params=(), tags=(), metrics=()) -> None:
        """MLflow takes at most 100 params and 1000 metrics in one batch."""
        params, metrics = list(params), list(metrics)
        if tags:
            self.client.log_batch(self.run_id, tags=list(tags))
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def record(self) -> dict[str, Any]:
        return self._record

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self._log_batches(metrics=[self._metric(k, float(v), now, int(step)) for k, v in values.items()])

    def image(self, step: int, tag: str, picture: np.ndarray) -> None:
        self.client.log_image(self.run_id, to_uint8(picture), key=tag, step=int(step))

    def final_scores(self, step: int, values: Mapping[str, float]) -> None:
        self.scalars(step, values)

    def close(self, status: Mapping[str, Any] | None) -> None:
        if status is not None:
            self.client.set_terminated(self.run_id, self.STATUS.get(status.get("state"), "FAILED"))


TRACKER_CLASSES = {"wandb": WandbTracker, "mlflow": MlflowTracker}


# -- the run's trackers together -------------------------------------------------------------------


class Trackers:
    """The trackers of one run, called together; a non-essential one that raises is turned off with one warning."""

    def __init__(self, run, trackers: list[Tracker]):
        self.run = run
        self.active = list(trackers)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.active]

    def _each(self, method: str, *args: Any) -> None:
        for tracker in list(self.active):
            if tracker.essential:
                getattr(tracker, method)(*args)
                continue
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:  # noqa: BLE001 - any failure of a tracker's library turns that tracker off
                self.active.remove(tracker)
                warnings.warn(
                    f"{LABELS[tracker.name]} failed ({_one_line(exc)}); {self.run.path} goes on without it, "
                    "nothing else of the run is affected",
                    NsvaeWarning,
                    stacklevel=3,
                )

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self._each("scalars", step, values)

    def image(self, step: int, tag: str, picture: np.ndarray) -> None:
        self._each("image", step, tag, picture)

    def final_scores(self, step: int, values: Mapping[str, float]) -> None:
        self._each("final_scores", step, values)

    def close(self, status: Mapping[str, Any] | None = None) -> None:
        """End every tracker's session (``status``: the run's status.json at the end of training)."""
        self._each("close", status)
        self.active = []

    def end_training(self) -> None:
        """End the session of a training, each tracker run marked with the state training left the run in
        (finished, interrupted, failed)."""
        try:
            status = self.run.status()
        except UserError:  # a status.json that is not an object: called while an error propagates, never mask it
            status = {}
        self.close(status)


def _start_external(run, config, names, records, training: bool) -> list[Tracker]:
    """Start (or continue, from ``records``) the trackers ``names``; one that cannot start is left out with one
    warning."""
    started: list[Tracker] = []
    membership = _MEMBERSHIP.get()
    without = f"{run.path} trains without it" if training else f"the final scores of {run.path} are not added to it"
    for name in names:
        if importlib.util.find_spec(EXTRAS[name][0]) is None:
            warnings.warn(
                f'{LABELS[name]} is not installed here (pip install "{EXTRAS[name][1]}"); {without}',
                NsvaeWarning,
                stacklevel=3,
            )
            continue
        try:
            started.append(TRACKER_CLASSES[name](run, config, records.get(name), membership, training))
        except Exception as exc:  # noqa: BLE001 - a tracker that cannot start never stops the run
            warnings.warn(
                f"{LABELS[name]} could not start ({_one_line(exc)}); {without}",
                NsvaeWarning,
                stacklevel=3,
            )
    return started


def open_trackers(run, config, start_step: int, resumed: bool) -> Trackers:
    """The trackers of a training session: TensorBoard (``log.tensorboard``) and ``log.trackers``. A resumed run
    continues the tracker runs ``trackers.json`` records; their ids are written there (atomically) at once."""
    trackers: list[Tracker] = []
    if config.log.tensorboard:
        trackers.append(TensorBoardTracker(run, start_step))
    if config.log.trackers:
        records = read_records(run) if resumed else {}
        external = _start_external(run, config, config.log.trackers, records, training=True)
        _write_records(run, records, external)
        trackers += external
    return Trackers(run, trackers)


def _write_records(run, records: dict[str, dict[str, Any]], trackers: list[Tracker]) -> None:
    updated = {**records, **{t.name: t.record() for t in trackers if t.record() is not None}}
    if updated == records:
        return
    try:
        write_json_atomic(Path(run.path) / TRACKERS_FILE, updated)
    except OSError as exc:
        warnings.warn(
            f"cannot write {Path(run.path) / TRACKERS_FILE} ({exc.strerror or exc}): a resume of this run will start "
            "new tracker runs",
            NsvaeWarning,
            stacklevel=3,
        )


def log_evaluation(run, step: int, scores: Mapping[str, float], protocol: str) -> None:
    """Add an evaluation's headline scores (``final/<protocol>/<metric>``) to the run's tracker runs, those
    ``trackers.json`` records; never raises (a tracker that fails is skipped with one warning)."""
    try:
        config = run.config
        records = read_records(run)
    except (UserError, OSError):
        return
    names = [name for name in config.log.trackers if name in records]
    if not names or not scores:
        return
    trackers = Trackers(run, _start_external(run, config, names, records, training=False))
    trackers.final_scores(step, final_scalars(scores, protocol))
    trackers.close(None)
