"""Shared by the training tests: EMT-labelled Al cells and a tiny MACE configuration."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

TINY_MODEL = {
    "r_max_A": 4.0,
    "num_channels": 8,
    "max_L": 1,
    "max_ell": 2,
    "correlation": 2,
    "num_interactions": 1,
    "num_radial_basis": 6,
    "num_polynomial_cutoff": 5,
}


def emt_labelled(atoms):
    """Copy of atoms with EMT energy/forces/stress stored under the dataset's REF_* keys."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    atoms.info["REF_energy"] = atoms.get_potential_energy()
    atoms.arrays["REF_forces"] = atoms.get_forces()
    atoms.info["REF_stress"] = atoms.get_stress(voigt=True)
    atoms.calc = None
    return atoms


def emt_frames(n: int, seed: int, *, max_strain: float = 0.02, rattle: float = 0.05) -> list:
    """EMT-labelled, strained and rattled 4-atom Al cells with the dataset's REF_* keys."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk("Al", "fcc", a=4.0, cubic=True)
        eps = rng.uniform(-max_strain, max_strain, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        atoms.rattle(rattle, seed=int(rng.integers(10**6)))
        atoms = emt_labelled(atoms)
        atoms.info["config_type"] = "strained"
        frames.append(atoms)
    return frames


def write_dataset(directory: Path, n_train: int = 10, n_val: int = 4) -> tuple[Path, Path]:
    """train.xyz / val.xyz in ``directory``; one training structure lacks a stress label."""
    directory.mkdir(parents=True, exist_ok=True)
    train = emt_frames(n_train, seed=1)
    del train[4].info["REF_stress"]
    ase.io.write(directory / "train.xyz", train)
    ase.io.write(directory / "val.xyz", emt_frames(n_val, seed=2))
    return directory / "train.xyz", directory / "val.xyz"
