"""Deformation MD with a *trained* model (the calculator the workflow uses): energy conservation in
NVE, positive stress under tension, and the snapshot comparison against the labels' potential.

A tiny MACE model is trained once per module on EMT-labelled strained, rattled Cu cells, so the
test exercises the whole chain trainer -> checkpoint -> MLIPCalculator -> MD without DFT.
"""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.units import GPa
from training_helpers import emt_labelled

from dft2mlip.calculator import MLIPCalculator
from dft2mlip.train.trainer import train_run
from dft2mlip.validate.deform import (
    DeformationSpec,
    run_deformation_md,
    run_nve,
    select_snapshots,
    stress_validation,
    stress_validation_summary,
)

pytestmark = pytest.mark.slow

A_CU = 3.59  # near the EMT equilibrium lattice constant
MODEL = {
    "r_max_A": 4.0,
    "num_channels": 8,
    "max_L": 0,
    "max_ell": 2,
    "correlation": 2,
    "num_interactions": 1,
    "num_radial_basis": 6,
    "num_polynomial_cutoff": 5,
}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """Tiny MACE model trained on EMT Cu: uniaxial and random strains up to 4 %, rattled."""
    rng = np.random.default_rng(11)
    frames = []
    for i in range(16):
        atoms = bulk("Cu", "fcc", a=A_CU, cubic=True)
        eps = rng.uniform(-0.01, 0.01, (3, 3))
        eps = 0.5 * (eps + eps.T)
        eps[0, 0] = -0.02 + 0.06 * i / 15  # uniaxial tension/compression along x
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        atoms.rattle(0.04, seed=i)
        frames.append(emt_labelled(atoms))
    work = tmp_path_factory.mktemp("deform_model")
    ase.io.write(work / "train.xyz", frames[::2] + frames[1::4])
    ase.io.write(work / "val.xyz", frames[3::4])
    train_run(
        work / "train.xyz",
        work / "val.xyz",
        work / "out",
        run_name="md-test",
        model_cfg=MODEL,
        run_cfg={"scheme": "softadapt", "beta": 1.1, "window": 3, "normalise": "initial"},
        epochs=40,
        batch_size=4,
        lr=0.01,
        dtype="float64",
        seed=3,
        threads=1,
    )
    return work / "out" / "model.pt"


def _supercell():
    return bulk("Cu", "fcc", a=A_CU, cubic=True).repeat((2, 2, 2))  # 7.18 Å > r_max


def test_nve_conserves_energy_with_the_trained_model(model_path):
    df = run_nve(
        _supercell(),
        MLIPCalculator(model_path),
        temperature_K=300.0,
        timestep_fs=2.0,
        n_steps=80,
        seed=2,
    )
    n = len(_supercell())
    assert len(df) == 81 and df["step"].iloc[0] == 0
    e_tot = df["total_energy_eV"].to_numpy()
    e_kin = df["kinetic_energy_eV"].to_numpy()
    # kinetic and potential energy exchange (the run is not trivial) ...
    assert np.ptp(e_kin) / n > 5e-3
    # ... while their sum stays put: no drift, fluctuations far below the exchange
    drift = np.polyfit(df["time_ps"], e_tot, 1)[0] * df["time_ps"].iloc[-1]
    assert abs(drift) / n < 2e-4  # eV/atom over the run
    assert np.std(e_tot) < 0.02 * np.std(e_kin)


def test_tension_gives_positive_stress_with_the_trained_model(model_path, tmp_path):
    spec = DeformationSpec.from_config(
        {
            "mode": "uniaxial",
            "direction": "x",
            "repeat": [2, 2, 2],
            "temperature_K": 50.0,
            "timestep_fs": 2.0,
            "strain_rate_per_ps": 0.5,
            "max_strain": 0.02,
            "friction_per_fs": 0.02,
            "snapshots": 3,
        }
    )
    calc = MLIPCalculator(model_path)
    spec.check_supercell(_supercell().cell.array, calc.r_max, r_max_key="model")
    df = run_deformation_md(
        _supercell(), calc, spec, 4, tmp_path / "md.extxyz", tmp_path / "md.csv"
    )
    final = df.iloc[-1]
    assert final["strain"] == pytest.approx(spec.max_strain)
    assert final["stress_virial_xx_GPa"] > 1.0
    assert final["stress_virial_xx_GPa"] > df["stress_virial_xx_GPa"].iloc[0] + 1.0
    # snapshots "labelled" by the potential the model learnt: the comparison table is in GPa and
    # the model's error there is small compared with the stress itself
    snaps = select_snapshots(tmp_path / "md.extxyz", spec.snapshots)
    for s in snaps:
        s.info["REF_stress"] = emt_labelled(s).info["REF_stress"]
        s.info["status"] = "ok"
    table = stress_validation(snaps, calc)
    summary = stress_validation_summary(table)
    emt_xx = table["dft_stress_xx_GPa"].to_numpy()
    assert np.all(np.diff(emt_xx) > 0) and emt_xx[-1] > 1.0
    assert summary["mae_xx_GPa"] < 0.3 * emt_xx[-1]
    np.testing.assert_allclose(
        table["model_stress_xx_GPa"], [_static_gpa(s, calc) for s in snaps], rtol=1e-9
    )


def _static_gpa(atoms, calc):
    a = atoms.copy()
    a.calc = calc
    return a.get_stress(voigt=True)[0] / GPa
