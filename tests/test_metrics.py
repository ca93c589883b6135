"""Test-set metrics: exact errors on synthetic offsets, units, extxyz label round trip, plots."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read, write
from ase.units import GPa

from dft2mlip.validate.metrics import (
    component_metrics,
    metrics_by_config_type,
    plot_parity,
    predict,
    read_metrics_json,
    write_metrics_json,
)


def _emt_labels(atoms):
    a = atoms.copy()
    a.calc = EMT()
    return a.get_potential_energy(), a.get_forces(), a.get_stress(voigt=True)


@pytest.fixture(scope="module")
def offset_case():
    """Structures whose REF labels are EMT minus known offsets (so pred - ref = offset)."""
    rng = np.random.default_rng(7)
    structures = [
        bulk("Cu", "fcc", a=3.6),
        bulk("Cu", "fcc", a=3.6, cubic=True),
        bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1)),
        bulk("Cu", "fcc", a=3.55, cubic=True),
    ]
    de_per_atom = np.array([0.002, -0.004, 0.010, -0.001])  # eV/atom
    ds_gpa = rng.normal(0.0, 1.0, size=(len(structures), 6))  # GPa
    df_list = []
    labelled = []
    for i, atoms in enumerate(structures):
        atoms.rattle(0.05, seed=i)
        e, f, s = _emt_labels(atoms)
        dfor = rng.normal(0.0, 0.05, size=f.shape)  # eV/Å
        atoms.info.update(
            structure_id=f"s{i}",
            config_type="bulk" if i % 2 else "strained",
            status="ok",
            REF_energy=e - de_per_atom[i] * len(atoms),
            REF_stress=s - ds_gpa[i] * GPa,
        )
        atoms.arrays["REF_forces"] = f - dfor
        df_list.append(dfor)
        labelled.append(atoms)
    return labelled, de_per_atom, np.concatenate(df_list), ds_gpa


def test_metrics_equal_known_offsets_in_meV_and_GPa(offset_case):
    labelled, de, dfor, ds = offset_case
    pred = predict(EMT(), labelled)
    m = component_metrics(pred)
    assert m["energy_mae_meV_per_atom"] == pytest.approx(1000 * np.abs(de).mean(), rel=1e-9)
    assert m["energy_rmse_meV_per_atom"] == pytest.approx(1000 * np.sqrt((de**2).mean()), rel=1e-9)
    assert m["forces_mae_meV_per_A"] == pytest.approx(1000 * np.abs(dfor).mean(), rel=1e-9)
    assert m["forces_rmse_meV_per_A"] == pytest.approx(1000 * np.sqrt((dfor**2).mean()), rel=1e-9)
    assert m["stress_mae_GPa"] == pytest.approx(np.abs(ds).mean(), rel=1e-9)
    assert m["stress_rmse_GPa"] == pytest.approx(np.sqrt((ds**2).mean()), rel=1e-9)
    assert m["n_structures"] == 4
    assert m["n_atoms"] == sum(len(a) for a in labelled) == len(pred.forces_ref)
    # per-structure table: energies per atom, stress in GPa
    table = pred.per_structure
    diff = table["energy_pred_eV_per_atom"] - table["energy_ref_eV_per_atom"]
    np.testing.assert_allclose(diff, de, atol=1e-12)
    np.testing.assert_allclose(table["stress_pred_xy_GPa"] - table["stress_ref_xy_GPa"], ds[:, 5])
    assert list(table["structure_id"]) == ["s0", "s1", "s2", "s3"]
    # the caller's structures are not modified
    assert all(a.calc is None for a in labelled)


def test_by_config_type_splits_structures(offset_case):
    labelled, de, _, _ = offset_case
    by = metrics_by_config_type(predict(EMT(), labelled))
    assert set(by) == {"bulk", "strained"}
    assert by["bulk"]["n_structures"] == 2
    expected = 1000 * np.abs(de[[1, 3]]).mean()
    assert by["bulk"]["energy_mae_meV_per_atom"] == pytest.approx(expected, rel=1e-9)


def test_extxyz_round_trip_and_missing_stress(tmp_path, offset_case):
    labelled, *_ = offset_case
    frames = [a.copy() for a in labelled]
    del frames[0].info["REF_stress"]  # e.g. a structure without a stress label
    path = tmp_path / "test.extxyz"
    write(path, frames, format="extxyz")
    back = read(path, index=":")
    pred = predict(EMT(), back)
    m = component_metrics(pred)
    assert m["n_structures_with_stress"] == 3
    assert np.isnan(pred.per_structure.loc[0, "stress_ref_xx_GPa"])
    assert np.isfinite(m["stress_mae_GPa"])


def test_unusable_label_is_an_error_naming_the_structure(offset_case):
    labelled, *_ = offset_case
    bad = labelled[1].copy()
    bad.info["status"] = "scf_not_converged"
    with pytest.raises(ValueError, match="s1.*scf_not_converged"):
        predict(EMT(), [labelled[0], bad])


def test_json_and_parity_plot(tmp_path, offset_case):
    labelled, *_ = offset_case
    pred = predict(EMT(), labelled)
    m = component_metrics(pred)
    path = write_metrics_json(m, tmp_path / "m" / "metrics.json", split="test", run="x")
    back = read_metrics_json(path)
    assert back["split"] == "test"
    assert back["forces_mae_meV_per_A"] == pytest.approx(m["forces_mae_meV_per_A"])
    png = plot_parity(pred, tmp_path / "parity.png", "EMT vs offsets")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
