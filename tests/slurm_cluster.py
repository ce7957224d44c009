"""A real single-node SLURM cluster for the tests: Debian's ``slurm-wlm`` and ``munge``, installed with apt-get when
missing (root only), started from a temporary directory and stopped afterwards.

:func:`start_cluster` writes a munge key and a ``slurm.conf`` (one node, ``localhost``, 2 CPUs, partition ``debug``,
no accounting database), starts ``munged``, ``slurmctld`` and ``slurmd`` in the foreground as children of the test
and waits until the node is idle. Every SLURM command then finds the cluster through ``SLURM_CONF``
(:attr:`SlurmCluster.env`). :meth:`SlurmCluster.stop` cancels the cluster's jobs, waits for them to end and stops the
three daemons it started (by their pids). Where the cluster cannot be had, :class:`ClusterUnavailable` says exactly
why (the fixture skips with that message where the packages cannot be installed, fails otherwise).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")
PARTITION = "debug"


class ClusterUnavailable(RuntimeError):
    """The cluster cannot be started here; the message says why. ``installable`` False: the packages are missing
    and cannot be installed (not Debian, not root, no package mirror)."""

    def __init__(self, message: str, installable: bool = True):
        super().__init__(message)
        self.installable = installable


def _last_lines(text: str, n: int = 5) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:]) or "(no output)"


def ensure_installed() -> None:
    """Install ``slurm-wlm`` and ``munge`` with apt-get unless their daemons are already on PATH."""
    if all(shutil.which(d) or Path(f"/usr/sbin/{d}").is_file() for d in DAEMONS):
        return
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable("slurm-wlm and munge are not installed and there is no apt-get here", False)
    if os.geteuid() != 0:
        raise ClusterUnavailable("slurm-wlm and munge are not installed and only root can apt-get install them", False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:  # a stale package list: update it once and try again
        update = subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise ClusterUnavailable(
                f"apt-get install {' '.join(PACKAGES)} failed: {_last_lines(update.stderr + done.stderr)}", False
            )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    """A started single-node cluster: :attr:`env` for its commands, :meth:`run` to call one, :meth:`stop`."""

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        """This process's environment with ``SLURM_CONF``: every SLURM command then talks to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(list(command), env=self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
        return done

    def jobs(self) -> dict[str, tuple[str, str]]:
        """``{job: (STATE, REASON)}`` of every job the controller holds (array tasks one by one)."""
        out = self.run("squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r").stdout
        return {job: (state, reason) for job, state, reason in (line.split("|") for line in out.split())}

    def log(self, daemon: str) -> str:
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def start(self) -> None:
        root = self.root
        for sub in ("munge", "state", "spool", "log"):
            (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        socket_path = root / "munge" / "munge.socket"
        munge = root / "munge"
        self._spawn(
            "munged",
            [
                _daemon("munged"),
                "--foreground",
                "--force",
                f"--key-file={key}",
                f"--socket={socket_path}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--seed-file={munge / 'munged.seed'}",
                f"--log-file={root / 'log' / 'munged.log'}",
            ],
        )
        self._wait_for(lambda: socket_path.exists(), "munged to create its socket", "munged")
        self.conf.write_text(self._config(socket_path), encoding="utf-8")
        self._spawn("slurmctld", [_daemon("slurmctld"), "-D", "-c", "-f", str(self.conf)])
        self._spawn("slurmd", [_daemon("slurmd"), "-D", "-N", "localhost", "-f", str(self.conf)])
        self._wait_for(self._node_idle, "the node to be idle (sinfo)", "slurmd")

    def _config(self, munge_socket: Path) -> str:
        root = self.root
        return "\n".join(
            [
                "ClusterName=nsvaetest",
                "SlurmctldHost=localhost(127.0.0.1)",
                "SlurmUser=root",
                "SlurmdUser=root",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={munge_socket}",
                f"StateSaveLocation={root / 'state'}",
                f"SlurmdSpoolDir={root / 'spool'}",
                f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                f"SlurmdPidFile={root / 'slurmd.pid'}",
                f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_CPU",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "MpiDefault=none",
                "SwitchType=switch/none",
                "SchedulerType=sched/backfill",
                "ReturnToService=2",
                # The node's declared size, whatever the machine has (CI's and this one's: 2 cores).
                "SlurmdParameters=config_overrides",
                "KillWait=30",
                "NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN",
                f"PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )

    def _spawn(self, name: str, command: list[str]) -> None:
        with open(self.root / "log" / f"{name}.out", "wb") as out:
            self.processes[name] = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def _node_idle(self) -> bool:
        done = self.run("sinfo", "--noheader", "--format=%t", check=False)
        return done.returncode == 0 and done.stdout.strip() == "idle"

    def _wait_for(self, ready, what: str, daemon: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.processes.items() if p.poll() is not None]
            if dead:
                raise ClusterUnavailable(f"{dead[0]} exited at start: {self._why(dead[0])}")
            if ready():
                return
            time.sleep(0.5)
        raise ClusterUnavailable(f"waited {timeout:.0f} s for {what}: {self._why(daemon)}")

    def _why(self, daemon: str) -> str:
        out = self.root / "log" / f"{daemon}.out"
        text = (out.read_text(errors="replace") if out.is_file() else "") + self.log(daemon)
        errors = [line for line in text.splitlines() if "error" in line.lower() or "fatal" in line.lower()]
        return _last_lines("\n".join(errors) or text)

    def stop(self) -> None:
        """Cancel every job, wait (bounded) for them to end, then stop the daemons this object started."""
        if self.processes.get("slurmctld") is not None and self.processes["slurmctld"].poll() is None:
            self.run("scancel", "--user=root", check=False)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    states = self.jobs()
                except (RuntimeError, subprocess.TimeoutExpired):
                    break
                if all(state not in ("PENDING", "RUNNING", "COMPLETING") for state, _ in states.values()):
                    break
                time.sleep(0.5)
        for name in reversed(DAEMONS):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_cluster(root: Path) -> SlurmCluster:
    """Install the packages if needed and start a cluster in ``root``; :class:`ClusterUnavailable` says why not
    (the daemons started so far are stopped first)."""
    ensure_installed()
    cluster = SlurmCluster(root)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
