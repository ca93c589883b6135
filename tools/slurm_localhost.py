"""A one-node SLURM cluster on localhost, for the tests and for trying `profiles/slurm` locally.

Starts ``munged``, ``slurmctld`` and ``slurmd`` (Debian ``slurm-wlm`` 22.05 + ``munge``) in the
foreground as child processes, with every file (munge key and socket, state, spool, logs) in one
private directory and free TCP ports, so it never uses a system-wide munge or SLURM daemon.
:meth:`LocalSlurm.stop` stops exactly the daemons it started, by pid, and removes its config.

The one file outside that directory is ``/etc/slurm/slurm.conf``: the Snakemake SLURM executor's job
steps strip every ``SLURM_*`` variable (``SLURM_CONF`` included) before calling ``srun``, so the
configuration must be where SLURM looks by default. A configuration that is not ours (a real
cluster's) is never overwritten: the cluster then reports itself unavailable.

Settings that work on one node without root-only kernel features or an accounting database:
``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``,
``AccountingStorageType=accounting_storage/none`` (so ``sacct`` fails: the Snakemake SLURM executor
needs ``--slurm-status-command squeue``, which it honours when ``MinJobAge`` >= 120 s; the default
300 s is kept), ``SlurmdParameters=config_overrides`` (the node line is trusted) and one default
partition.

Command line (root needed)::

    python tools/slurm_localhost.py start /tmp/myslurm   # prints `export SLURM_CONF=...`
    python tools/slurm_localhost.py stop /tmp/myslurm

Install the daemons with ``bash tools/ensure_slurm.sh`` (apt: slurm-wlm, munge).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

#: the daemons and client commands a cluster needs
#: where SLURM's client commands look when SLURM_CONF is not set (Debian's compiled-in default)
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
#: first line of a configuration written by this module
MARKER = "# dft2mlip local test cluster (tools/slurm_localhost.py); removed when it stops"
REQUIRED = ("munged", "slurmctld", "slurmd", "slurmstepd", "sbatch", "squeue", "scancel", "sinfo")
PARTITION = "debug"


def find_program(name: str) -> str | None:
    """Path of a SLURM/munge program (on ``$PATH`` or in /usr/sbin, where Debian puts daemons)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def unavailable_reason() -> str | None:
    """Why a local cluster cannot be started here, or ``None`` when it can."""
    if not sys.platform.startswith("linux"):
        return f"a local SLURM needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "starting slurmd/slurmctld/munged needs root (slurmd runs jobs as their user)"
    missing = [name for name in REQUIRED if find_program(name) is None]
    if missing:
        return (
            f"SLURM/munge programs not installed: {', '.join(missing)} "
            "(run `bash tools/ensure_slurm.sh`, i.e. apt-get install slurm-wlm munge)"
        )
    if SYSTEM_CONF.exists():
        text = SYSTEM_CONF.read_text(errors="replace")
        if not text.startswith(MARKER):
            return (
                f"{SYSTEM_CONF} belongs to a real SLURM installation; a private test cluster "
                "would shadow it (use that cluster with profiles/slurm instead)"
            )
        running = _running_daemons(text)
        if running:
            return f"another local test cluster is running (pids {running}); stop it first"
    return None


def _running_daemons(conf_text: str) -> list[int]:
    """Live daemon pids of the local cluster that wrote ``conf_text`` (from its pids.json)."""
    for line in conf_text.splitlines():
        if line.startswith("StateSaveLocation="):
            pids_file = Path(line.split("=", 1)[1]).parent / "pids.json"
            break
    else:
        return []
    try:
        pids = json.loads(pids_file.read_text()).values()
    except (OSError, ValueError):
        return []
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal not found in /proc/meminfo")


class LocalSlurm:
    """A one-node SLURM cluster whose daemons are children of this process.

    Parameters
    ----------
    root
        Private directory for configuration, key, state, spool and logs (created).
    cpus
        CPUs of the node; default: all of this machine's.
    memory_mb
        ``RealMemory`` of the node (MB); default: 80 % of this machine's memory.

    Attributes
    ----------
    env
        Environment variables that point SLURM client commands at this cluster (``SLURM_CONF``).
    """

    def __init__(
        self, root: str | os.PathLike, cpus: int | None = None, memory_mb: int | None = None
    ):
        self.root = Path(root).resolve()
        self.cpus = int(cpus or os.cpu_count() or 1)
        self.memory_mb = int(memory_mb or 0.8 * _memory_mb())
        self.node = socket.gethostname().split(".")[0]
        self.conf = SYSTEM_CONF
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.env = {"SLURM_CONF": str(self.conf)}
        self.processes: dict[str, subprocess.Popen] = {}

    # ---------------------------------------------------------------- configuration
    def write_config(self) -> None:
        """Write slurm.conf and a fresh munge key into :attr:`root`."""
        for sub in ("state", "spool", "log"):  # fresh state: job ids start at 1
            shutil.rmtree(self.root / sub, ignore_errors=True)
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o755)
        key = self.root / "munge" / "munge.key"
        if key.exists():
            key.unlink()
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        lines = {
            "ClusterName": "dft2mlip-local",
            "SlurmctldHost": f"{self.node}(127.0.0.1)",
            "SlurmctldPort": _free_port(),
            "SlurmdPort": _free_port(),
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "AuthInfo": f"socket={self.munge_socket}",
            "StateSaveLocation": self.root / "state",
            "SlurmdSpoolDir": self.root / "spool",
            "SlurmctldPidFile": self.root / "slurmctld.pid",
            "SlurmdPidFile": self.root / "slurmd.pid",
            "SlurmctldLogFile": self.root / "log" / "slurmctld.log",
            "SlurmdLogFile": self.root / "log" / "slurmd.log",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "MpiDefault": "pmix",
            "SwitchType": "switch/none",
            "AccountingStorageType": "accounting_storage/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "JobCompType": "jobcomp/none",
            "SchedulerType": "sched/builtin",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_CPU_Memory",
            "SlurmdParameters": "config_overrides",
            "ReturnToService": 2,
            "MinJobAge": 300,  # >= 120 s: the executor plugin trusts squeue for job status
            "KillWait": 5,
            "InactiveLimit": 0,
            "MessageTimeout": 10,
            "SlurmctldTimeout": 30,
            "SlurmdTimeout": 60,
        }
        text = MARKER + "\n" + "".join(f"{k}={v}\n" for k, v in lines.items())
        text += (
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.memory_mb} State=UNKNOWN\n"
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP\n"
        )
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(text)
        (self.root / "slurm.conf").write_text(text)  # a copy beside the logs, for debugging

    # ---------------------------------------------------------------- daemons
    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "w")
        self.processes[name] = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,  # a Ctrl-C of the test run is handled by stop(), not by them
        )
        log.close()
        (self.root / "pids.json").write_text(
            json.dumps({k: p.pid for k, p in self.processes.items()}, indent=1)
        )

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {proc.returncode} while starting the local "
                    f"SLURM; see {self.root / 'log'}:\n{self.log_tail()}"
                )

    def _wait(self, what: str, ready, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            if ready():
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"local SLURM: {what} not ready after {timeout_s:.0f} s; logs:\n{self.log_tail()}"
        )

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM client command (``sinfo``, ``squeue``, ...) against this cluster."""
        return subprocess.run(
            [find_program(args[0]) or args[0], *args[1:]],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            check=check,
            timeout=60,
        )

    def node_state(self) -> str:
        """State of the node as sinfo reports it (``idle``, ``mixed``, ``down*``, ...)."""
        out = self.run("sinfo", "-h", "-N", "-o", "%T", check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    def start(self, timeout_s: float = 60.0) -> LocalSlurm:
        """Write the configuration, start munged, slurmctld and slurmd; wait for an idle node."""
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(f"cannot start a local SLURM: {reason}")
        self.write_config()
        munge_dir = self.root / "munge"
        try:
            self._spawn(
                "munged",
                [
                    find_program("munged"),
                    "--foreground",
                    "--force",
                    f"--socket={self.munge_socket}",
                    f"--key-file={munge_dir / 'munge.key'}",
                    f"--pid-file={munge_dir / 'munged.pid'}",
                    f"--seed-file={munge_dir / 'munged.seed'}",
                    f"--log-file={self.root / 'log' / 'munged.log'}",
                ],
            )
            self._wait("munged", self.munge_socket.exists, timeout_s)
            self._spawn("slurmctld", [find_program("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._wait(
                "slurmctld", lambda: self.run("sinfo", "-h", check=False).returncode == 0, timeout_s
            )
            self._spawn(
                "slurmd", [find_program("slurmd"), "-D", "-f", str(self.conf), "-N", self.node]
            )
            self._wait("slurmd", lambda: self.node_state() in ("idle", "mixed"), timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _step_daemons(self) -> list[int]:
        """Pids of the slurmstepd processes of this cluster (they hold sockets in our spool dir)."""
        spool = str(self.root / "spool")
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if not (proc / "cmdline").read_bytes().startswith(b"slurmstepd"):
                    continue
                fds = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
            except OSError:
                continue
            if any(spool in fd for fd in fds):
                pids.append(int(proc.name))
        return pids

    def stop(self, grace_s: float = 15.0) -> None:
        """Cancel remaining jobs, wait for their step daemons, then stop the daemons this object
        started, by pid (slurmd, slurmctld, munged)."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self.run("scancel", "--full", "--partition", PARTITION, check=False)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                queue = self.run("squeue", "-h", "-t", "PD,R,CG,S", check=False).stdout
                if not queue.strip() and not self._step_daemons():
                    break
                time.sleep(0.5)
        for pid in self._step_daemons():  # a job step that ignored scancel: end it by its pid
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.processes.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=grace_s)
        self.processes.clear()
        if self.conf.exists() and self.conf.read_text(errors="replace").startswith(MARKER):
            self.conf.unlink()

    def log_tail(self, n_chars: int = 3000) -> str:
        """The end of every daemon log, for error messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace")[-n_chars:]
            parts.append(f"--- {path.name}\n{text}")
        return "\n".join(parts)

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _stop_from_pidfile(root: Path) -> None:
    pids = json.loads((root / "pids.json").read_text())
    for name in ("slurmd", "slurmctld", "munged"):
        pid = pids.get(name)
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
            print(f"stopped {name} (pid {pid})")
        except ProcessLookupError:
            print(f"{name} (pid {pid}) was not running")
        time.sleep(1.0)
    if SYSTEM_CONF.exists() and SYSTEM_CONF.read_text(errors="replace").startswith(MARKER):
        SYSTEM_CONF.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("root", type=Path, help="private directory for the cluster's files")
    args = parser.parse_args(argv)
    if args.action == "stop":
        _stop_from_pidfile(args.root.resolve())
        return 0
    cluster = LocalSlurm(args.root).start()
    # leave the daemons running for the user; `stop` ends them by the pids in pids.json
    for proc in cluster.processes.values():
        proc.returncode = 0  # detach: do not reap them at interpreter exit
    cluster.processes.clear()
    print(f"export SLURM_CONF={cluster.conf}")
    print(f"# stop with: python {Path(__file__).name} stop {args.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
