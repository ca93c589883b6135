"""What a DFT engine's output gives, in the project's units: the bottom of :mod:`dft2mlip.dft`.

The engine modules (:mod:`~dft2mlip.dft.qe`, :mod:`~dft2mlip.dft.vasp`) read their outputs into
these types; :mod:`~dft2mlip.dft.importing` turns them into labels of imported runs and
:mod:`~dft2mlip.dft.relax` reports the reference relaxation from them. Nothing here knows an
engine, and this module imports no other module of :mod:`dft2mlip.dft`.

- :class:`OutputFrame` (one ionic step) and :class:`RunOutput` (one output file);
- :class:`RelaxOutcome`, what a relaxation output says (:func:`outcome_from_run`);
- :func:`check_relaxed_forces`, the force check every engine applies to a relaxed frame;
- :func:`read_until`, a file helper.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from dft2mlip.data import Label
from dft2mlip.structures import bare_cell


@dataclass
class OutputFrame:
    """One ionic step of a DFT output, in the project's units.

    ``energy_eV`` is the free energy consistent with the forces (QE "!" total energy, VASP
    ``free  energy   TOTEN``, never an enthalpy), ``forces`` (N, 3) eV/Å, ``stress`` (6,)
    eV/Å³ Voigt ``[xx, yy, zz, yz, xz, xy]`` tension positive; None when the output does not
    hold them. ``atoms`` is the structure this step was computed for (Å).
    """

    atoms: Atoms
    energy_eV: float | None
    forces: np.ndarray | None
    stress: np.ndarray | None
    converged: bool
    n_scf: int | None = None
    #: the engine's own words when this step gives no label (e.g. pw.x's SCF message)
    message: str = ""


@dataclass
class RunOutput:
    """What one engine output holds: its ionic frames, or the engine's own reason for none.

    ``failure`` is ``(status, message)`` when the run as a whole gives no label (error block,
    empty or unfinished output); ``settings`` are the physics settings it reports (what the
    import settings hash covers), ``provenance`` the rest of what it says about itself.
    """

    path: Path
    engine: str
    frames: list[OutputFrame] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    failure: tuple[str, str] | None = None


def read_until(path: str | os.PathLike, stop: str) -> str:
    """The text of ``path`` up to the first line that contains ``stop`` (reads no further)."""
    lines = []
    with open(path, errors="replace") as handle:
        for line in handle:
            if stop in line:
                break
            lines.append(line)
    return "".join(lines)


@dataclass
class RelaxOutcome:
    """What an engine's relaxation output says (read by the engine module's ``read_relax``).

    ``final`` is the relaxed structure (bare Atoms), ``stress`` its stress (eV/Å³, Voigt, tension
    positive) from the last SCF the engine printed (QE: the final SCF in the relaxed cell with
    fresh G-vectors), ``status`` "ok" or "failed" with the engine's own cause in ``message``.
    """

    status: str
    message: str
    final: Atoms | None = None
    stress: np.ndarray | None = None
    forces: np.ndarray | None = None
    n_steps: int = 0
    provenance: dict = field(default_factory=dict)


def outcome_from_run(
    run: RunOutput, *, converged: bool, n_steps: int, why_not: str, note: str = ""
) -> RelaxOutcome:
    """A :class:`RelaxOutcome` from an engine's parsed run (``RunOutput``) and its verdict.

    Parameters
    ----------
    run
        :class:`RunOutput`: its last frame is the relaxed state.
    converged
        Whether the engine said the relaxation converged.
    n_steps
        Ionic steps taken.
    why_not
        The engine's own cause when ``converged`` is False (names the setting to change).
    note
        Appended to the message of a converged run (e.g. how the final stress was computed).
    """
    if run.failure is not None:
        return RelaxOutcome("failed", run.failure[1], provenance=run.provenance)
    last = run.frames[-1]
    final = bare_cell(last.atoms)
    outcome = RelaxOutcome("ok", f"relaxed in {n_steps} ionic steps{note}", final,
                           last.stress, last.forces, n_steps, run.provenance)  # fmt: skip
    if not last.converged or last.energy_eV is None:
        outcome.status, outcome.message = "failed", last.message or "the last SCF did not converge"
    elif not converged:
        outcome.status, outcome.message = "failed", why_not
    elif last.stress is None:
        outcome.status, outcome.message = "failed", f"{run.path.name} has no final stress"
    return outcome


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
