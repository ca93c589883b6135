"""Write the external dataset of config/examples/import_only.yaml: fcc Cu labelled with ASE's EMT.

EMT is not DFT: it stands in for a user's own finished dataset (train/val/test extxyz files with
REF_energy, REF_forces, REF_stress in eV, eV/Å, eV/Å³, tension positive) so that the import-only
path can be run and tested anywhere. Deterministic (seeded); run from the repository root:

    .venv/bin/python tools/make_emt_dataset.py config/examples/data
"""

from __future__ import annotations

import sys
from pathlib import Path

import ase.io
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

#: frames per file; the test file is the user's own test set and must stay one
SIZES = {"train": 48, "val": 8, "test": 24}
A_CU = 3.61  # Å, close to EMT's own Cu lattice constant


def labelled_frame(rng: np.random.Generator) -> ase.Atoms:
    """A 4-atom conventional Cu cell with a random symmetric strain (up to 3%) and rattle."""
    atoms = bulk("Cu", "fcc", a=A_CU, cubic=True)
    eps = rng.uniform(-0.03, 0.03, (3, 3))
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
    atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
    atoms.calc = EMT()
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    atoms.calc = None
    atoms.info.update(REF_energy=float(energy), REF_stress=stress, config_type="emt")
    atoms.arrays["REF_forces"] = forces
    return atoms


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261129)
    for split, n in SIZES.items():
        frames = [labelled_frame(rng) for _ in range(n)]
        ase.io.write(out / f"cu_emt_{split}.extxyz", frames, format="extxyz")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "config/examples/data")
