"""Physics of the model and the ASE calculator: forces and stress are derivatives of the energy
(checked against finite differences), and the stress sign follows ASE (tension positive)."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from training_helpers import emt_labelled

from dft2mlip.calculator import MLIPCalculator
from dft2mlip.train import models
from dft2mlip.train.trainer import train_run

pytestmark = pytest.mark.slow

TINY_MODEL = {
    "r_max_A": 4.0,
    "num_channels": 8,
    "max_L": 1,
    "max_ell": 2,
    "correlation": 2,
    "num_interactions": 2,
    "num_radial_basis": 6,
    "num_polynomial_cutoff": 5,
}


def strain_cell(atoms, eps):
    """Apply the symmetric strain tensor eps: new_cell = cell @ (I + eps), atoms scaled."""
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return out


def random_strain(rng, magnitude):
    eps = rng.uniform(-magnitude, magnitude, (3, 3))
    return 0.5 * (eps + eps.T)


@pytest.fixture(scope="module")
def random_model_path(tmp_path_factory):
    """An untrained (randomly initialised) float64 model saved as a checkpoint."""
    import torch

    torch.manual_seed(7)
    e0s = {29: -0.3}
    model = models.build_model(TINY_MODEL, [29], e0s, avg_num_neighbors=14.0, dtype="float64")
    meta = models.model_metadata(TINY_MODEL, [29], e0s, 14.0, "float64", scale=1.0, shift=0.0)
    path = tmp_path_factory.mktemp("random_model") / "model.pt"
    models.save_checkpoint(path, model, meta)
    return path


@pytest.fixture()
def distorted_cell():
    """Rattled Cu with a sheared (non-orthogonal), strained cell and periodic images in range."""
    rng = np.random.default_rng(3)
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)  # primitive fcc cell: non-orthogonal
    atoms = strain_cell(atoms, random_strain(rng, 0.04))
    atoms.rattle(0.08, seed=11)
    assert abs(atoms.cell.angles()[0] - 90.0) > 5.0
    return atoms


def test_build_model_restores_default_dtype():
    import torch

    before = torch.get_default_dtype()
    model = models.build_model(TINY_MODEL, [13], {13: 0.0}, 10.0, "float64")
    assert torch.get_default_dtype() == before
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_forces_are_minus_energy_gradient(random_model_path, distorted_cell):
    atoms = distorted_cell
    atoms.calc = MLIPCalculator(random_model_path)
    forces = atoms.get_forces()
    numeric = calculate_numerical_forces(atoms, eps=1e-4)
    assert np.abs(forces).max() > 1e-3, "a random model should give non-trivial forces"
    np.testing.assert_allclose(forces, numeric, atol=1e-7, rtol=1e-6)


def test_stress_is_strain_derivative_tension_positive(random_model_path, distorted_cell):
    """σ = (1/V) ∂E/∂ε by central differences (ASE's definition, tension positive)."""
    atoms = distorted_cell
    atoms.calc = MLIPCalculator(random_model_path)
    stress = atoms.get_stress(voigt=True)
    numeric = calculate_numerical_stress(atoms, eps=1e-5, voigt=True)
    assert np.abs(stress).max() > 1e-4, "a random model should give non-trivial stress"
    np.testing.assert_allclose(stress, numeric, atol=1e-8, rtol=1e-6)


def test_energy_invariant_under_rotation_and_translation(random_model_path, distorted_cell):
    atoms = distorted_cell
    calc = MLIPCalculator(random_model_path)
    atoms.calc = calc
    e0 = atoms.get_potential_energy()
    moved = atoms.copy()
    moved.rotate(37.0, (1.0, 2.0, 0.5), rotate_cell=True)
    moved.translate((0.3, -0.2, 0.7))
    moved.calc = calc
    assert moved.get_potential_energy() == pytest.approx(e0, abs=1e-9)


def test_non_periodic_structure_has_no_stress(random_model_path):
    from ase.build import molecule
    from ase.calculators.calculator import PropertyNotImplementedError

    cluster = molecule("H2O")
    cluster.set_chemical_symbols(["Cu"] * 3)
    cluster.positions *= 2.0
    cluster.calc = MLIPCalculator(random_model_path)
    np.testing.assert_allclose(
        cluster.get_forces(), calculate_numerical_forces(cluster, eps=1e-4), atol=1e-7
    )
    with pytest.raises(PropertyNotImplementedError):
        cluster.get_stress()


# ------------------------------------------------------------------------------------------
# a trained model gets the sign of the stress of compressed and expanded cells right


def _emt_equilibrium_lattice_constant():
    from scipy.optimize import brentq

    def pressure(a):
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        atoms.calc = EMT()
        return atoms.get_stress()[0]

    return brentq(pressure, 3.4, 3.8, xtol=1e-6)


@pytest.fixture(scope="module")
def volume_model(tmp_path_factory):
    """Tiny model trained on EMT Cu cells compressed and expanded by up to 4 %."""
    a0 = _emt_equilibrium_lattice_constant()
    rng = np.random.default_rng(5)
    frames = []
    for linear in np.linspace(-0.04, 0.04, 9):
        atoms = bulk("Cu", "fcc", a=a0, cubic=True)
        atoms = strain_cell(atoms, linear * np.eye(3) + random_strain(rng, 0.005))
        atoms.rattle(0.02, seed=int(rng.integers(1000)))
        frames.append(emt_labelled(atoms))
    work = tmp_path_factory.mktemp("volume_model")
    ase.io.write(work / "train.xyz", frames)
    ase.io.write(work / "val.xyz", frames[1::3])
    model_cfg = dict(TINY_MODEL, num_interactions=1, max_L=0)
    run_cfg = {"scheme": "softadapt", "beta": 1.1, "window": 3, "normalise": "initial"}
    train_run(
        work / "train.xyz",
        work / "val.xyz",
        work / "out",
        run_name="signs",
        model_cfg=model_cfg,
        run_cfg=run_cfg,
        epochs=40,
        batch_size=3,
        lr=0.01,
        dtype="float64",
        seed=1,
        threads=1,
    )
    return a0, work / "out" / "model.pt"


@pytest.mark.parametrize("linear_strain, sign", [(-0.025, -1.0), (0.025, 1.0)])
def test_trained_model_stress_sign(volume_model, linear_strain, sign):
    a0, path = volume_model
    atoms = strain_cell(bulk("Cu", "fcc", a=a0, cubic=True), linear_strain * np.eye(3))
    reference = emt_labelled(atoms).info["REF_stress"]
    assert np.all(sign * reference[:3] > 0), "EMT itself: compressed < 0, expanded > 0"
    atoms.calc = MLIPCalculator(path)
    predicted = atoms.get_stress(voigt=True)
    assert np.all(sign * predicted[:3] > 0), (predicted, reference)
    # and not just the sign: within 15 % of EMT for this in-range strain
    np.testing.assert_allclose(predicted[:3], reference[:3], rtol=0.15)
