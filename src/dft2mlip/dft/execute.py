"""Run one DFT single point under custodian and record what happened (for the label provenance).

:func:`run_pw_custodian` and :func:`run_vasp_custodian` never raise because a run failed:
custodian's verdict (corrections applied, the error that stopped it) goes into the returned
record, and the output parser decides the label's status. They do raise for a setup error
(missing executable, missing POTCAR), which is a configuration problem, not a label problem.
"""

from __future__ import annotations

import logging
import os
import shlex
import time
import warnings
from pathlib import Path

from custodian import Custodian
from custodian.custodian import CustodianError

from dft2mlip.dft.handlers import WALLTIME_MARKER, PwJob, pw_handlers, vasp_handlers

log = logging.getLogger(__name__)


def _corrections(run_log: list) -> list[dict]:
    """custodian's run log -> JSON-friendly list of {handler, errors, actions}."""
    out = []
    for job in run_log or []:
        for corr in job.get("corrections", []):
            handler = corr.get("handler")
            out.append(
                {
                    "handler": type(handler).__name__ if handler is not None else None,
                    "errors": [str(e) for e in corr.get("errors", [])],
                    "actions": corr.get("actions"),
                    **{k: corr[k] for k in ("refused_actions", "skipped") if k in corr},
                }
            )
    return out


def _run(custodian: Custodian, directory: Path, command: list[str], engine: str) -> dict:
    (directory / WALLTIME_MARKER).unlink(missing_ok=True)
    start = time.perf_counter()
    error = None
    try:
        with warnings.catch_warnings():
            # pymatgen (custodian's vasprun validator) looks for POTCARs to match the TITELs
            warnings.filterwarnings("ignore", message="No POTCAR file with matching TITEL")
            custodian.run()
    except CustodianError as err:
        error = f"{type(err).__name__}: {err}"
        log.warning("%s in %s: custodian stopped: %s", engine, directory, error)
    record = {
        "engine": engine,
        "command": command,
        "wall_time_s": time.perf_counter() - start,
        "custodian_error": error,
        "walltime_reached": (directory / WALLTIME_MARKER).exists(),
        "corrections": _corrections(getattr(custodian, "run_log", [])),
        "max_errors": custodian.max_errors,
    }
    record["n_corrections"] = len(record["corrections"])
    return record


def run_pw_custodian(
    input_path: str | os.PathLike,
    output_name: str = "pw.out",
    *,
    executable: str = "pw.x",
    nprocs: int = 1,
    mpi_launcher: str | None = "mpirun -np {nprocs}",
    max_errors: int = 3,
    walltime_s: float | None = None,
    polling_s: float = 0.5,
    monitor_s: float = 10.0,
) -> dict:
    """Run pw.x through custodian with :func:`~dft2mlip.dft.handlers.pw_handlers`.

    Parameters
    ----------
    input_path
        pw.x input; its directory is the run directory (the SCF handler edits this file).
    output_name
        pw.x standard output, in the run directory.
    executable, nprocs, mpi_launcher
        See :func:`dft2mlip.dft.run.pw_command`.
    max_errors
        Corrections allowed before custodian gives up (``dft.max_errors``).
    walltime_s
        Stop the run this long after it started (minus a buffer); None: no limit.
    polling_s, monitor_s
        How often custodian polls the process, and runs the monitors (the walltime), while a
        monitor is active (s).

    Returns
    -------
    dict
        ``command``, ``wall_time_s``, ``corrections`` (handler, errors, actions),
        ``n_corrections``, ``custodian_error`` (None when custodian finished cleanly),
        ``walltime_reached``, ``max_errors``.
    """
    input_path = Path(input_path).resolve()
    if not input_path.is_file():
        raise FileNotFoundError(f"pw.x input {input_path} does not exist")
    job = PwJob(input_path.name, output_name, executable, nprocs, mpi_launcher)
    handlers = pw_handlers(walltime_s)
    custodian = Custodian(
        handlers,
        [job],
        max_errors=int(max_errors),
        polling_time_step=polling_s,
        monitor_freq=max(1, round(monitor_s / polling_s)),
        terminate_on_nonzero_returncode=False,
        directory=str(input_path.parent),
    )
    return _run(custodian, input_path.parent, job.command, "qe")


def vasp_command(executable: str, nprocs: int, mpi_launcher: str | None) -> list[str]:
    """``[*launcher, *executable]``: the executable may carry arguments (shlex-split)."""
    from dft2mlip.dft.run import _launcher

    return [*_launcher(mpi_launcher, int(nprocs)), *shlex.split(executable)]


def run_vasp_custodian(
    directory: str | os.PathLike,
    *,
    executable: str = "vasp_std",
    nprocs: int = 1,
    mpi_launcher: str | None = "mpirun -np {nprocs}",
    max_errors: int = 3,
    walltime_s: float | None = None,
    polling_s: float = 0.5,
    monitor_s: float = 10.0,
    allow_potcar_spec: bool = False,
) -> dict:
    """Run VASP through custodian's ``VaspJob`` with :func:`~dft2mlip.dft.handlers.vasp_handlers`.

    Parameters
    ----------
    directory
        Run directory with INCAR, POSCAR and POTCAR.
    executable
        ``dft.vasp.executable`` (may include arguments).
    nprocs, mpi_launcher
        As for pw.x.
    max_errors
        Corrections allowed before custodian gives up.
    walltime_s
        custodian's ``WalltimeHandler`` (STOPCAR) when set.
    polling_s, monitor_s
        Poll interval, and interval of the monitors (s).
    allow_potcar_spec
        Run with only a ``POTCAR.spec`` (the test stand-in; see
        :func:`dft2mlip.dft.vasp.check_ready_to_run`).

    Returns
    -------
    dict
        As :func:`run_pw_custodian`.
    """
    from custodian.vasp.jobs import VaspJob
    from custodian.vasp.validators import VasprunXMLValidator

    from dft2mlip.dft.vasp import check_ready_to_run

    directory = Path(directory).resolve()
    check_ready_to_run(directory, allow_potcar_spec=allow_potcar_spec)
    command = vasp_command(executable, nprocs, mpi_launcher)
    job = VaspJob(command, auto_npar=False, auto_gamma=False, backup=True, final=True)
    custodian = Custodian(
        vasp_handlers(walltime_s),
        [job],
        validators=[VasprunXMLValidator()],
        max_errors=int(max_errors),
        polling_time_step=polling_s,
        monitor_freq=max(1, round(monitor_s / polling_s)),
        terminate_on_nonzero_returncode=False,
        directory=str(directory),
    )
    return _run(custodian, directory, command, "vasp")
