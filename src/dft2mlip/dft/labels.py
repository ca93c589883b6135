"""Engine-independent steps of one DFT label: write the input, run it, parse it (with provenance).

These are what the workflow's dft_input job (write) and dft_run job (run, then parse) call; the
engine's name (``qe`` or ``vasp``, see :mod:`dft2mlip.dft.engines`) and its config section are
explicit arguments. When a convergence study ran, its chosen-settings file replaces the cutoff
and k-point spacing (:meth:`~dft2mlip.dft.engines.Engine.settings`), for every label alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ase import Atoms

from dft2mlip.data import Label
from dft2mlip.dft.engines import STANDIN_ENV, get_engine  # noqa: F401 (STANDIN_ENV re-exported)
from dft2mlip.io import atomic_write_text


def engine_settings(engine: str, engine_cfg: Mapping, chosen_path=None):
    """The validated settings object (QESettings or VaspSettings) every label uses."""
    return get_engine(engine).settings(engine_cfg, chosen_path)


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
        ``{"engine", "settings_hash", "physics", "kpoint_mesh", ...}`` as written to
        ``settings_path``.
    """
    eng = get_engine(engine)
    record = eng.write_input(atoms, eng.settings(engine_cfg, chosen_path), Path(directory))
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
    return get_engine(engine).run(
        Path(directory),
        executable=executable,
        nprocs=nprocs,
        mpi_launcher=mpi_launcher,
        max_errors=max_errors,
        walltime_s=walltime_s,
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
    allow_order_change: bool = False,
) -> Label:
    """Parse the run in ``directory`` into a Label; provenance gets the settings hash, the run
    record and every correction custodian applied.

    Under a per-site magnetic order the label records the initial site moments and, when the
    output gives the final ones, is "failed" if the run left the order (AFM converged to FM, a
    moment collapsed; :func:`~dft2mlip.dft.magnetism.order_change`) unless
    ``allow_order_change`` (``dft.allow_magnetic_order_change``).

    Raises
    ------
    RuntimeError
        If ``settings_path`` was written with other settings than the current config's.
    """
    eng = get_engine(engine)
    settings = eng.settings(engine_cfg, chosen_path)
    directory = Path(directory)
    written = json.loads(Path(settings_path).read_text())
    settings_hash = written["settings_hash"]
    current = eng.current_hash(settings, directory)
    if current != settings_hash:
        raise RuntimeError(
            f"{settings_path} was written with other DFT settings than the config's "
            f"({settings_hash} vs {current}); rerun with --rerun-triggers params input"
        )
    label = eng.parse(directory, structure, settings_hash, settings)
    run_info = dict(run_info or {})
    label.provenance["settings_hash"] = settings_hash
    label.provenance["run"] = run_info
    label.provenance["corrections"] = run_info.get("corrections", [])
    label.provenance.update(eng.label_provenance(written))
    if written.get("kpoint_mesh"):
        label.provenance["kpoint_mesh"] = written["kpoint_mesh"]
    if written.get("convergence_choice"):
        label.provenance["convergence_point"] = written["convergence_choice"].get("point")
    if run_info.get("walltime_reached") and label.status != "ok":
        label.message = f"walltime reached ({run_info.get('custodian_error')}); {label.message}"
    if getattr(settings, "magnetic_order_muB", None) is not None:
        return _checked_order(label, structure, allow_order_change)
    return label


def _checked_order(label: Label, structure: Atoms, allow: bool) -> Label:
    """Record the initial site moments; refuse (status failed, with the cause) an ok label whose
    final site moments left the initial order, unless ``allow``."""
    from dataclasses import replace

    from dft2mlip.dft.magnetism import order_change

    initial = [float(m) for m in structure.get_initial_magnetic_moments()]
    label.provenance["initial_site_moments_muB"] = initial
    final = label.provenance.get("site_magnetizations_muB")
    if label.status != "ok":
        return label
    if final is None:
        label.provenance["magnetic_order_check"] = "not done: the output gives no site moments"
        return label
    why = order_change(initial, final)
    label.provenance["magnetic_order_check"] = why or "kept"
    if why is None or allow:
        return label
    return replace(
        label,
        status="failed",
        message=(
            f"magnetic order changed: {why}; the label is not trained on (set "
            "dft.allow_magnetic_order_change: true to keep it, or start closer to the order)"
        ),
    )


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
