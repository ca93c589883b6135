"""Relaxed-ion DFT side of the elastic constants: pw.x `relax` inputs with the dataset settings,
and real pw.x relaxations of strained 2-atom Si cells (about 1-3 s each)."""

import re

import numpy as np
import pytest
from ase.io import read
from ase.units import Bohr, Ry
from conftest import SI_MATERIAL, TINY_QE

from dft2mlip.data import Label, read_label, write_label
from dft2mlip.dft.qe import parse_fixed_cell_relax as parse_relax_output
from dft2mlip.dft.qe import write_fixed_cell_relax_input as write_relax_input
from dft2mlip.dft.qe import write_pw_input
from dft2mlip.dft.run import run_pw
from dft2mlip.dft.settings import QESettings
from dft2mlip.structures import elastic_structures
from dft2mlip.validate.elastic_dft import relaxed_label_from_clamped

FMAX = 0.002  # eV/Å


def _namelist(text, name):
    return re.search(rf"&{name}\n(.*?)\n/", text, re.DOTALL).group(1)


@pytest.fixture(scope="module")
def cells():
    return elastic_structures(SI_MATERIAL, 0.01)


def test_relax_input_keeps_the_dataset_settings(tmp_path, cells):
    settings = QESettings.from_config(TINY_QE)
    atoms = cells["elastic-e4p"]
    write_pw_input(atoms, settings, tmp_path / "scf.in")
    write_relax_input(atoms, settings, tmp_path / "relax.in", fmax_eV_per_A=FMAX, max_steps=30)
    scf, relax = (tmp_path / "scf.in").read_text(), (tmp_path / "relax.in").read_text()
    # electronic settings, k-points, species and the structure are identical to the SCF label
    for name in ("SYSTEM", "ELECTRONS"):
        assert _namelist(relax, name) == _namelist(scf, name)
    assert relax.split("ATOMIC_SPECIES")[1] == scf.split("ATOMIC_SPECIES")[1]
    control = _namelist(relax, "CONTROL")
    assert "calculation      = 'relax'" in control and "nstep            = 30" in control
    threshold = float(re.search(r"forc_conv_thr\s*=\s*(\S+)", control).group(1))
    assert threshold * Ry / Bohr == pytest.approx(FMAX)
    assert "ion_dynamics     = 'bfgs'" in _namelist(relax, "IONS")


@pytest.fixture(scope="module")
def relaxed_shear(tmp_path_factory, cells):
    settings = QESettings.from_config(TINY_QE)
    if not (settings.pseudo_path / TINY_QE["pseudopotentials"]["Si"]).is_file():
        pytest.skip("Si pseudopotential not installed")
    out = tmp_path_factory.mktemp("relax")
    atoms = cells["elastic-e4p"]
    write_relax_input(atoms, settings, out / "pw.in", fmax_eV_per_A=FMAX, max_steps=30)
    run_pw(out / "pw.in", out / "pw.out", nprocs=1, mpi_launcher="")
    label = parse_relax_output(
        out / "pw.out", atoms, settings.settings_hash(), settings=settings, fmax_eV_per_A=FMAX
    )
    return atoms, label, out


@pytest.mark.slow
def test_shear_relaxation_moves_atoms_and_lowers_the_shear_stress(relaxed_shear, tmp_path):
    atoms, label, out = relaxed_shear
    assert label.status == "ok", label.message
    assert label.atoms.info["relax_ionic_steps"] >= 1
    # the cell is the fixed strained one; the atoms moved (internal strain of diamond)
    np.testing.assert_allclose(label.atoms.cell.array, atoms.cell.array, atol=1e-6)
    shift = np.linalg.norm(label.atoms.positions - atoms.positions, axis=1).max()
    assert 1e-3 < shift < 0.05
    assert np.linalg.norm(label.forces, axis=1).max() <= 1.05 * FMAX
    # first SCF of the same run = the clamped-ion cell: relaxing lowers sigma_yz (C44 relaxed <
    # C44 clamped for diamond), same sign
    clamped = read(out / "pw.out", format="espresso-out", index=0)
    assert np.linalg.norm(clamped.get_forces(), axis=1).max() > 10 * FMAX
    s_clamped, s_relaxed = clamped.get_stress()[3], label.stress[3]
    assert 0 < s_relaxed < 0.95 * s_clamped
    # voigt_strain survives the label round trip (the elastic fit needs it)
    write_label(label, tmp_path / "label.extxyz")
    back = read_label(tmp_path / "label.extxyz")
    np.testing.assert_allclose(back.atoms.info["voigt_strain"], atoms.info["voigt_strain"])
    assert back.status == "ok"


@pytest.mark.slow
def test_normal_strain_needs_no_relaxation(tmp_path, cells):
    settings = QESettings.from_config(TINY_QE)
    atoms = cells["elastic-e1p"]
    write_relax_input(atoms, settings, tmp_path / "pw.in", fmax_eV_per_A=FMAX, max_steps=30)
    run_pw(tmp_path / "pw.in", tmp_path / "pw.out", nprocs=1, mpi_launcher="")
    label = parse_relax_output(
        tmp_path / "pw.out", atoms, settings.settings_hash(), settings=settings, fmax_eV_per_A=FMAX
    )
    assert label.status == "ok" and label.atoms.info["relax_ionic_steps"] == 0
    np.testing.assert_allclose(label.atoms.positions, atoms.positions, atol=1e-6)


@pytest.mark.slow
def test_relaxation_cut_off_by_nstep_fails_naming_the_key(tmp_path, cells):
    settings = QESettings.from_config(TINY_QE)
    atoms = cells["elastic-e4p"]
    write_relax_input(atoms, settings, tmp_path / "pw.in", fmax_eV_per_A=1e-4, max_steps=1)
    run_pw(tmp_path / "pw.in", tmp_path / "pw.out", nprocs=1, mpi_launcher="")
    label = parse_relax_output(
        tmp_path / "pw.out", atoms, settings.settings_hash(), settings=settings, fmax_eV_per_A=1e-4
    )
    assert label.status == "failed"
    assert "validation.elastic.relax_max_steps" in label.message


def _clamped_label(cells, sid, forces, status="ok", settings_hash="abc123"):
    atoms = cells[sid].copy()
    atoms.info["REF_energy"] = -215.0
    atoms.info["REF_stress"] = np.array([-0.01, -0.01, -0.01, 0.002, 0.0, 0.0])
    atoms.arrays["REF_forces"] = np.asarray(forces, dtype=float)
    return Label(
        structure_id=sid,
        config_type="elastic",
        status=status,
        message="SCF converged",
        atoms=atoms,
        settings_hash=settings_hash,
    )


def test_clamped_label_is_reused_only_when_forces_are_below_the_threshold(cells):
    quiet = _clamped_label(cells, "elastic-e1p", np.zeros((2, 3)))
    reused = relaxed_label_from_clamped(quiet, "abc123", fmax_eV_per_A=FMAX)
    assert reused.status == "ok" and reused.atoms.info["relax_ionic_steps"] == 0
    np.testing.assert_array_equal(reused.stress, quiet.stress)
    assert "no relaxation needed" in reused.message
    pushed = _clamped_label(cells, "elastic-e4p", [[0.0, 0.0, 0.01], [0.0, 0.0, -0.01]])
    assert relaxed_label_from_clamped(pushed, "abc123", fmax_eV_per_A=FMAX) is None
    # other settings, or no usable label: relax with pw.x instead
    assert relaxed_label_from_clamped(quiet, "other", fmax_eV_per_A=FMAX) is None
    failed = _clamped_label(cells, "elastic-e1p", np.zeros((2, 3)), status="failed")
    assert relaxed_label_from_clamped(failed, "abc123", fmax_eV_per_A=FMAX) is None
