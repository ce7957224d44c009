"""Running a sweep: planning what each run needs, then training and evaluating them locally or on Ray.

:func:`run_sweep` is the library core of ``nsvae sweep``:

1. the sweep file is expanded (:func:`nsvae.experiments.sweep.load_sweep`) and
   copied to ``SWEEP_DIR/sweep.toml``; a run directory that already exists
   must hold the same config as the file now asks for (else nothing starts);
2. each run is planned from its directory (:func:`plan_run`): finished and
   evaluated runs are skipped, interrupted ones resumed from their latest
   checkpoint, finished ones only evaluated, failed ones skipped unless
   ``retry_failed``;
3. the runs to do go to an executor, which calls :func:`execute` for each one
   (train, then evaluate) in its own process: :func:`run_local` (at most
   ``workers`` processes here, a fresh one per run, so that a crash or an
   out-of-memory kill of one run cannot stop the others) or :func:`run_ray`
   (each run a Ray task with the sweep's CPU/GPU resources);
4. each run's state is its own ``status.json`` (:mod:`.run_state`: one record
   per run, read by the planning above); the driver keeps in
   ``SWEEP_DIR/sweep.json`` (written atomically by this one process) only the
   sweep's bookkeeping: each run's setting, seed, attempts and times.

A failing run (an exception in training or evaluation, a dead worker) is
recorded with its error in its own ``status.json``; the others go on. SIGINT
or SIGTERM to the driver asks every running run to stop after its current step
with a checkpoint; starting the sweep again resumes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..clock import timestamp
from ..config.schema import IMAGE_DATASETS, Config, flatten, from_dict, is_incidental, to_dict
from ..cpus import usable_cpus
from ..errors import UserError
from ..train.trainer import StopSignals
from .run_state import ACTIONS, action_for, read_run_state, sweep_state
from .sweep import (
    LOGS_DIR,
    RUNS_DIR,
    SPEC_FILE,
    EvaluationSpec,
    PlannedRun,
    Sweep,
    load_sweep,
    read_state,
    write_state,
)

#: The lock file of a sweep directory, held by the one process that runs the sweep.
SWEEP_LOCK = ".lock"

__all__ = ["Task", "execute", "metrics_to_evaluate", "plan_run", "run_local", "run_ray", "run_sweep", "sweep_dir_for"]


@dataclasses.dataclass(frozen=True)
class Task:
    """Everything a worker needs to do one run (plain data: it is pickled to processes and Ray tasks)."""

    name: str
    run_dir: str
    log_path: str
    config: dict[str, Any]
    evaluation: dict[str, Any]
    #: CPU threads for torch, BLAS and the metrics in this run.
    threads: int
    #: Overrides run.device for this run (None: the config's).
    device: str | None = None


def sweep_dir_for(sweep: Sweep, source: str | os.PathLike, out: str | os.PathLike | None) -> Path:
    """Where a sweep lives: ``out``, the directory given as ``source``, or ``runs/<sweep name>``."""
    if out is not None:
        return Path(out)
    if Path(source).is_dir():
        return Path(source)
    return Path("runs") / sweep.name


# -- planning ----------------------------------------------------------------------------------------


def _comparable(config: Config) -> dict[str, Any]:
    """The keys that decide what a run computes (its steps excluded: a longer sweep extends a run)."""
    return {k: v for k, v in flatten(config).items() if k not in ("data.seed", "run.steps") and not is_incidental(k)}


def check_existing(planned: PlannedRun, run_dir: Path) -> None:
    """Refuse to touch a run directory whose config is not the one the sweep file now asks for."""
    from ..train.run import Run

    run = Run(run_dir)
    if not run.exists():
        return
    stored, wanted = _comparable(run.config), _comparable(planned.config)
    # The run's config holds its data seed resolved (unset: the run's seed); compare the resolved values.
    stored["data.seed"], wanted["data.seed"] = run.config.data_seed, planned.config.data_seed
    diff = [k for k in wanted if stored.get(k) != wanted[k]]
    if diff:
        key = diff[0]
        raise UserError(
            f"{run_dir} holds a run with {key} = {stored.get(key)!r} but the sweep file now asks for {wanted[key]!r}; "
            "use another sweep directory (--out) or delete that run"
        )


def metrics_to_evaluate(run, evaluation: EvaluationSpec | dict[str, Any]) -> list[str]:
    """The metrics of ``evaluation`` that ``run``'s eval.json lacks for its latest checkpoint, protocol, seed and
    protocol parameters (all of them when eval.json is of another step; none when evaluation is off or the
    dataset has no ground-truth factors)."""
    from ..evaluation import read_eval
    from ..metrics.protocols import resolve

    spec = evaluation if isinstance(evaluation, dict) else evaluation.to_dict()
    if not spec["enabled"] or run.config.data.dataset in IMAGE_DATASETS:
        return []
    checkpoints = run.checkpoints()
    current = read_eval(run.path) if checkpoints else None
    if not current or current.get("step") != checkpoints[-1][0]:
        return list(spec["metrics"])
    entry = current.get("results", {}).get(spec["protocol"])
    if not entry or entry.get("seed") != spec["seed"]:
        return list(spec["metrics"])
    missing = []
    for metric in spec["metrics"]:
        stored = entry.get("metrics", {}).get(metric)
        wanted = resolve(metric, spec["protocol"], spec["overrides"].get(metric))
        if not isinstance(stored, dict) or not _same_protocol(stored.get("protocol"), wanted):
            missing.append(metric)
    return missing


def _same_protocol(stored: Any, wanted: dict[str, Any]) -> bool:
    """Whether a metric's recorded protocol is ``wanted``; a wanted ``"auto"`` matches what the metric chose for it
    (Chen's MIG records the factors ``exclude_factors = "auto"`` left out)."""
    if not isinstance(stored, dict) or set(stored) != set(wanted):
        return False
    return all(stored[k] == v or v == "auto" for k, v in wanted.items())


def evaluation_needed(run, evaluation: EvaluationSpec | dict[str, Any]) -> bool:
    """Whether ``run`` lacks a metric of ``evaluation`` (see :func:`metrics_to_evaluate`)."""
    return bool(metrics_to_evaluate(run, evaluation))


def plan_run(planned: PlannedRun, run_dir: Path, evaluation: EvaluationSpec, retry_failed: bool = False) -> str:
    """What ``planned`` needs, from its directory's one record (:mod:`.run_state`): one of :data:`ACTIONS`."""
    from ..train.run import Run

    state = read_run_state(run_dir)
    return action_for(
        state, planned.config.run.steps, lambda: evaluation_needed(Run(run_dir), evaluation), retry_failed
    )


# -- one run, in a worker ----------------------------------------------------------------------------


@contextlib.contextmanager
def _output_to(path: str):
    """Send this process's stdout and stderr (Python's and C's) to ``path`` while a run works, then restore them."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _now() -> str:
    return timestamp()


def execute(task: Task) -> dict[str, Any]:
    """Train (or resume) and evaluate one run; never raises: returns its record for ``sweep.json``.

    The record: ``state`` (finished, failed, interrupted), ``phase`` (train or
    evaluate, where it ended), ``error``, ``step``, ``evaluated``, ``seconds``.
    """
    started = time.perf_counter()
    with _output_to(task.log_path):
        print(f"== {_now()} nsvae sweep: {task.name} in {task.run_dir} ({task.threads} thread(s))", flush=True)
        record = _execute(task)
        print(f"== {_now()} nsvae sweep: {task.name}: {record['state']} {record.get('error', '')}", flush=True)
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def _execute(task: Task) -> dict[str, Any]:
    from ..train import Run

    run_dir = Path(task.run_dir)
    config = from_dict(task.config)
    if task.device is not None:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, device=task.device))
    record: dict[str, Any] = {"state": "failed", "phase": "train"}
    run = Run(run_dir)
    try:
        # The run's lock is held from the decision to its end: nobody else restarts, deletes or trains it meanwhile.
        holding = run.lock()
        holding.__enter__()
    except BaseException as exc:  # noqa: BLE001 - another process trains it: recorded, the others go on
        return {**record, "error": _error_line(exc), "step": run.status().get("step")}
    try:
        return _execute_locked(task, run, config, record)
    finally:
        holding.__exit__(None, None, None)


def _execute_locked(task: Task, run, config: Config, record: dict[str, Any]) -> dict[str, Any]:
    import torch
    from threadpoolctl import threadpool_limits

    from ..train import Run, resume, start

    run_dir = run.path
    torch.set_num_threads(max(1, task.threads))
    with threadpool_limits(limits=max(1, task.threads)):
        try:
            status = run.status()
            finished = status.get("state") == "finished" and run.exists()
            done = run.checkpoints()[-1][0] if run.checkpoints() else 0
            if not finished or done < config.run.steps:
                if run.exists() and run.checkpoints():
                    run = resume(run, config.run.steps, device=task.device, progress=False)
                else:  # a start that never reached its first checkpoint: start() clears what it wrote
                    run = start(config, run_dir, progress=False)
                if run.state != "finished":
                    return {**record, "state": run.state or "interrupted", "step": run.status().get("step")}
            record.update(step=run.status().get("step"), phase="evaluate")
        except KeyboardInterrupt:
            return {**record, "state": "interrupted", "step": Run(run_dir).status().get("step")}
        except BaseException as exc:  # noqa: BLE001 - any failure of one run is recorded, never propagated
            traceback.print_exc()
            error = _error_line(exc)
            run = Run(run_dir)
            if run.status().get("state") != "failed":
                run.set_status("failed", step=run.status().get("step", 0), error=error)
            return {**record, "error": error, "step": run.status().get("step")}
        try:
            record["evaluated"] = _evaluate(run, task)
        except KeyboardInterrupt:
            return {**record, "state": "interrupted"}
        except BaseException as exc:  # noqa: BLE001
            traceback.print_exc()
            error = _error_line(exc)
            run.set_status("finished", evaluation_error=error)
            return {**record, "error": error}
    if run.status().get("evaluation_error"):
        run.set_status("finished", evaluation_error=None)
    return {**record, "state": "finished"}


def _evaluate(run, task: Task) -> bool:
    from ..evaluation import evaluate_run

    spec = task.evaluation
    missing = metrics_to_evaluate(run, spec)
    if not missing:
        return bool(spec["enabled"]) and run.config.data.dataset not in IMAGE_DATASETS
    # Only what eval.json lacks: eval.json keeps the other metrics of the same step, protocol and seed.
    evaluate_run(
        run,
        metrics=missing,
        protocol=spec["protocol"],
        seed=spec["seed"],
        device=task.device or run.config.run.device,
        overrides={k: dict(v) for k, v in spec["overrides"].items()},
        progress=False,
        n_jobs=max(1, task.threads),
    )
    return True


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# -- executors ---------------------------------------------------------------------------------------

Event = Callable[[str, Task, dict[str, Any] | None], None]


class _Stop(StopSignals):
    """SIGINT/SIGTERM in the driver: stop starting runs and ask the running ones to checkpoint and stop.

    The trainer's :class:`~nsvae.train.trainer.StopSignals` (handlers in the main thread only, restored on
    exit), with a message, a callback, and any second signal abandoning the runs.
    """

    def __init__(self, on_stop: Callable[[], None]):
        super().__init__()
        self.on_stop = on_stop

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"nsvae sweep: {signal.Signals(signum).name}: stopping the running runs at their next step "
            "(again to abandon them)",
            file=sys.stderr,
            flush=True,
        )
        self.on_stop()


def _child(task: Task, conn, lifeline=None) -> None:
    """A local worker process: one run, its record sent back on ``conn``.

    ``lifeline``: the read end of a pipe whose only write end the driver
    holds. When the driver dies, even by SIGKILL, the pipe reads end-of-file
    and this run gets a SIGTERM: it stops at its next step with a checkpoint,
    so no worker trains on as an orphan (the forkserver, this process's
    parent, stays alive as long as any of its children does, so the parent's
    death cannot be the signal).
    """
    # The terminal's Ctrl-C reaches the whole process group; the driver forwards a SIGTERM, which the trainer
    # handles (checkpoint, then stop). Ignoring SIGINT here keeps a double signal from abandoning the step.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reported = threading.Event()
    if lifeline is not None:
        threading.Thread(target=_watch_driver, args=(lifeline, reported), daemon=True, name="nsvae-lifeline").start()
    record = execute(task)
    reported.set()
    with contextlib.suppress(OSError):  # the driver is gone: the run's own files say how it ended
        conn.send(record)
        conn.close()


def _watch_driver(lifeline, reported: threading.Event) -> None:
    """SIGTERM this worker when the driver is gone, unless its run has already ended.

    The driver closes the lifeline as soon as it has the record, while this
    process may still be running its exit handlers; a SIGTERM then would kill
    it before multiprocessing unlinks the semaphores it made (tqdm's lock),
    and the resource tracker would report them as leaked.
    """
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()  # the driver never writes: this returns only when it is gone
    if not reported.is_set():
        os.kill(os.getpid(), signal.SIGTERM)


_PRELOAD = ["nsvae.experiments.executors", "nsvae.train", "nsvae.evaluation", "nsvae.metrics", "torch._dynamo"]


def run_local(tasks: Sequence[Task], workers: int, on_event: Event) -> int | None:
    """Run ``tasks`` in at most ``workers`` processes, a fresh process per run; returns the stopping signal or None."""
    from multiprocessing.connection import wait

    from ..processes import start_context

    # "forkserver": each run forks from a clean server process (no torch thread pools or locks inherited from
    # the driver) that has imported torch and nsvae once, so a run starts in milliseconds, not seconds. Windows
    # has no forkserver: there each run is a fresh "spawn" process (the task and pipes are pickled either way).
    ctx = start_context("forkserver")
    if ctx.get_start_method() == "forkserver":
        # torch._dynamo: imported lazily by the first Adam (4 s here); a failed preload is skipped by multiprocessing.
        ctx.set_forkserver_preload(_PRELOAD)
    pending = list(tasks)
    active: dict[Any, tuple[Any, Task]] = {}
    lifelines: dict[Any, Any] = {}  # the write ends of the workers' lifelines (see _child)

    def stop_all() -> None:
        for process, _ in active.values():
            with contextlib.suppress(OSError, ValueError):
                if process.pid:
                    os.kill(process.pid, signal.SIGTERM)

    try:
        with _Stop(stop_all) as stop:
            while pending or active:
                while pending and len(active) < workers and stop.signum is None:
                    task = pending.pop(0)
                    receive, send = ctx.Pipe(duplex=False)
                    lifeline, keep_alive = ctx.Pipe(duplex=False)
                    args = (task, send, lifeline)
                    process = ctx.Process(target=_child, args=args, name=f"nsvae-sweep {task.name}")
                    process.start()
                    send.close()
                    lifeline.close()
                    active[receive] = (process, task)
                    lifelines[receive] = keep_alive
                    on_event("started", task, None)
                if not active:
                    break
                for conn in wait(list(active), timeout=1.0):
                    process, task = active.pop(conn)
                    try:
                        record = conn.recv()
                    except (EOFError, OSError):
                        record = None
                    conn.close()
                    lifelines.pop(conn).close()
                    process.join()
                    if record is None:
                        record = _dead_worker(process.exitcode, stop.signum)
                    on_event("done", task, record)
            return stop.signum
    finally:
        for process, _ in active.values():  # abandoned (a second signal): do not leave them training
            with contextlib.suppress(OSError, ValueError):
                process.kill()
                process.join()


def _dead_worker(exitcode: int | None, stopping: int | None) -> dict[str, Any]:
    if stopping is not None:
        return {"state": "interrupted", "phase": "evaluate", "error": ""}
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        error = f"the worker process was killed by {name}{hint}"
    else:
        error = f"the worker process exited with status {exitcode} before reporting"
    return {"state": "failed", "phase": "train", "error": error}


def _ray_execute(task: Task) -> dict[str, Any]:
    return execute(task)


def run_ray(
    tasks: Sequence[Task],
    address: str,
    on_event: Event,
    cpus: float,
    gpus: float,
    local_cpus: int | None = None,
) -> int | None:
    """Run each task as a Ray task asking for ``cpus``/``gpus``; ``address``: ``auto``, ``local`` or a cluster's.

    ``local`` starts a private Ray instance on this machine (``local_cpus``
    CPUs); ``auto`` joins the running cluster (``RAY_ADDRESS`` or ``ray start``
    on this node); anything else is passed to ``ray.init(address=...)``. Run
    directories must be on a file system every node shares.
    """
    try:
        import ray
    except ImportError:
        raise UserError("Ray is not installed; install the extra: pip install 'nsvae[ray]'") from None
    started_here = not ray.is_initialized()
    # ray.init installs its own SIGTERM handler in the driver and leaves it after ray.shutdown: put ours back then.
    previous_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address == "local":
            kwargs["num_cpus"] = local_cpus or usable_cpus()
            kwargs["num_gpus"] = _gpus_here()
        else:
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            _restore_handlers(previous_handlers)
            reason = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"cannot reach a Ray cluster at {address!r}: {reason}; start one (ray start --head) or use --ray local"
            ) from None
    remote = ray.remote(_ray_execute).options(num_cpus=cpus, num_gpus=gpus, max_retries=1)
    refs: dict[Any, Task] = {}

    def stop_all() -> None:
        for ref in list(refs):
            with contextlib.suppress(Exception):
                ray.cancel(ref)

    try:
        with _Stop(stop_all) as stop:
            for task in tasks:
                refs[remote.remote(task)] = task
                on_event("submitted", task, None)
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
                for ref in done:
                    task = refs.pop(ref)
                    try:
                        record = ray.get(ref)
                    except (ray.exceptions.TaskCancelledError, KeyboardInterrupt):
                        record = {"state": "interrupted", "phase": "train", "error": ""}
                    except Exception as exc:  # a worker or node lost twice: recorded, the others go on
                        record = {"state": "failed", "phase": "train", "error": _error_line(exc)}
                    on_event("done", task, record)
            return stop.signum
    finally:
        if started_here:
            ray.shutdown()
            _restore_handlers(previous_handlers)


def _restore_handlers(handlers: dict) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread (and Ray only sets them there)
    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)


def _gpus_here() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # pragma: no cover - a broken CUDA setup counts as none
        return 0


# -- the driver --------------------------------------------------------------------------------------


@dataclasses.dataclass
class SweepOutcome:
    """What :func:`run_sweep` did: the sweep directory, each run's action, and the final counts."""

    sweep_dir: Path
    actions: dict[str, str]
    states: dict[str, str]
    signum: int | None = None

    @property
    def failed(self) -> list[str]:
        return [name for name, state in self.states.items() if state == "failed"]


def plan_sweep(sweep: Sweep, sweep_dir: Path, retry_failed: bool = False) -> dict[str, str]:
    """Each run's action (:data:`ACTIONS`), after checking existing run directories against the file."""
    runs_dir = sweep_dir / RUNS_DIR
    actions = {}
    for planned in sweep.runs:
        check_existing(planned, runs_dir / planned.name)
    for planned in sweep.runs:
        actions[planned.name] = plan_run(planned, runs_dir / planned.name, sweep.evaluation, retry_failed)
    return actions


def run_sweep(
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    workers: int = 1,
    ray: str | None = None,
    retry_failed: bool = False,
    device: str | None = None,
    only: Sequence[str] | None = None,
    echo: Callable[[str], None] | None = print,
    on_run_end: Callable[[Task, dict[str, Any]], None] | None = None,
) -> SweepOutcome:
    """Run (or continue) the sweep ``source`` in ``out`` (default ``runs/<sweep name>``); see the module doc.

    ``workers``: local processes at once (torch threads per run: cores // workers,
    at least 1); ``ray``: ``"auto"``, ``"local"`` or a cluster address, instead of
    local processes; ``device`` overrides every run's ``run.device``;
    ``only``: run just these run names; ``on_run_end(task, record)`` is called in
    this process as each run ends, after ``sweep.json`` records it (a study
    exports the run's files there).
    """
    sweep = load_sweep(source)
    sweep_dir = sweep_dir_for(sweep, source, out)
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    names = [r.name for r in sweep.runs]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise UserError(f"the sweep has no run named {unknown[0]!r}; see the names with --dry-run")
    sweep_lock = _hold_sweep_dir(sweep_dir)
    options = _Options(workers, ray, retry_failed, device, tuple(only or ()), echo or (lambda text: None), on_run_end)
    try:
        return _run_sweep_locked(sweep, source, sweep_dir, options)
    finally:
        sweep_lock.release()


def _hold_sweep_dir(sweep_dir: Path):
    """Take the sweep directory's lock (one sweep process per directory) or say who holds it."""
    from ..locks import FileLock

    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(sweep_dir / SWEEP_LOCK)
    if not lock.acquire(blocking=False):
        raise UserError(
            f"sweep directory {sweep_dir} is being run by another process ({lock.describe_holder()}); one sweep "
            "process per directory: wait for it to finish (or stop it with kill -TERM, and run this command again)"
        )
    return lock


def sweep_busy(sweep_dir: Path) -> str:
    """Who runs the sweep in ``sweep_dir`` now ('' if nobody)."""
    from ..locks import FileLock

    lock = FileLock(sweep_dir / SWEEP_LOCK)
    return lock.describe_holder() if lock.busy() else ""


@dataclasses.dataclass(frozen=True)
class _Options:
    """How :func:`run_sweep` was asked to run (see its docstring)."""

    workers: int
    ray: str | None
    retry_failed: bool
    device: str | None
    only: tuple[str, ...]
    echo: Callable[[str], None]
    on_run_end: Callable[[Task, dict[str, Any]], None] | None


def _bookkeeping(sweep: Sweep, sweep_dir: Path) -> dict[str, Any]:
    """``sweep.json`` brought up to the file: the sweep's own fields, and per run its setting, seed and values (its
    attempts and times are kept). No run's state is kept there: that is the run's own status.json."""
    state = read_state(sweep_dir)
    state.update(
        name=sweep.name,
        spec=SPEC_FILE,
        base_dir=sweep.base_dir,
        evaluation=sweep.evaluation.to_dict(),
        resources={"cpus": sweep.cpus, "gpus": sweep.gpus},
    )
    state.setdefault("created", _now())
    state["order"] = [r.name for r in sweep.runs]  # sweep.json is written with sorted keys: this keeps the order
    old = state.get("runs", {})
    state["runs"] = {}
    for planned in sweep.runs:  # runs no longer in the file are forgotten (their directories are kept)
        kept = old.get(planned.name, {})
        entry = {k: kept[k] for k in ("attempts", "started", "ended", "seconds") if k in kept}
        entry.setdefault("attempts", 0)
        entry.update(setting=planned.setting, seed=planned.seed, values=dict(planned.values))
        state["runs"][planned.name] = entry
    return state


class _Driver:
    """The driver's side of one ``run_sweep``: it counts the runs that end, keeps ``sweep.json``'s bookkeeping and
    prints one line per event. A run's state is never written here but by the run (or :func:`_record_failure`)."""

    def __init__(self, sweep_dir: Path, state: dict[str, Any], actions: dict[str, str], total: int, options: _Options):
        self.sweep_dir, self.state, self.actions, self.total, self.options = sweep_dir, state, actions, total, options
        self.ended = 0
        self.begun: dict[str, float] = {}
        #: The runs of this invocation whose worker reported a failure (a run another process holds included).
        self.failed: set[str] = set()

    def __call__(self, kind: str, task: Task, record: dict[str, Any] | None) -> None:
        entry = self.state["runs"][task.name]
        say = self.options.echo
        if kind in ("started", "submitted"):
            self.begun[task.name] = time.perf_counter()
            entry.update(started=_now(), attempts=int(entry.get("attempts", 0)) + 1)
            entry.pop("ended", None)
            say(f"[{self.ended}/{self.total}] {kind} {task.name} ({self.actions[task.name]})")
            write_state(self.sweep_dir, self.state)
            return
        assert record is not None
        self.ended += 1
        if record.get("state") == "failed":
            record = _record_failure(task, record)
            self.failed.add(task.name)
        seconds = record.get("seconds", time.perf_counter() - self.begun.get(task.name, time.perf_counter()))
        entry.update(ended=_now(), seconds=round(seconds, 1))
        if record.get("state") == "failed":
            detail = f": {record.get('error')} (log: {task.log_path})"
        else:
            detail = f" at step {record.get('step')}" if record.get("step") is not None else ""
        say(f"[{self.ended}/{self.total}] {record.get('state')} {task.name}{detail} in {_duration(seconds)}")
        write_state(self.sweep_dir, self.state)
        if self.options.on_run_end is not None:
            self.options.on_run_end(task, {**record, "seconds": seconds})


def _run_sweep_locked(sweep: Sweep, source, sweep_dir: Path, options: _Options) -> SweepOutcome:
    names = [r.name for r in sweep.runs]
    actions = plan_sweep(sweep, sweep_dir, options.retry_failed)
    _write_spec(sweep, sweep_dir, source)
    state = _bookkeeping(sweep, sweep_dir)
    write_state(sweep_dir, state)
    runs_dir = sweep_dir / RUNS_DIR

    # With `only` (a study's batch, --only) the counts are of the selected runs: the others are not touched.
    selected = [n for n in names if not options.only or n in options.only]
    todo = [r for r in sweep.runs if r.name in selected and actions[r.name] in ("train", "resume", "evaluate")]
    counts = {a: sum(1 for name in selected if actions[name] == a) for a in ACTIONS}
    scope = f"{len(names)} runs" if len(selected) == len(names) else f"{len(selected)} of its {len(names)} runs"
    say = options.echo
    say(f"nsvae sweep: {sweep.name}: {scope} in {sweep_dir} - " + ", ".join(f"{n} {a}" for a, n in counts.items() if n))
    if counts["failed"] and not options.retry_failed:
        say(f"nsvae sweep: {counts['failed']} failed run(s) skipped; --retry-failed runs them again")
    threads = max(1, usable_cpus() // options.workers) if options.ray is None else max(1, int(sweep.cpus))
    tasks = [
        Task(
            name=r.name,
            run_dir=str((runs_dir / r.name).resolve()),
            log_path=str((sweep_dir / LOGS_DIR / f"{r.name}.log").resolve()),
            config=to_dict(r.config),
            evaluation=sweep.evaluation.to_dict(),
            threads=threads,
            device=options.device,
        )
        for r in todo
    ]
    driver = _Driver(sweep_dir, state, actions, len(tasks), options)
    signum = None
    if tasks and options.ray is None:
        signum = run_local(tasks, options.workers, driver)
    elif tasks:
        local_cpus = options.workers if options.workers > 1 else None
        signum = run_ray(tasks, options.ray, driver, sweep.cpus, sweep.gpus, local_cpus=local_cpus)
    # Each run's state, from its own record; a worker that reported a failure without one (its run held by another
    # process) counts as failed for this invocation.
    states = {name: sweep_state(read_run_state(runs_dir / name)) for name in names}
    states.update({name: "failed" for name in driver.failed})
    return SweepOutcome(sweep_dir=sweep_dir, actions=actions, states=states, signum=signum)


def _record_failure(task: Task, record: dict[str, Any]) -> dict[str, Any]:
    """Make the run's own status say it failed where its worker could not (killed, lost with its node), so that
    the next sweep skips it until --retry-failed, as it does the runs that recorded their own failure."""
    from ..train.run import Run

    run = Run(task.run_dir)
    status = run.status()
    if status.get("state") == "failed" or status.get("evaluation_error"):
        return record
    error = record.get("error") or "failed"
    if status.get("state") == "finished":
        run.set_status("finished", evaluation_error=error)
        return {**record, "phase": "evaluate"}
    # Also when the worker died before it made the run's directory: the run's one record says it failed.
    run.set_status("failed", step=status.get("step", 0), error=error)
    return {**record, "phase": "train"}


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes} min {s} s" if minutes else f"{seconds:.1f} s"


def _write_spec(sweep: Sweep, sweep_dir: Path, source: str | os.PathLike) -> None:
    from ..atomic import atomic_write

    sweep_dir.mkdir(parents=True, exist_ok=True)
    target = sweep_dir / SPEC_FILE
    if Path(source).resolve() == target.resolve():
        return
    if not target.is_file() or target.read_text(encoding="utf-8") != sweep.text:
        atomic_write(target, lambda handle: handle.write(sweep.text.encode("utf-8")))
