"""Relaxed-ion DFT side of the elastic constants: an ionic relaxation in each fixed strained cell.

Here: the pw.x ``relax`` path and what every engine shares (the force check of the relaxed frame,
the reuse of a clamped-ion label that needs no relaxation). VASP's ``ISIF = 2`` path is in
:mod:`dft2mlip.dft.vasp`; the engine objects (:mod:`dft2mlip.dft.engines`) choose.

The clamped-ion DFT stresses are ordinary single points of the dataset (``dft_*`` rules). For
relaxed ion, pw.x relaxes the atoms (BFGS) inside each fixed strained cell with *exactly* the
dataset's settings (same namelists from :func:`dft2mlip.dft.qe.pw_input_data`, same k-point
mesh and pseudopotentials; only ``calculation = 'relax'`` and the ionic thresholds differ), and
the stress of the final, relaxed frame is the label. The final frame is parsed with
:func:`dft2mlip.dft.qe.parse_pw_output` (units and signs converted there, status checks,
cutoffs and pseudopotential md5 verified) against the relaxed structure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.units import Bohr, Ry

from dft2mlip.data import Label
from dft2mlip.dft.qe import parse_pw_output, pw_input_data, write_pw_input
from dft2mlip.dft.settings import QESettings

_BFGS_CONVERGED = re.compile(r"bfgs converged in\s+(\d+)\s+scf cycles and\s+(\d+)\s+bfgs steps")
_MAX_STEPS = "The maximum number of steps has been reached."
#: energy-change threshold (Ry) between ionic steps; the force threshold decides convergence
ETOT_CONV_THR_RY = 1.0e-7


def relax_input_data(
    atoms: Atoms, settings: QESettings, *, fmax_eV_per_A: float, max_steps: int
) -> dict:
    """pw.x namelists for a fixed-cell ionic relaxation with the dataset's electronic settings.

    Parameters
    ----------
    atoms
        Strained cell.
    settings
        The dataset's QE settings (cutoffs, smearing, k-point density, SCF threshold).
    fmax_eV_per_A
        Force threshold (eV/Å), written as ``forc_conv_thr`` in Ry/bohr.
    max_steps
        ``nstep``: ionic steps at most.
    """
    data = pw_input_data(atoms, settings)
    data["control"].update(
        {
            "calculation": "relax",
            "forc_conv_thr": float(fmax_eV_per_A) / (Ry / Bohr),
            "etot_conv_thr": ETOT_CONV_THR_RY,
            "nstep": int(max_steps),
        }
    )
    data["ions"] = {"ion_dynamics": "bfgs"}
    return data


def write_relax_input(
    atoms: Atoms,
    settings: QESettings,
    path: str | os.PathLike,
    *,
    fmax_eV_per_A: float,
    max_steps: int,
) -> None:
    """Write the pw.x ``relax`` input of one strained cell (see :func:`relax_input_data`)."""
    data = relax_input_data(atoms, settings, fmax_eV_per_A=fmax_eV_per_A, max_steps=max_steps)
    write_pw_input(atoms, settings, path, input_data=data)


def parse_relax_output(
    output_path: str | os.PathLike,
    structure: Atoms,
    settings_hash: str,
    *,
    settings: QESettings,
    fmax_eV_per_A: float,
) -> Label:
    """Label of the final (relaxed) frame of a pw.x ``relax`` run.

    Status "ok" needs everything :func:`~dft2mlip.dft.qe.parse_pw_output` checks, plus "bfgs
    converged" and a final max |F| per atom within ``fmax_eV_per_A`` (+5 % for print
    rounding); the run stopping at ``nstep`` is "failed" with a message naming the key to
    raise. The label's atoms are the relaxed ones; ``info["voigt_strain"]`` and the structure
    id of ``structure`` are kept, ``info["relax_ionic_steps"]`` (BFGS steps) is added.
    """
    path = Path(output_path)
    text = path.read_text(errors="replace") if path.is_file() else ""
    try:
        final = ase.io.read(path, format="espresso-out", index=-1)
        relaxed = structure.copy()
        relaxed.set_cell(final.cell, scale_atoms=False)
        relaxed.positions = final.positions
    except Exception:  # noqa: BLE001 - the generic parser below names what is wrong
        relaxed = structure.copy()
    label = parse_pw_output(path, relaxed, settings_hash, settings=settings)
    if label.status != "ok":
        return label
    if _MAX_STEPS in text or not (m := _BFGS_CONVERGED.search(text)):
        label.status = "failed"
        label.message = (
            "pw.x relax did not converge the forces within nstep; raise "
            "validation.elastic.relax_max_steps"
        )
        return label
    label.atoms.info["relax_ionic_steps"] = int(m.group(2))
    label.message = f"relaxed in {m.group(2)} BFGS steps ({m.group(1)} SCF cycles)"
    return check_relaxed_forces(label, fmax_eV_per_A)


def check_relaxed_forces(label: Label, fmax_eV_per_A: float) -> Label:
    """``label`` (any engine's relaxed frame) marked "failed" when a force is above the threshold
    (+5 % for the engines' print rounding), naming the key."""
    if label.status != "ok":
        return label
    fmax = float(np.linalg.norm(label.atoms.arrays["REF_forces"], axis=1).max())
    if fmax > 1.05 * fmax_eV_per_A:
        label.status = "failed"
        label.message = (
            f"relaxed frame has max |F| = {fmax:.3g} eV/Å above validation.elastic."
            f"relax_fmax_eV_per_A = {fmax_eV_per_A:g}"
        )
    return label


def relaxed_label_from_clamped(
    clamped: Label, settings_hash: str, *, fmax_eV_per_A: float
) -> Label | None:
    """The clamped-ion label as the relaxed-ion one when no relaxation is needed, else None.

    A relaxation (pw.x ``relax``, VASP ``ISIF = 2``) stops after its first SCF when every force
    is already below the threshold, so that SCF (the clamped-ion single point with the same
    settings) *is* the relaxed result.
    Returns None (run the relaxation) when the label is not ok, was computed with other
    settings (``settings_hash``) or has a force above ``fmax_eV_per_A`` (eV/Å).
    """
    if clamped.status != "ok" or clamped.settings_hash != settings_hash:
        return None
    fmax = float(np.linalg.norm(clamped.forces, axis=1).max())
    if fmax > fmax_eV_per_A:
        return None
    atoms = clamped.atoms.copy()
    atoms.info["relax_ionic_steps"] = 0
    return Label(
        structure_id=clamped.structure_id,
        config_type=clamped.config_type,
        status="ok",
        message=(
            f"no relaxation needed: the clamped-ion label has max |F| = {fmax:.2g} eV/Å <= "
            f"{fmax_eV_per_A:g} (its SCF is the relaxed result)"
        ),
        atoms=atoms,
        provenance={**clamped.provenance, "reused_clamped_label": True},
        energy_kind=clamped.energy_kind,
        settings_hash=clamped.settings_hash,
        dft_engine=clamped.dft_engine,
    )
