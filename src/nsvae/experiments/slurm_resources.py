"""What each SLURM job of a sweep asks for: the sweep file's ``[resources]`` and ``[slurm]`` tables, overridden on the
command line (``--partition``, ``--time``, ``--cpus``, ``--gpus``, ``--mem``), as submitit's sbatch parameters.

A sweep file's ``[slurm]`` table (every key optional)::

    [slurm]
    partition = "gpu"                        # sbatch --partition
    time = "4:00:00"                         # the time limit of one job: minutes or [D-]HH:MM:SS, as sbatch takes it
    mem = "16G"                              # memory per run (a number of megabytes, or K/M/G/T)
    account = "my-lab"                       # sbatch --account
    setup = ["module load cuda/12.1"]        # shell lines the job runs before nsvae
    sbatch = { qos = "normal", constraint = "a100" }   # any other sbatch option

The CPUs and GPUs of each run are the ``[resources]`` table's ``cpus`` and ``gpus`` (also what Ray asks for), whole
numbers for SLURM. Nothing here imports submitit: a sweep file with ``[slurm]`` loads without it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

from ..errors import UserError

SLURM_KEYS = ("partition", "time", "mem", "account", "setup", "sbatch")

#: sbatch options nsvae sets itself (each from its own key or option), so the ``sbatch`` table may not.
_OWN_OPTIONS = {
    "partition": "partition (--partition)",
    "time": "time (--time)",
    "mem": "mem (--mem)",
    "account": "account",
    "cpus-per-task": "[resources] cpus (--cpus)",
    "gpus-per-node": "[resources] gpus (--gpus)",
    "gpus": "[resources] gpus (--gpus)",
    "array": "--workers (the job array's limit)",
    "job-name": "nothing: nsvae names the jobs nsvae-SWEEP",
    "output": "nothing: submitit writes the jobs' logs to SWEEP_DIR/slurm",
    "error": "nothing: submitit writes the jobs' logs to SWEEP_DIR/slurm",
    "signal": "nothing: nsvae's jobs take submitit's warning signal before the time limit",
    "open-mode": "nothing: the jobs' logs are appended to across requeues",
}

_TIME = re.compile(r"(?:(\d+)-)?(\d+(?::\d+){0,2})")
_MEM = re.compile(r"(\d+)([KMGT]?)", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class SlurmRequest:
    """What the command line asks of SLURM (None: the sweep file's value, or the default)."""

    partition: str | None = None
    time: str | None = None
    cpus: float | None = None
    gpus: float | None = None
    mem: str | None = None
    #: At most this many of the sweep's jobs run at once (the job array's ``%N``; ``--workers``); None: no limit.
    max_running: int | None = None


@dataclasses.dataclass(frozen=True)
class SlurmResources:
    """Everything one job of the sweep asks SLURM for, resolved and checked."""

    minutes: int
    cpus: int
    gpus: int
    partition: str | None = None
    mem: str | None = None
    account: str | None = None
    setup: tuple[str, ...] = ()
    sbatch: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    max_running: int | None = None

    def submitit_parameters(self, job_name: str, runs: int) -> dict[str, Any]:
        """The parameters of ``submitit.SlurmExecutor.update_parameters`` for a job array of ``runs`` runs."""
        params: dict[str, Any] = {
            "job_name": job_name,
            "time": self.minutes,
            "cpus_per_task": self.cpus,
            "array_parallelism": self.max_running or max(1, runs),
        }
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        for key in ("partition", "mem", "account"):
            if getattr(self, key) is not None:
                params[key] = getattr(self, key)
        if self.setup:
            params["setup"] = list(self.setup)
        if self.sbatch:
            params["additional_parameters"] = dict(self.sbatch)
        return params

    def describe(self) -> str:
        """One line: ``partition debug, 1 h 30 min, 2 CPUs, 1 GPU, 16G`` (per run)."""
        hours, minutes = divmod(self.minutes, 60)
        parts = [f"partition {self.partition}" if self.partition else "the default partition"]
        parts.append(" ".join(([f"{hours} h"] if hours else []) + ([f"{minutes} min"] if minutes or not hours else [])))
        parts.append(f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}")
        parts.append(f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}")
        if self.mem is not None:
            parts.append(f"{self.mem} memory")
        if self.account is not None:
            parts.append(f"account {self.account}")
        parts += [f"--{k}={v}" for k, v in self.sbatch.items()]
        limit = f"; at most {self.max_running} at once" if self.max_running else ""
        return ", ".join(parts) + " per run" + limit


def parse_time(value: Any, where: str) -> int:
    """A SLURM time limit in whole minutes (rounded up): an integer (minutes) or a string as ``sbatch --time``
    takes it: ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = 60 * value
    elif isinstance(value, str) and (match := _TIME.fullmatch(value.strip())):
        days, rest = match.group(1), [int(p) for p in match.group(2).split(":")]
        if days is None:  # M, M:S, H:M:S
            hours, minutes, secs = {1: [0, rest[0], 0], 2: [0, *rest], 3: rest}[len(rest)]
        else:  # D-H, D-H:M, D-H:M:S
            hours, minutes, secs = (rest + [0, 0])[:3]
        seconds = ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + secs
    else:
        raise UserError(
            f"{where} must be a time limit as sbatch takes it (minutes, HH:MM:SS or D-HH:MM:SS, e.g. 4:00:00), "
            f"got {value!r}"
        )
    if seconds <= 0:
        raise UserError(f"{where} must be a time limit of at least one minute, got {value!r}")
    return math.ceil(seconds / 60)


def parse_mem(value: Any, where: str) -> str:
    """Memory per run as sbatch takes it: megabytes (an integer) or a whole number with K, M, G or T."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and (match := _MEM.fullmatch(value.strip())):
        return match.group(1) + match.group(2).upper()
    raise UserError(f"{where} must be memory as sbatch takes it (megabytes, or e.g. 16G, 4000M), got {value!r}")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise UserError(f"{where} must be a non-empty name without spaces, got {value!r}")
    return value.strip()


def parse_slurm_table(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A sweep file's ``[slurm]`` table, checked (``where``: ``"FILE: [slurm]"``); the values normalised."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in SLURM_KEYS:
            close = difflib.get_close_matches(key, SLURM_KEYS, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(SLURM_KEYS)}"
            raise UserError(f"{where}: unknown key {key!r}{hint}")
        here = f"{where} {key}"
        if key in ("partition", "account"):
            out[key] = _text(value, here)
        elif key == "time":
            parse_time(value, here)
            out[key] = value
        elif key == "mem":
            out[key] = parse_mem(value, here)
        elif key == "setup":
            if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
                raise UserError(f'{here} must be a list of shell lines, e.g. setup = ["module load cuda"]')
            out[key] = list(value)
        else:
            out[key] = _sbatch_options(value, here)
    return out


def _sbatch_options(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise UserError(f'{where} must be a table of sbatch options, e.g. sbatch = {{ qos = "normal" }}')
    options: dict[str, Any] = {}
    for raw, setting in value.items():
        option = str(raw).removeprefix("--").replace("_", "-")
        if option in _OWN_OPTIONS:
            raise UserError(f"{where}: {option!r} is set by nsvae; give it as {_OWN_OPTIONS[option]}")
        if not re.fullmatch(r"[a-z][a-z0-9-]*", option):
            raise UserError(f"{where}: {raw!r} is not an sbatch option name (e.g. qos, constraint, mail-type)")
        if setting is False or not isinstance(setting, (str, int, bool)) or isinstance(setting, float):
            raise UserError(f"{where}: {option} must be a string, a whole number or true, got {setting!r}")
        options[option] = setting
    return options


def _whole(value: float, name: str, least: int) -> int:
    if value != int(value) or value < least:
        raise UserError(
            f"{name} must be a whole number of at least {least} for SLURM, got {value:g} (fractions are Ray's)"
        )
    return int(value)


def resolve_resources(
    table: Mapping[str, Any], cpus: float, gpus: float, request: SlurmRequest, where: str
) -> SlurmResources:
    """One job's resources: ``request`` (the command line) over the sweep file's ``[slurm]`` table (``table``,
    already checked) and ``[resources]`` (``cpus``, ``gpus``); ``where`` names the sweep file in messages."""
    time_value = request.time if request.time is not None else table.get("time")
    if time_value is None:
        raise UserError(
            f"a SLURM job needs a time limit: give --time (e.g. --time 4:00:00) or time in {where}'s [slurm] table; "
            "a run longer than it is requeued and resumed"
        )
    minutes = parse_time(time_value, "--time" if request.time is not None else f"{where}: [slurm] time")
    mem = table.get("mem")
    if request.mem is not None:
        mem = parse_mem(request.mem, "--mem")
    partition = table.get("partition")
    if request.partition is not None:
        partition = _text(request.partition, "--partition")
    cpu_name = "--cpus" if request.cpus is not None else f"{where}: [resources] cpus"
    gpu_name = "--gpus" if request.gpus is not None else f"{where}: [resources] gpus"
    cpu_value = request.cpus if request.cpus is not None else cpus
    gpu_value = request.gpus if request.gpus is not None else gpus
    for name, value in ((cpu_name, cpu_value), (gpu_name, gpu_value)):
        if not math.isfinite(value):
            raise UserError(f"{name} must be a finite number, got {value!r}")
    if request.max_running is not None and request.max_running < 1:
        raise UserError(f"--workers must be at least 1, got {request.max_running}")
    return SlurmResources(
        minutes=minutes,
        cpus=_whole(cpu_value, cpu_name, 1),
        gpus=_whole(gpu_value, gpu_name, 0),
        partition=partition,
        mem=mem,
        account=table.get("account"),
        setup=tuple(table.get("setup", ())),
        sbatch=dict(table.get("sbatch", {})),
        max_running=request.max_running,
    )
