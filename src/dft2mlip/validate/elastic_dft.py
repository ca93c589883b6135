"""Relaxed-ion DFT side of the elastic constants: what every engine shares.

The clamped-ion DFT stresses are ordinary single points of the dataset (``dft_*`` rules). For
relaxed ion, the engine relaxes the atoms inside each fixed strained cell with *exactly* the
dataset's settings; the engine modules own that relaxation (pw.x ``relax``:
:func:`dft2mlip.dft.qe.write_fixed_cell_relax_input` and
:func:`dft2mlip.dft.qe.parse_fixed_cell_relax`; VASP ``ISIF = 2``: the functions of the same
names in :mod:`dft2mlip.dft.vasp`), the engine objects (:mod:`dft2mlip.dft.engines`) choose, and
:func:`dft2mlip.dft.outputs.check_relaxed_forces` is the force check of every relaxed frame.

Here: the reuse of a clamped-ion label that needs no relaxation.
"""

from __future__ import annotations

import numpy as np

from dft2mlip.data import Label


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
