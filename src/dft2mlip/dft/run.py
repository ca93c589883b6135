"""Run pw.x (serially or under an MPI launcher) and record how it went.

Command building (:func:`pw_command`) is separate from execution (:func:`run_pw`) so that an
error-recovery wrapper (e.g. a custodian Job) can reuse the same command. A non-zero return
code is not an exception here: the output parser records the label's status.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

_INSTALL_HINT = (
    "install Quantum ESPRESSO (Debian/Ubuntu: apt install quantum-espresso; conda: "
    "conda install -c conda-forge qe; on a cluster: load its module) or set "
    "dft.qe.executable to the full path of pw.x"
)


@dataclass(frozen=True)
class RunResult:
    """Outcome of one pw.x run.

    Attributes
    ----------
    returncode
        Exit status (negative: killed by that signal; pw.x exits 2 when the SCF did not
        converge).
    wall_time_s
        Wall-clock time of the run (s).
    command
        The command that was run.
    timed_out
        True when the run was killed after ``timeout_s``.
    """

    returncode: int
    wall_time_s: float
    command: list[str]
    timed_out: bool = False


def _launcher(mpi_launcher: str | None, nprocs: int) -> list[str]:
    if nprocs == 1 or not mpi_launcher or not mpi_launcher.strip():
        return []
    try:
        return shlex.split(mpi_launcher.format(nprocs=nprocs))
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(
            f"dft.mpi_launcher {mpi_launcher!r} is not a valid template ({err}); "
            "use e.g. 'mpirun -np {nprocs}' or 'srun -n {nprocs}'"
        ) from err


def pw_command(
    input_name: str | os.PathLike,
    *,
    executable: str = "pw.x",
    nprocs: int = 1,
    mpi_launcher: str | None = "mpirun -np {nprocs}",
) -> list[str]:
    """The command line that runs pw.x on an input file.

    Parameters
    ----------
    input_name
        Input file, as seen from the working directory of the run.
    executable
        ``dft.qe.executable``: a name on ``$PATH`` or a path.
    nprocs
        Number of MPI ranks; 1 runs pw.x serially without a launcher.
    mpi_launcher
        ``dft.mpi_launcher`` template with ``{nprocs}``; ``""`` or ``None`` runs serially.

    Returns
    -------
    list[str]
        e.g. ``["mpirun", "-np", "2", "/usr/bin/pw.x", "-in", "pw.in"]``.

    Raises
    ------
    FileNotFoundError
        If pw.x or the launcher program cannot be found.
    """
    if int(nprocs) < 1:
        raise ValueError(f"nprocs must be >= 1, got {nprocs}")
    program = shutil.which(executable)
    if program is None:
        raise FileNotFoundError(f"pw.x executable {executable!r} not found; {_INSTALL_HINT}")
    launcher = _launcher(mpi_launcher, int(nprocs))
    if launcher and shutil.which(launcher[0]) is None:
        raise FileNotFoundError(
            f"MPI launcher {launcher[0]!r} (dft.mpi_launcher = {mpi_launcher!r}) not found; "
            "install MPI, load its module, or set dft.mpi_launcher to '' to run serially"
        )
    return [*launcher, program, "-in", str(input_name)]


@functools.lru_cache(maxsize=8)
def _is_open_mpi(launcher: str) -> bool:
    """Whether ``launcher --version`` identifies Open MPI."""
    try:
        out = subprocess.run(
            [launcher, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    text = out.stdout + out.stderr
    return "Open MPI" in text or "OpenRTE" in text


def pw_environment(command: list[str]) -> dict[str, str]:
    """Environment for the pw.x process.

    Adds ``OMP_NUM_THREADS=1`` unless set (ranks, not threads, carry the parallelism) and, when
    running as root under Open MPI's launcher, ``OMPI_ALLOW_RUN_AS_ROOT=1`` and
    ``OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`` (Open MPI refuses root otherwise).
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    launcher = command[0]
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and Path(launcher).name in ("mpirun", "mpiexec", "orterun", "prterun"):
        if _is_open_mpi(launcher):
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return env


def _terminate(process: subprocess.Popen) -> int:
    """Stop a run's whole process group (launcher and ranks); return its exit status."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()


def run_pw(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    executable: str = "pw.x",
    nprocs: int = 1,
    mpi_launcher: str | None = "mpirun -np {nprocs}",
    timeout_s: float | None = None,
) -> RunResult:
    """Run pw.x in the input's directory; stdout to ``output_path``, stderr beside it.

    Parameters
    ----------
    input_path
        pw.x input file (its directory is the working directory: ``outdir=./tmp`` lands there).
    output_path
        File for pw.x's standard output; standard error goes to ``<output_path>.stderr``.
    executable, nprocs, mpi_launcher
        See :func:`pw_command`.
    timeout_s
        Kill the run (and its MPI ranks) after this many seconds; ``None``: no limit.

    Returns
    -------
    RunResult
        Never raises on a non-zero exit status; :func:`dft2mlip.dft.qe.parse_pw_output`
        decides the label's status.
    """
    input_path = Path(input_path).resolve()
    output_path = Path(output_path).resolve()
    if not input_path.is_file():
        raise FileNotFoundError(f"pw.x input {input_path} does not exist")
    command = pw_command(
        input_path.name, executable=executable, nprocs=nprocs, mpi_launcher=mpi_launcher
    )
    output_path.parent.mkdir(parents=True, exist_ok=True)
    stderr_path = Path(str(output_path) + ".stderr")
    start = time.perf_counter()
    timed_out = False
    with open(output_path, "w") as out, open(stderr_path, "w") as err:
        process = subprocess.Popen(
            command,
            cwd=input_path.parent,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=pw_environment(command),
            start_new_session=True,  # own process group: a timeout kills every rank
        )
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            returncode = _terminate(process)
            err.write(f"\ndft2mlip: pw.x killed after the {timeout_s} s timeout\n")
        except BaseException:  # e.g. KeyboardInterrupt: never leave ranks running
            _terminate(process)
            raise
    return RunResult(
        returncode=returncode,
        wall_time_s=time.perf_counter() - start,
        command=command,
        timed_out=timed_out,
    )
