"""The DFT-relaxed reference cell: cell and ions relaxed with the dataset's exact DFT settings.

Every strained, elastic and MD cell is made from this cell (``material.relax``, on by default),
so that the elastic constants are those of the unstressed DFT crystal, not of a cell held at
the configured (experimental) lattice constant under a residual pressure.

The engine modules own the engine-specific parts, with one signature each:

- ``write_relax_input(atoms, settings, directory, thresholds) -> dict`` (``kpoint_mesh``);
- ``read_relax(directory, thresholds) -> RelaxOutcome`` (:mod:`dft2mlip.dft.outputs`).

This module asks the engine object (:func:`dft2mlip.dft.engines.get_engine`), runs the input under
custodian like a single point (:func:`dft2mlip.dft.labels.run_input`) and turns the outcome
into the summary the report shows (:func:`relax_summary`). Units: Å, eV/Å³ (tension positive)
inside; the summary gives GPa, with the pressure compression positive (P = -tr(σ)/3).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from dft2mlip.dft.engines import get_engine
from dft2mlip.dft.outputs import RelaxOutcome
from dft2mlip.structures import bare_cell
from dft2mlip.units import GPA_TO_EV_PER_A3

#: info key of the relaxed reference cell's status in relaxed.extxyz
STATUS_KEY = "relax_status"


@dataclass(frozen=True)
class RelaxThresholds:
    """When a reference relaxation counts as converged (physics units).

    Attributes
    ----------
    fmax_eV_per_A
        Largest force on an atom (eV/Å): QE ``forc_conv_thr`` (Ry/bohr), VASP ``EDIFFG < 0``.
    pressure_GPa
        Largest |pressure| (GPa): QE ``press_conv_thr`` (kbar). VASP has no pressure criterion
        (its ``EDIFFG < 0`` stops on forces only); the final pressure is reported either way.
    max_steps
        Ionic steps at most (QE ``nstep``, VASP ``NSW``; ``dft.relax.max_steps``).
    energy_eV
        Energy change between ionic steps (eV; QE ``etot_conv_thr``).
    """

    fmax_eV_per_A: float = 2.5e-3
    pressure_GPa: float = 0.01
    max_steps: int = 60
    energy_eV: float = 1.0e-4

    @classmethod
    def from_config(cls, relax_cfg: Mapping | None) -> RelaxThresholds:
        """From ``config["dft"]["relax"]`` (``fmax_eV_per_A``, ``pressure_GPa``, ``max_steps``)."""
        known = {"fmax_eV_per_A", "pressure_GPa", "max_steps"}
        cfg = dict(relax_cfg or {})
        if unknown := sorted(set(cfg) - known):
            raise ValueError(f"unknown key(s) dft.relax.{unknown}; known: {sorted(known)}")
        return cls(**cfg)


def write_relax_input(
    engine: str,
    engine_cfg: Mapping,
    atoms: Atoms,
    directory: str | os.PathLike,
    *,
    chosen_path: str | os.PathLike | None = None,
    thresholds: RelaxThresholds = RelaxThresholds(),
) -> dict:
    """Write the cell + ion relaxation input of ``atoms`` with the dataset's settings.

    Returns
    -------
    dict
        ``engine``, ``settings_hash``, ``kpoint_mesh`` (of ``atoms``' own cell) and the
        thresholds, as recorded in the summary.
    """
    eng = get_engine(engine)
    settings = eng.settings(engine_cfg, chosen_path)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bare = bare_cell(atoms)
    bare.info["structure_id"] = "reference"
    written = eng.write_relax_input(bare, settings, directory, thresholds)
    return {"engine": engine, **written, "kspacing_per_A": settings.kspacing_per_A,
            "thresholds": thresholds.__dict__.copy()}  # fmt: skip


def lattice_parameters(atoms: Atoms) -> dict:
    """a, b, c (Å), α, β, γ (degrees) and the volume (Å³) of a cell."""
    a, b, c, alpha, beta, gamma = (float(x) for x in atoms.cell.cellpar())
    return {"a_A": a, "b_A": b, "c_A": c, "alpha_deg": alpha, "beta_deg": beta,
            "gamma_deg": gamma, "volume_A3": float(atoms.get_volume())}  # fmt: skip


def pressure_GPa(stress: np.ndarray) -> float:
    """Pressure (GPa, compression positive) of a Voigt stress in eV/Å³, tension positive."""
    return float(-np.mean(np.asarray(stress, dtype=float)[:3]) / GPA_TO_EV_PER_A3)


def relax_summary(initial: Atoms, outcome: RelaxOutcome, written: Mapping) -> dict:
    """The JSON record of a reference relaxation (what the report and the structures job read).

    Keys: ``status``, ``message``, ``engine``, ``initial`` and ``final`` lattice parameters,
    ``volume_change_percent``, ``stress_GPa`` (Voigt, tension positive) and ``pressure_GPa``
    (compression positive) of the final state, ``max_force_eV_per_A``, ``n_steps``,
    ``kpoint_mesh`` (used during the relaxation), ``settings_hash``, ``thresholds``,
    ``provenance``.
    """
    summary = {
        "relaxed": True,
        "status": outcome.status,
        "message": outcome.message,
        "n_steps": int(outcome.n_steps),
        "initial": lattice_parameters(initial),
        **{k: written.get(k) for k in ("engine", "settings_hash", "kpoint_mesh", "thresholds")},
        "provenance": outcome.provenance,
    }
    if outcome.final is not None:
        final = lattice_parameters(outcome.final)
        summary["final"] = final
        v0 = summary["initial"]["volume_A3"]
        summary["volume_change_percent"] = 100.0 * (final["volume_A3"] / v0 - 1.0)
    if outcome.stress is not None:
        summary["stress_GPa"] = [float(s) / GPA_TO_EV_PER_A3 for s in outcome.stress]
        summary["pressure_GPa"] = pressure_GPa(outcome.stress)
    if outcome.forces is not None and len(outcome.forces):
        summary["max_force_eV_per_A"] = float(np.linalg.norm(outcome.forces, axis=1).max())
    return summary


def conventional_parameters(material: Mapping, initial: Atoms, final: Atoms | None) -> dict:
    """Lattice parameters of the conventional cell (what papers quote: cubic a, hexagonal a
    and c) before and after the relaxation (``{"initial": ..., "final": ...}``)."""
    from dft2mlip.structures import conventional_of_reference

    out = {"initial": lattice_parameters(conventional_of_reference(material, initial))}
    if final is not None:
        out["final"] = lattice_parameters(conventional_of_reference(material, final))
    return out


def write_reference(path, atoms: Atoms, summary: Mapping) -> None:
    """Write the relaxed reference cell (one extxyz frame, bare atoms + its status)."""
    from ase.io import write

    from dft2mlip.io import atomic_write

    bare = bare_cell(atoms)
    bare.info[STATUS_KEY] = summary["status"]
    with atomic_write(path) as tmp:
        write(tmp, bare, format="extxyz")


def read_reference(structure_path, summary_path) -> Atoms:
    """The relaxed reference cell, refusing one whose relaxation did not finish "ok".

    Raises
    ------
    RuntimeError
        With the relaxation's own cause and how to go on (fix it and rerun the relaxation, or
        set ``material.relax: false`` to start from the configured cell, unrelaxed).
    """
    from ase.io import read

    summary = json.loads(Path(summary_path).read_text())
    if summary.get("status") != "ok":
        raise RuntimeError(
            f"the DFT relaxation of the reference cell failed ({summary_path}): "
            f"{summary.get('message')}; no structure is built from an unrelaxed cell. Fix the "
            "cause and rerun it (snakemake --forcerun relax_reference), or set "
            "material.relax: false to start from the configured cell as it is"
        )
    atoms = read(structure_path, index=0, format="extxyz")
    atoms.info.clear()
    atoms.calc = None
    return atoms


#: the record write_relax_files leaves beside the input (engine, settings hash, k-mesh, thresholds)
INPUT_RECORD = "relax_input.json"


def write_relax_files(
    engine: str,
    engine_cfg: Mapping,
    material: Mapping,
    directory,
    *,
    chosen_path=None,
    thresholds: RelaxThresholds = RelaxThresholds(),
) -> dict:
    """Write the relaxation input of the material's configured cell into ``directory``, and
    the record (:data:`INPUT_RECORD`) of what it was written with; no DFT runs."""
    from dft2mlip.io import atomic_write_text
    from dft2mlip.structures import primitive_cell

    written = write_relax_input(engine, engine_cfg, primitive_cell(material), directory,
                                chosen_path=chosen_path, thresholds=thresholds)  # fmt: skip
    text = json.dumps(written, indent=2, sort_keys=True, default=str)
    atomic_write_text(Path(directory) / INPUT_RECORD, text)
    return written


def run_relaxation(
    material: Mapping, directory, structure_path, summary_path, *, run: Mapping, nprocs: int = 1
) -> dict:
    """Run the relaxation input in ``directory`` (:func:`write_relax_files`) under custodian and
    write the relaxed cell and its summary.

    The relaxed cell is written even when the relaxation failed (its last structure, status in
    the file), so the cause can be inspected; :func:`read_reference` refuses it.

    Parameters
    ----------
    run
        How the engine is launched (:func:`dft2mlip.dft.labels.execution_settings`).

    Returns
    -------
    dict
        :func:`relax_summary`, with ``conventional`` (lattice parameters of the conventional
        cell) and ``run`` (custodian's record: wall time, corrections).
    """
    import shutil

    from dft2mlip.dft.labels import run_input
    from dft2mlip.io import atomic_write_text
    from dft2mlip.structures import primitive_cell

    directory = Path(directory)
    written = json.loads((directory / INPUT_RECORD).read_text())
    engine, thresholds = written["engine"], RelaxThresholds(**written["thresholds"])
    initial = primitive_cell(material)
    record = run_input(engine, directory, nprocs=nprocs, **run)
    shutil.rmtree(directory / "tmp", ignore_errors=True)  # pw.x scratch (outdir)
    outcome = get_engine(engine).read_relax(directory, thresholds)
    if record.get("custodian_error") and outcome.status == "ok":
        outcome.message += f" (custodian: {record['custodian_error']})"
    summary = {**relax_summary(initial, outcome, written), "run": record}
    summary["conventional"] = conventional_parameters(material, initial, outcome.final)
    if outcome.final is not None:  # the families' mesh (from the relaxed cell) may differ
        from dft2mlip.dft.qe import kpoint_mesh

        mesh = kpoint_mesh(outcome.final.cell, written["kspacing_per_A"])
        summary["kpoint_mesh_relaxed_cell"] = list(mesh)
    final = outcome.final if outcome.final is not None else initial
    write_reference(structure_path, final, summary)
    atomic_write_text(summary_path, json.dumps(summary, indent=2, sort_keys=True, default=str))
    return summary


def relax_reference(
    engine: str,
    engine_cfg: Mapping,
    material: Mapping,
    structure_path,
    summary_path,
    *,
    run: Mapping,
    nprocs: int = 1,
    chosen_path=None,
    thresholds: RelaxThresholds = RelaxThresholds(),
) -> dict:
    """:func:`write_relax_files` then :func:`run_relaxation`, in the summary's folder."""
    directory = Path(summary_path).parent
    write_relax_files(engine, engine_cfg, material, directory, chosen_path=chosen_path,
                      thresholds=thresholds)  # fmt: skip
    return run_relaxation(material, directory, structure_path, summary_path, run=run,
                          nprocs=nprocs)  # fmt: skip


def working_reference(inputs, *, relax: bool) -> Atoms | None:
    """The cell every structure of a Snakemake job is built from (its working reference).

    Parameters
    ----------
    inputs
        The job's ``snakemake.input``: ``reference`` and ``reference_summary`` are the outputs
        of rule ``relax_reference`` (common.smk ``reference_inputs()``, empty lists when the
        cell is not relaxed).
    relax
        Whether the material's cell is relaxed with DFT (``material.relax`` and new DFT;
        common.smk ``relax_enabled()``).

    Returns
    -------
    ase.Atoms or None
        The DFT-relaxed cell when ``relax``; None (the configured cell) only when it is off.

    Raises
    ------
    RuntimeError
        ``relax`` on and the job has no relaxed reference among its inputs (a rule that builds
        a cell without declaring ``reference_inputs()``), or ``relax`` off and it has one; or a
        failed relaxation (:func:`read_reference`). Never falls back to the configured cell.
    """

    def first(name):
        value = getattr(inputs, name, None) or []
        return value if isinstance(value, str) else (list(value) or [None])[0]

    structure, summary = first("reference"), first("reference_summary")
    if not relax:
        if structure or summary:
            raise RuntimeError(
                f"material.relax is off but the job was given a relaxed reference ({structure}, "
                f"{summary}); declare reference_inputs() (empty when not relaxed) as its input"
            )
        return None
    if not (structure and summary):
        raise RuntimeError(
            "material.relax is on but this job has no relaxed reference among its inputs "
            f"(reference: {structure}, reference_summary: {summary}); the rule must declare "
            "**reference_inputs() (common.smk), no cell is built from the unrelaxed one"
        )
    return read_reference(structure, summary)


def reference_record(summary_path, *, relax: bool, new_dft: bool) -> dict:
    """What the report says about the reference cell: the relaxation summary when there is one,
    else why the cell is the configured one (``relaxed`` False and a ``message``)."""
    if summary_path:
        return json.loads(Path(summary_path).read_text())
    why = (
        "no DFT in this run (dft.engine: none, labels imported only): the reference cell is "
        "the configured one, not relaxed"
        if not new_dft
        else "material.relax is false: strains, elastic constants and MD start from the "
        "configured cell, not relaxed with DFT (it may carry a residual pressure)"
    )
    return {"relaxed": False, "status": "unrelaxed", "message": why}
