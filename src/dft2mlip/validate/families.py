"""Are the labels of different cell families consistent with each other?

Every structure family gets one k-point mesh, from its reference cell at the configured
k-point spacing (strains of one cell share it), so within a family the k-sampling error is the
same for every label and cancels in the energy differences a potential learns. Across families
it does not: the 2-atom primitive cells (hydrostatic, strained, rattled, elastic sets) and the
cells built from the conventional cell (supercells, vacancy cells, MD frames, snapshots,
held-out frames, active-learning picks) sample the Brillouin zone differently, and one
potential is trained on both. Their offset, per atom, is an error no training removes: it
shows up as an energy (and, if large, stress) error on every cell of the other family.

The check: the perfect reference crystal in both cells, each with the mesh the pipeline gives
its family, labelled with the dataset's DFT settings; the offset in energy per atom and in
stress is compared with ``dft.convergence``'s tolerances (``energy_tol_meV_per_atom``,
``stress_tol_GPa``). Measured for Si: ``bench/results/kpoint_families.md``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from dft2mlip.structures import conventional_cell, primitive_cell
from dft2mlip.units import EV_PER_A3_TO_GPA

log = logging.getLogger(__name__)
#: the families compared (structure ids ``family-<name>``); the first is the reference
FAMILIES = ("primitive", "conventional")


def family_structure_ids(material: Mapping) -> list[str]:
    """Structure ids of the check, known from the config: none when the primitive cell is the
    conventional one (one family; e.g. a structure file used as it is, or a simple-cubic cell)."""
    if len(primitive_cell(material)) == len(conventional_cell(material, (1, 1, 1))):
        return []
    return [f"family-{name}" for name in FAMILIES]


def family_cells(material: Mapping, reference: Atoms | None) -> list[Atoms]:
    """The perfect crystal in each family's cell (the conventional cell 1x1x1: the cell the
    supercells, MD cells and held-out frames repeat), made from the working reference cell;
    each carries its own cell as k-point reference, so its mesh is its family's."""
    cells = {"primitive": primitive_cell(material, reference),
             "conventional": conventional_cell(material, (1, 1, 1), reference)}  # fmt: skip
    out = []
    for name in FAMILIES:
        atoms = cells[name]
        atoms.info.update(structure_id=f"family-{name}", config_type=f"family_{name}")
        out.append(atoms)
    return out


def _per_atom(atoms: Atoms) -> tuple[float, np.ndarray]:
    """Energy per atom (eV) and Voigt stress (GPa, tension positive) of an ok label."""
    stress = np.asarray(atoms.info["REF_stress"], dtype=float) * EV_PER_A3_TO_GPA
    return float(atoms.info["REF_energy"]) / len(atoms), stress


def family_offsets(labels: Sequence[Atoms], statuses: Sequence[str], energy_tol_meV: float,
                   stress_tol_GPa: float) -> dict:  # fmt: skip
    """Offset of each family from the first (``FAMILIES``), per atom, with the verdict.

    Parameters
    ----------
    labels, statuses
        The family labels in ``FAMILIES`` order and their statuses.
    energy_tol_meV, stress_tol_GPa
        The DFT tolerances the labels are meant to meet (``dft.convergence``).

    Returns
    -------
    dict
        ``families`` (per family: atoms, energy per atom eV, stress GPa, status), ``offsets``
        (per other family: ``energy_meV_per_atom``, largest stress component ``stress_GPa``),
        the tolerances and ``consistent`` (True, False, or None when a label is not ok) with a
        one-line ``verdict``.
    """
    out: dict = {"energy_tol_meV_per_atom": float(energy_tol_meV),
                 "stress_tol_GPa": float(stress_tol_GPa),
                 "families": {}, "offsets": {}}  # fmt: skip
    values = {}
    for name, atoms, status in zip(FAMILIES, labels, statuses, strict=True):
        entry = {"n_atoms": len(atoms), "status": status}
        if status == "ok":
            energy, stress = _per_atom(atoms)
            values[name] = (energy, stress)
            entry.update(energy_eV_per_atom=energy, stress_GPa=[float(s) for s in stress])
        out["families"][name] = entry
    if len(values) < len(FAMILIES):
        bad = [n for n in FAMILIES if n not in values]
        out.update(consistent=None, verdict=f"unknown: the {', '.join(bad)} label failed")
        return out
    e0, s0 = values[FAMILIES[0]]
    worst = []
    for name in FAMILIES[1:]:
        energy, stress = values[name]
        d_e, d_s = 1e3 * (energy - e0), float(np.max(np.abs(stress - s0)))
        out["offsets"][name] = {"energy_meV_per_atom": d_e, "stress_GPa": d_s}
        if abs(d_e) > energy_tol_meV:
            worst.append(f"{name} cells {d_e:+.2f} meV/atom (tolerance {energy_tol_meV:g})")
        if d_s > stress_tol_GPa:
            worst.append(f"{name} cells {d_s:.3f} GPa in stress (tolerance {stress_tol_GPa:g})")
    out["consistent"] = not worst
    out["verdict"] = (
        "consistent within the DFT tolerances" if not worst else
        f"inconsistent: {'; '.join(worst)} from the primitive cells with the same settings; "
        "raise the k-point density (dft.qe.kspacing_per_A / dft.vasp.kspacing_per_A, or run "
        "dft.convergence) until the families agree"
    )  # fmt: skip
    return out


def write_family_offsets(label_paths: Sequence[str], energy_tol_meV: float,
                         stress_tol_GPa: float, out_path: str | Path) -> dict:  # fmt: skip
    """Read the family labels, write :func:`family_offsets` as JSON and log its verdict (a
    warning, reaching the console, when the families disagree)."""
    from dft2mlip.data import read_label

    labels = [read_label(p) for p in label_paths]
    result = family_offsets([lab.atoms for lab in labels], [lab.status for lab in labels],
                            energy_tol_meV, stress_tol_GPa)  # fmt: skip
    Path(out_path).write_text(json.dumps(result, indent=1) + "\n")
    if result["consistent"] is False:
        log.warning("labels of different cell families: %s", result["verdict"])
    else:
        log.info("labels of different cell families: %s", result["verdict"])
    return result
