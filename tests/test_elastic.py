"""Elastic constants: exact recovery, EMT Cu against energy finite differences and the EOS."""

import warnings

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.eos import EquationOfState
from ase.units import GPa
from scipy.optimize import brentq

from dft2mlip.structures import apply_voigt_strain, elastic_structures
from dft2mlip.validate.elastic import (
    cubic_constants,
    elastic_from_structures,
    fit_elastic_tensor,
    read_elastic_json,
    relax_positions,
    write_elastic_json,
)

DELTA = 0.005  # strain of the fitted set (config default)
H = 0.002  # a different strain for the independent finite-difference reference


def _stress(atoms):
    a = atoms.copy()
    a.calc = EMT()
    return a.get_stress(voigt=True)


def _energy(atoms):
    a = atoms.copy()
    a.calc = EMT()
    return a.get_potential_energy()


@pytest.fixture(scope="module")
def cu0():
    """EMT Cu primitive cell at its zero-stress lattice constant."""
    a0 = brentq(lambda a: _stress(bulk("Cu", "fcc", a=a))[0], 3.4, 3.8, xtol=1e-12)
    return bulk("Cu", "fcc", a=a0)


@pytest.fixture(scope="module")
def emt_c(cu0):
    material = {
        "prototype": "fcc",
        "elements": ["Cu"],
        "lattice_constant_A": cu0.cell.cellpar()[0] * np.sqrt(2),
    }
    structures = list(elastic_structures(material, DELTA).values())
    return elastic_from_structures(structures, EMT()), structures


def _d2e(cu0, pattern):
    """Second derivative of E/V0 along a Voigt strain pattern (GPa), central differences."""
    e = [_energy(apply_voigt_strain(cu0, s * H * np.asarray(pattern, float))) for s in (-1, 0, 1)]
    return (e[0] - 2 * e[1] + e[2]) / H**2 / cu0.get_volume() / GPa


def test_exact_recovery_with_residual_stress():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 6))
    c_gpa = a @ a.T + 6 * np.eye(6)  # symmetric positive definite
    strains = np.vstack([d * np.eye(6) for d in (0.01, -0.01, 0.004)])
    sigma0 = rng.normal(size=6)
    stresses = (sigma0 + strains @ c_gpa.T) * GPa
    np.testing.assert_allclose(fit_elastic_tensor(strains, stresses), c_gpa, atol=1e-9)


def test_emt_cu_matches_energy_finite_differences(cu0, emt_c):
    c, _ = emt_c
    cub = cubic_constants(c)
    c11 = _d2e(cu0, [1, 0, 0, 0, 0, 0])
    c44 = _d2e(cu0, [0, 0, 0, 1, 0, 0])  # engineering shear: E = V C44 e4^2 / 2
    c12 = _d2e(cu0, [1, 1, 0, 0, 0, 0]) / 2 - c11  # d2E/V = C11 + C22 + 2 C12
    bulk_fd = _d2e(cu0, [1, 1, 1, 0, 0, 0]) / 9  # d2E/V = 9 B
    # O(delta^2) anharmonic terms and FD truncation: ~1e-4 relative here
    assert cub["C11"] == pytest.approx(c11, rel=1e-3)
    assert cub["C12"] == pytest.approx(c12, rel=1e-3)
    assert cub["C44"] == pytest.approx(c44, rel=1e-3)
    assert cub["bulk_modulus_GPa"] == pytest.approx(bulk_fd, rel=1e-3)
    assert cub["bulk_modulus_GPa"] == pytest.approx((cub["C11"] + 2 * cub["C12"]) / 3, rel=1e-9)


def test_emt_cu_bulk_modulus_matches_eos(cu0, emt_c):
    c, _ = emt_c
    vols, ens = [], []
    for s in np.linspace(-0.01, 0.01, 7):
        at = apply_voigt_strain(cu0, [s, s, s, 0, 0, 0])
        vols.append(at.get_volume())
        ens.append(_energy(at))
    _, _, b = EquationOfState(vols, ens).fit()
    assert cubic_constants(c)["bulk_modulus_GPa"] == pytest.approx(b / GPa, rel=1e-2)


def test_emt_cu_is_cubic_and_stable(emt_c):
    c, _ = emt_c
    cub = cubic_constants(c)
    assert cub["cubic_deviation_rel"] < 1e-6 and cub["is_cubic"]
    assert cub["positive_definite"] and np.all(np.linalg.eigvalsh(c) > 0)
    assert cub["C11"] > cub["C12"] > 0 and cub["C44"] > 0
    assert np.allclose(c, c.T)


def _labelled(structures, failed=()):
    out = []
    for i, s in enumerate(structures):
        a = s.copy()
        a.info["status"] = "failed" if i in failed else "ok"
        if i not in failed:
            a.info["REF_stress"] = _stress(s)
        out.append(a)
    return out


def test_dft_labels_path_matches_calculator_path(emt_c):
    c_calc, structures = emt_c
    c_dft = elastic_from_structures(_labelled(structures))
    np.testing.assert_allclose(c_dft, c_calc, rtol=1e-10, atol=1e-8)


def test_failed_label_is_left_out_with_a_warning(emt_c):
    c_calc, structures = emt_c
    with pytest.warns(UserWarning, match="elastic-e4m"):
        c_dft = elastic_from_structures(_labelled(structures, failed=(7,)))
    # without its -delta partner the e4 column is a one-sided difference: O(delta) error
    # from second-order shear-normal coupling, a few GPa at most for delta = 0.005
    np.testing.assert_allclose(c_dft, c_calc, atol=2.0)
    assert cubic_constants(c_dft)["C44"] == pytest.approx(cubic_constants(c_calc)["C44"], rel=1e-2)


def test_incomplete_strain_set_is_an_error(emt_c):
    _, structures = emt_c
    without_yz = [s for s in structures if not s.info["structure_id"].startswith("elastic-e4")]
    with pytest.raises(ValueError, match="span only 5 of the six"):
        elastic_from_structures(without_yz, EMT())
    plus_only = [s for s in structures if s.info["structure_id"].endswith("p")]
    with pytest.raises(ValueError, match="residual stress"):
        elastic_from_structures(plus_only, EMT())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = elastic_from_structures(plus_only, EMT(), fit_intercept=False)
    assert cubic_constants(c)["C11"] > 0


def test_non_cubic_tensor_is_flagged():
    c = np.diag([200.0, 200.0, 150.0, 50.0, 50.0, 40.0])  # tetragonal-like
    cub = cubic_constants(c)
    assert not cub["is_cubic"]
    assert cub["cubic_deviation_GPa"] == pytest.approx(550.0 / 3 - 150.0)  # C33 vs mean C11


def test_json_round_trip(tmp_path, emt_c):
    c, _ = emt_c
    path = write_elastic_json(c, tmp_path / "el" / "elastic.json", "EMT", strain_magnitude=DELTA)
    back, record = read_elastic_json(path)
    np.testing.assert_allclose(back, c)
    assert record["label"] == "EMT" and record["clamped_ion"] is True
    assert record["cubic"]["C44"] == pytest.approx(cubic_constants(c)["C44"])


# ----------------------------------------------------------------------------- relaxed ion


def _forces(atoms):
    a = atoms.copy()
    a.calc = EMT()
    return a.get_forces()


def test_relaxed_equals_clamped_for_a_bravais_lattice(emt_c):
    """fcc Cu has one atom per primitive cell: no internal strain, both protocols agree."""
    c_clamped, structures = emt_c
    c_relaxed = elastic_from_structures(structures, EMT(), relax_fmax_eV_per_A=1e-4)
    np.testing.assert_allclose(c_relaxed, c_clamped, atol=1e-6)


@pytest.fixture(scope="module")
def hcp_case():
    """EMT Cu in the hcp structure (two atoms per cell: basal strains move them relative to
    each other) with the ±δ strain set of the project."""
    cell = bulk("Cu", "hcp", a=2.55, c=2.55 * 1.633)
    structures = []
    for j in range(6):
        for sign in (1, -1):
            voigt = np.zeros(6)
            voigt[j] = sign * DELTA
            s = apply_voigt_strain(cell, voigt)
            s.info.update(
                structure_id=f"hcp-e{j + 1}{'p' if sign > 0 else 'm'}", voigt_strain=voigt
            )
            structures.append(s)
    clamped = elastic_from_structures(structures, EMT())
    relaxed = elastic_from_structures(
        structures, EMT(), relax_fmax_eV_per_A=1e-5, relax_max_steps=200
    )
    return cell, clamped, relaxed


def test_relaxation_softens_the_hcp_tensor(hcp_case):
    _, clamped, relaxed = hcp_case
    softening = np.linalg.eigvalsh(clamped - relaxed)
    # relaxing the atoms can only lower the energy of a strained cell: C_clamped - C_relaxed is
    # positive semidefinite, and for hcp it is not zero
    assert softening.min() > -0.2
    assert softening.max() > 1.0


def test_hcp_relaxed_matches_the_internal_strain_correction(hcp_case):
    """C_relaxed = C_clamped - Lambda^T H^+ Lambda / V with H the force-constant matrix and
    Lambda = dF/de the forces induced by strain at clamped positions, both from central finite
    differences of EMT forces (an independent route to the relaxation's effect)."""
    cell, clamped, relaxed = hcp_case
    n3 = 3 * len(cell)
    h_u, h_e = 1e-4, 1e-5
    hessian = np.zeros((n3, n3))
    for k in range(n3):
        plus, minus = cell.copy(), cell.copy()
        plus.positions[k // 3, k % 3] += h_u
        minus.positions[k // 3, k % 3] -= h_u
        hessian[:, k] = -(_forces(plus) - _forces(minus)).ravel() / (2 * h_u)
    hessian = 0.5 * (hessian + hessian.T)
    lam = np.zeros((n3, 6))
    for j in range(6):
        e = np.zeros(6)
        e[j] = h_e
        lam[:, j] = (
            _forces(apply_voigt_strain(cell, e)) - _forces(apply_voigt_strain(cell, -e))
        ).ravel()
        lam[:, j] /= 2 * h_e
    correction = lam.T @ np.linalg.pinv(hessian, rcond=1e-8) @ lam / cell.get_volume() / GPa
    assert np.abs(correction).max() > 1.0  # the effect is there to be measured
    np.testing.assert_allclose(relaxed, clamped - correction, atol=0.5)


def test_relax_that_cannot_converge_names_the_key(hcp_case):
    cell, *_ = hcp_case
    strained = apply_voigt_strain(cell, [DELTA, -DELTA, 0, 0, 0, 0])
    strained.info["structure_id"] = "hcp-basal"
    with pytest.raises(RuntimeError, match="hcp-basal.*validation.elastic.relax_max_steps"):
        relax_positions(strained, EMT(), fmax_eV_per_A=1e-6, max_steps=1)


def test_protocol_is_recorded(tmp_path, emt_c):
    c, _ = emt_c
    path = write_elastic_json(c, tmp_path / "r.json", "EMT", protocol="relaxed_ion")
    _, record = read_elastic_json(path)
    assert record["protocol"] == "relaxed_ion" and record["clamped_ion"] is False
    with pytest.raises(ValueError, match="protocol 'frozen'"):
        write_elastic_json(c, tmp_path / "x.json", "EMT", protocol="frozen")
