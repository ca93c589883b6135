"""Engine-independent steps of one DFT label: write the input, run it, parse it (with provenance).

These are what the workflow's dft_input job (write) and dft_run job (run, then parse) call; the
engine (``qe`` or ``vasp``) and its config section are explicit arguments. When a convergence
study ran, its chosen-settings file replaces the cutoff and k-point spacing
(:func:`dft2mlip.dft.convergence.apply_chosen`), for every label alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ase import Atoms

from dft2mlip.data import Label
from dft2mlip.dft.convergence import apply_chosen
from dft2mlip.io import atomic_write_text

#: set to 1 only to run the test stand-in of VASP (tests/vasp_standin), which needs no POTCAR
STANDIN_ENV = "DFT2MLIP_VASP_STANDIN"
ENGINES = ("qe", "vasp")


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"dft.engine must be one of {ENGINES}, got {engine!r}")


def engine_settings(engine: str, engine_cfg: Mapping, chosen_path=None):
    """The validated settings object (QESettings or VaspSettings) every label uses."""
    _check_engine(engine)
    cfg = apply_chosen(engine, engine_cfg, chosen_path)
    if engine == "qe":
        from dft2mlip.dft.settings import QESettings

        return QESettings.from_config(cfg)
    from dft2mlip.dft.vasp import VaspSettings

    return VaspSettings.from_config(cfg)


def write_input(
    engine: str,
    engine_cfg: Mapping,
    atoms: Atoms,
    directory: str | os.PathLike,
    settings_path: str | os.PathLike,
    *,
    chosen_path: str | os.PathLike | None = None,
) -> dict:
    """Write the engine input into ``directory`` and ``settings_path`` (hash + physics).

    Returns
    -------
    dict
        ``{"engine", "settings_hash", "physics", ...}`` as written to ``settings_path``.
    """
    settings = engine_settings(engine, engine_cfg, chosen_path)
    directory = Path(directory)
    if engine == "qe":
        from dft2mlip.dft.qe import write_pw_input

        mesh = write_pw_input(atoms, settings, directory / "pw.in")
        record = {"settings_hash": settings.settings_hash(), "physics": settings.physics_dict()}
        record["kpoint_mesh"] = list(mesh)  # the structure family's mesh
    else:
        from dft2mlip.dft.vasp import write_vasp_input

        written = write_vasp_input(atoms, settings, directory)
        hashes = written["potcar_sha256"]
        record = {
            "settings_hash": settings.settings_hash(hashes),
            "physics": settings.physics_dict(hashes),
            "potcar_spec": written["potcar_spec"],
            "kpoint_mesh": list(written["kpoint_mesh"]),  # the structure family's mesh
        }
    record["engine"] = engine
    record["convergence_choice"] = (
        json.loads(Path(chosen_path).read_text()) if chosen_path else None
    )
    atomic_write_text(settings_path, json.dumps(record, indent=2, sort_keys=True, default=str))
    return record


def run_input(
    engine: str,
    directory: str | os.PathLike,
    *,
    executable: str,
    nprocs: int = 1,
    mpi_launcher: str | None = "mpirun -np {nprocs}",
    max_errors: int = 3,
    walltime_s: float | None = None,
) -> dict:
    """Run the input in ``directory`` under custodian; returns the run record (never raises
    because the calculation failed)."""
    _check_engine(engine)
    from dft2mlip.dft.execute import run_pw_custodian, run_vasp_custodian

    directory = Path(directory)
    kwargs = dict(
        executable=executable,
        nprocs=nprocs,
        mpi_launcher=mpi_launcher,
        max_errors=max_errors,
        walltime_s=walltime_s,
    )
    if engine == "qe":
        return run_pw_custodian(directory / "pw.in", **kwargs)
    return run_vasp_custodian(
        directory, allow_potcar_spec=os.environ.get(STANDIN_ENV) == "1", **kwargs
    )


def parse_run(
    engine: str,
    engine_cfg: Mapping,
    directory: str | os.PathLike,
    structure: Atoms,
    settings_path: str | os.PathLike,
    run_info: Mapping | None = None,
    *,
    chosen_path: str | os.PathLike | None = None,
) -> Label:
    """Parse the run in ``directory`` into a Label; provenance gets the settings hash, the run
    record and every correction custodian applied.

    Raises
    ------
    RuntimeError
        If ``settings_path`` was written with other settings than the current config's.
    """
    settings = engine_settings(engine, engine_cfg, chosen_path)
    directory = Path(directory)
    written = json.loads(Path(settings_path).read_text())
    settings_hash = written["settings_hash"]
    if engine == "qe":
        from dft2mlip.dft.qe import parse_pw_output

        current = settings.settings_hash()
    else:
        from dft2mlip.dft.vasp import parse_vasp_output, potcar_hashes_from_file

        potcar = directory / "POTCAR"
        current = settings.settings_hash(
            potcar_hashes_from_file(potcar) if potcar.is_file() else None
        )
    if current != settings_hash:
        raise RuntimeError(
            f"{settings_path} was written with other DFT settings than the config's "
            f"({settings_hash} vs {current}); rerun with --rerun-triggers params input"
        )
    if engine == "qe":
        label = parse_pw_output(directory / "pw.out", structure, settings_hash, settings=settings)
    else:
        label = parse_vasp_output(directory, structure, settings_hash, settings=settings)
    run_info = dict(run_info or {})
    label.provenance["settings_hash"] = settings_hash
    label.provenance["run"] = run_info
    label.provenance["corrections"] = run_info.get("corrections", [])
    if engine == "vasp":
        label.provenance["potcar_sha256"] = written["physics"].get("potcar_sha256", {})
        label.provenance["potcar_spec"] = written.get("potcar_spec", False)
    if written.get("kpoint_mesh"):
        label.provenance["kpoint_mesh"] = written["kpoint_mesh"]
    if written.get("convergence_choice"):
        label.provenance["convergence_point"] = written["convergence_choice"].get("point")
    if run_info.get("walltime_reached") and label.status != "ok":
        label.message = f"walltime reached ({run_info.get('custodian_error')}); {label.message}"
    return label


def execution_settings(dft_cfg: Mapping) -> dict:
    """How DFT runs are launched (not what they compute), from the config's ``dft`` section.

    Kept out of the rules' params on purpose: switching launcher, executable or recovery budget
    (e.g. from the workstation to the cluster profile) must not invalidate finished labels.

    Returns
    -------
    dict
        ``executable``, ``mpi_launcher``, ``max_errors``, ``walltime_s`` (keyword arguments of
        :func:`run_input`).
    """
    engine = dft_cfg["engine"]
    return {
        "executable": dft_cfg[engine]["executable"],
        "mpi_launcher": dft_cfg["mpi_launcher"],
        "max_errors": dft_cfg["max_errors"],
        "walltime_s": dft_cfg["walltime_s"],
    }
