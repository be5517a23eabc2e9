"""A throwaway single-node Slurm cluster on loopback, for the Slurm profile test.

Everything lives in one private folder (munge key and socket, slurm.conf, state, spool, logs);
the Slurm commands find it through ``SLURM_CONF``, so nothing is written to /etc and other
processes on the machine never see the cluster (a stale /etc/slurm/slurm.conf makes every later
Snakemake start block for seconds). Needs root: the daemons run as root, munged as munge.

Run by hand for a shell against a live cluster:

    .venv/bin/python tests/slurm_cluster.py
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
# Commands the cluster needs; the daemons live in /usr/sbin, not always on a test's PATH.
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("munge", "unmunge", "sbatch", "squeue", "scontrol", "sinfo", "scancel", "srun")
SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
)
NODE = "hccrad-node"
PARTITION = "main"
# squeue is the plugin's status command here (no slurmdbd), so finished jobs must stay
# visible to squeue/scontrol for longer than the plugin's status-check delays.
MIN_JOB_AGE_S = 600


class SlurmUnavailableError(RuntimeError):
    """Slurm cannot be installed or started on this machine (the test is then skipped)."""


@dataclass(frozen=True)
class SlurmCluster:
    """A running cluster: its folder and the environment that points the Slurm commands at it."""

    root: Path
    env: dict[str, str]

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller remembers, as ``scontrol show job`` fields."""
        out = self.run(["scontrol", "--oneliner", "show", "job"]).stdout
        return [_fields(line) for line in out.splitlines() if line.startswith("JobId=")]

    def run(self, args: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command against this cluster; raise with its output on failure."""
        return _run([_which(args[0]), *args[1:]], env=self.env, timeout=timeout)


def _which(command: str) -> str:
    """The full path of ``command``, looking in the sbin folders too."""
    path = shutil.which(command, path=SEARCH_PATH)
    if path is None:
        raise SlurmUnavailableError(f"{command} is not installed")
    return path


def _run(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 60, **kwargs
) -> subprocess.CompletedProcess[str]:
    """Run a command; raise RuntimeError naming it, with its output, when it fails."""
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


def _fields(line: str) -> dict[str, str]:
    """``Key=Value Key=Value`` pairs of a one-line scontrol record (values without spaces)."""
    return dict(item.split("=", 1) for item in line.split() if "=" in item)


def ensure_installed(timeout: float = 600) -> None:
    """Install Debian's slurm-wlm and munge with apt-get unless they are already there."""
    if all(shutil.which(c, path=SEARCH_PATH) for c in DAEMONS + CLIENTS):
        return
    if os.geteuid() != 0:
        raise SlurmUnavailableError("Slurm is not installed and installing it needs root")
    apt = shutil.which("apt-get", path=SEARCH_PATH)
    if apt is None:
        raise SlurmUnavailableError("Slurm is not installed and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "-o", "DPkg::Lock::Timeout=120", "install", "-y", "-q"]
    install += ["--no-install-recommends", *PACKAGES]
    try:
        _run(install, env=env, timeout=timeout)
    except (RuntimeError, subprocess.TimeoutExpired):
        # A fresh machine may have empty package lists: refresh them once and retry.
        try:
            _run([apt, "-o", "DPkg::Lock::Timeout=120", "update", "-q"], env=env, timeout=timeout)
            _run(install, env=env, timeout=timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            raise SlurmUnavailableError(f"apt-get could not install {PACKAGES}: {error}") from error
    missing = [c for c in DAEMONS + CLIENTS if not shutil.which(c, path=SEARCH_PATH)]
    if missing:
        raise SlurmUnavailableError(f"after installing {PACKAGES}, still missing {missing}")


def _free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _node_hardware() -> dict[str, int]:
    """CPUs and memory (MB) as slurmd detects them (``slurmd -C``)."""
    fields = _fields(_run([_which("slurmd"), "-C"]).stdout.splitlines()[0])
    return {"cpus": int(fields["CPUs"]), "memory_mb": int(fields["RealMemory"])}


def slurm_conf(root: Path, ports: tuple[int, int], cpus: int, memory_mb: int) -> str:
    """slurm.conf of a one-node cluster on 127.0.0.1 whose files all live under ``root``."""
    host = socket.gethostname().split(".")[0]
    return "\n".join(
        [
            "ClusterName=hccrad",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={ports[0]}",
            f"SlurmdPort={ports[1]}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={root}/run/munge.sock",
            f"StateSaveLocation={root}/state",
            f"SlurmdSpoolDir={root}/spool",
            f"SlurmctldPidFile={root}/run/slurmctld.pid",
            f"SlurmdPidFile={root}/run/slurmd.pid",
            f"SlurmctldLogFile={root}/log/slurmctld.log",
            f"SlurmdLogFile={root}/log/slurmd.log",
            # A completion record per job: proof, besides squeue, that jobs went through Slurm.
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={root}/log/jobcomp.txt",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            # No cgroups in containers: track processes by parent id, bind nothing.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU_Memory",
            # Without a default, a job with no --mem takes the whole node and jobs serialise.
            "DefMemPerCPU=500",
            # Schedule a submitted batch job at once, not at the next pass (about 3 s each).
            "SchedulerParameters=batch_sched_delay=0",
            f"MinJobAge={MIN_JOB_AGE_S}",
            "ReturnToService=2",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            # RealMemory above what slurmd detects would drain the node: keep 512 MB aside.
            f"NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} "
            f"RealMemory={max(memory_mb - 512, 512)} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _wait_for(check, what: str, timeout: float, logs: list[Path]) -> None:
    """Poll ``check()`` until it is true; raise with the daemons' log tails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.5)
    tails = "\n".join(
        f"--- {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        for log in logs
        if log.exists()
    )
    raise RuntimeError(f"Slurm test cluster: {what} not within {timeout:.0f} s\n{tails}")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a slow PID 1 to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _stop(pid_file: Path, timeout: float = 15) -> None:
    """Stop the daemon whose pid ``pid_file`` holds: SIGTERM, then SIGKILL after ``timeout``."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if not _alive(pid):
            return


def _start_munge(root: Path) -> None:
    """A private munged (own key, socket, pid and log) running as the munge user."""
    private, run = root / "munge", root / "run"
    for folder, mode in ((private, 0o700), (run, 0o755)):
        folder.mkdir(mode=mode)
        shutil.chown(folder, "munge", "munge")
        folder.chmod(mode)  # mkdir's mode is masked by the umask
    key = private / "munge.key"
    key.write_bytes(os.urandom(128))
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    _run(
        [
            _which("munged"),
            f"--socket={run}/munge.sock",
            f"--key-file={key}",
            f"--pid-file={private}/munged.pid",
            f"--log-file={private}/munged.log",
            f"--seed-file={private}/munged.seed",
        ],
        user="munge",
        group="munge",
    )
    credential = _run([_which("munge"), "-n", f"--socket={run}/munge.sock"]).stdout
    _run([_which("unmunge"), f"--socket={run}/munge.sock"], input=credential)


def _srun_shim(root: Path) -> None:
    """An ``srun`` first on the jobs' PATH that points the real one at this cluster.

    The Slurm jobstep plugin runs each job through a nested ``srun`` after dropping every
    ``SLURM_*`` variable, ``SLURM_CONF`` included. A real site keeps slurm.conf in /etc/slurm
    (or serves it configless), which a private test cluster must not; the shim restores
    ``SLURM_CONF`` and hands over to the real srun.
    """
    (root / "bin").mkdir()
    shim = root / "bin/srun"
    shim.write_text(f'#!/bin/sh\nSLURM_CONF={root}/slurm.conf exec {_which("srun")} "$@"\n')
    shim.chmod(0o755)


@contextmanager
def slurm_cluster(start_timeout: float = 60) -> Iterator[SlurmCluster]:
    """Install (if needed) and start a one-node cluster; stop it and delete its files after."""
    if os.geteuid() != 0:
        raise SlurmUnavailableError("starting slurmctld, slurmd and munged needs root")
    ensure_installed()
    root = Path(tempfile.mkdtemp(prefix="hccrad-slurm-"))
    root.chmod(0o755)  # munged (as munge) must reach its socket folder inside
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    env["PATH"] = os.pathsep.join([str(root / "bin"), SEARCH_PATH])
    try:
        _srun_shim(root)
        _start_munge(root)
        for folder in ("state", "spool", "log"):
            (root / folder).mkdir()
        hardware = _node_hardware()
        ports = (_free_port(), _free_port())
        (root / "slurm.conf").write_text(slurm_conf(root, ports, **hardware))
        logs = [root / "log/slurmctld.log", root / "log/slurmd.log"]
        _run([_which("slurmctld"), "-i"], env=env)
        _run([_which("slurmd"), "-N", NODE], env=env)
        cluster = SlurmCluster(root=root, env=env)

        def node_idle() -> bool:
            state = cluster.run(["sinfo", "--noheader", "--format=%T", f"--nodes={NODE}"])
            return state.stdout.strip() == "idle"

        _wait_for(node_idle, "the node idle", start_timeout, logs)
        yield cluster
    finally:
        _teardown(root, env)


def _teardown(root: Path, env: dict[str, str]) -> None:
    """Cancel what is left, stop slurmd, slurmctld and munged, delete the folder."""
    if (root / "run/slurmctld.pid").exists():
        # Best effort: there may be no jobs left, or no controller to answer any more.
        with suppress(subprocess.TimeoutExpired, SlurmUnavailableError):
            subprocess.run(
                [_which("scancel"), f"--partition={PARTITION}"],
                env=env,
                capture_output=True,
                timeout=15,
                check=False,
            )
    for pid_file in ("run/slurmd.pid", "run/slurmctld.pid", "munge/munged.pid"):
        _stop(root / pid_file)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    with slurm_cluster() as live:
        print(f"export SLURM_CONF={live.env['SLURM_CONF']}   # exit the shell to stop the cluster")
        subprocess.run([os.environ.get("SHELL", "/bin/bash")], env=live.env, check=False)
