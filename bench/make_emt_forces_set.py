"""A benchmark set where forces carry the information: 24-32-atom Cu cells labelled by EMT
(issue 25, item 1).

Labels are ASE's EMT (effective-medium theory), **not DFT**. That is fine for the question this
set answers: how a loss weighting divides the optimiser's attention between energy, forces and
stress depends on the shapes of the labels (one energy, 3 N force components and six stress
components per structure) and their statistics, not on the functional that produced them. A
32-atom cell has 96 force components for one energy: the information is mostly in forces, as in
the public Si set of issue 25 (bulk, vacancy, surface and MD cells of up to ~64 atoms), and
unlike the pipeline's 202-label Si set (mostly 2-atom cells). EMT makes the set cheap and
exactly reproducible here.

Structures (fcc Cu, a = 3.61 Å, every random draw from ``--seed``):

- ``bulk``: the 2x2x2 conventional supercell (32 atoms), random strain (each component of the
  symmetric strain uniform in ±``--strain``), atoms rattled by a Gaussian of 0.05-0.12 Å;
- ``vacancy``: the same with one atom removed (31 atoms);
- ``surface``: an fcc(100) slab, 2x2 in plane, 6 layers (24 atoms), 6 Å vacuum on each side,
  periodic in all three directions (the stress of the whole cell is its label), rattled;
- ``md``: snapshots every 25 steps of a Langevin MD at ``--temperature`` (2 fs, friction
  0.02/fs) of the 32-atom cell with EMT, after 200 steps of equilibration.

Every label carries ``REF_energy`` (eV), ``REF_forces`` (eV/Å), ``REF_stress`` (eV/Å³, ASE
Voigt, tension positive), ``config_type`` and ``structure_id``, ``dft_engine = emt``.

Usage: ``python bench/make_emt_forces_set.py /tmp/cu_emt.extxyz`` (defaults: 24 bulk, 12
vacancy, 12 surface, 32 MD cells = 80 structures; about 10 s).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms, units
from ase.build import bulk, fcc100
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

A_CU = 3.61


def _strained(atoms: Atoms, rng: np.random.Generator, max_strain: float) -> Atoms:
    """A copy with a random symmetric strain (components uniform in ±max_strain)."""
    eps = rng.uniform(-max_strain, max_strain, (3, 3))
    eps = 0.5 * (eps + eps.T)
    out = atoms.copy()
    out.set_cell(atoms.cell @ (np.eye(3) + eps), scale_atoms=True)
    return out


def _rattled(atoms: Atoms, rng: np.random.Generator) -> Atoms:
    out = atoms.copy()
    out.positions += rng.normal(0.0, rng.uniform(0.05, 0.12), out.positions.shape)
    return out


def _md_snapshots(n: int, rng: np.random.Generator, temperature_k: float) -> list[Atoms]:
    atoms = bulk("Cu", "fcc", a=A_CU, cubic=True).repeat(2)
    atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_k, rng=rng)
    dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=temperature_k, friction=0.02,
                   rng=rng)  # fmt: skip
    dyn.run(200)
    frames = []
    for _ in range(n):
        dyn.run(25)
        frames.append(atoms.copy())
    return frames


def structures(counts: dict[str, int], seed: int, max_strain: float, temperature_k: float):
    """(config_type, Atoms) pairs, unlabelled, in a fixed order."""
    rng = np.random.default_rng(seed)
    cell32 = bulk("Cu", "fcc", a=A_CU, cubic=True).repeat(2)
    out = [("bulk", _rattled(_strained(cell32, rng, max_strain), rng))
           for _ in range(counts["bulk"])]  # fmt: skip
    for _ in range(counts["vacancy"]):
        vac = cell32.copy()
        del vac[int(rng.integers(len(vac)))]
        out.append(("vacancy", _rattled(_strained(vac, rng, max_strain), rng)))
    slab = fcc100("Cu", (2, 2, 6), a=A_CU, vacuum=6.0, periodic=True)
    out += [("surface", _rattled(_strained(slab, rng, max_strain), rng))
            for _ in range(counts["surface"])]  # fmt: skip
    out += [("md", a) for a in _md_snapshots(counts["md"], rng, temperature_k)]
    return out


def label(config_type: str, index: int, atoms: Atoms) -> Atoms:
    """A bare copy of ``atoms`` with EMT's energy, forces and stress as REF_* keys."""
    bare = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
    bare.calc = EMT()
    energy, forces = bare.get_potential_energy(), bare.get_forces()
    stress = bare.get_stress(voigt=True)  # eV/Å³, ASE order, tension positive
    bare.calc = None
    bare.info.update(REF_energy=float(energy), REF_stress=stress,
                     structure_id=f"{config_type}-{index:03d}", config_type=config_type,
                     dft_engine="emt")  # fmt: skip
    bare.arrays["REF_forces"] = forces
    return bare


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--bulk", type=int, default=24)
    p.add_argument("--vacancy", type=int, default=12)
    p.add_argument("--surface", type=int, default=12)
    p.add_argument("--md", type=int, default=32)
    p.add_argument("--strain", type=float, default=0.02, help="largest strain component")
    p.add_argument("--temperature", type=float, default=1000.0, help="MD temperature (K)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    counts = {"bulk": a.bulk, "vacancy": a.vacancy, "surface": a.surface, "md": a.md}
    made = structures(counts, a.seed, a.strain, a.temperature)
    frames = [label(kind, i, atoms) for i, (kind, atoms) in enumerate(made)]
    ase.io.write(a.out, frames, format="extxyz")
    n_atoms = [len(f) for f in frames]
    print(f"{len(frames)} structures, {min(n_atoms)}-{max(n_atoms)} atoms, written to {a.out}")


if __name__ == "__main__":
    main()
