"""Candidate structures: ids, reproducibility, strain convention, section independence."""

import copy
import re

import numpy as np
import pytest
from conftest import SI_MATERIAL

from dft2mlip.structures import (
    apply_voigt_strain,
    check_rattled_cell,
    check_vacancy_cell,
    conventional_cell,
    elastic_structure_ids,
    elastic_structures,
    primitive_cell,
    read_structure,
    repeats_for_width,
    strain_tensor_to_voigt,
    training_structure_ids,
    training_structures,
    voigt_to_strain_tensor,
    write_structure_set,
)

SPEC = {
    "hydrostatic": {"strains": [-0.03, -0.015, 0.015, 0.03]},
    "strained": {"count": 10, "max_strain": 0.03},
    "rattled": {"count": 8, "max_strain": 0.01, "rattle_A": 0.06},
    "supercell": {"count": 2, "repeat": [1, 1, 1], "max_strain": 0.015, "rattle_A": 0.08},
}
SEED = 20241203


@pytest.fixture(scope="module")
def structures():
    return training_structures(SI_MATERIAL, SPEC, SEED)


def applied_strain(reference_cell, cell) -> np.ndarray:
    """Voigt strain (engineering shear) that maps reference_cell onto cell: cell = ref @ (I+eps)."""
    eps = np.linalg.solve(np.asarray(reference_cell), np.asarray(cell)) - np.eye(3)
    np.testing.assert_allclose(eps, eps.T, atol=1e-12)  # a pure (symmetric) strain
    return strain_tensor_to_voigt((eps + eps.T) / 2)


def test_ids_follow_the_config():
    ids = training_structure_ids(SPEC)
    assert ids[:5] == ["hydro-000", "hydro-001", "hydro-002", "hydro-003", "strain-000"]
    counts = {p: sum(i.startswith(p + "-") for i in ids) for p in ("hydro", "strain", "rattle")}
    assert counts == {"hydro": 4, "strain": 10, "rattle": 8}
    assert ids[-2:] == ["super-000", "super-001"]
    assert all(re.fullmatch(r"(hydro|strain|rattle|super)-\d{3}", i) for i in ids)
    assert len(set(ids)) == len(ids) == 24
    assert training_structure_ids(SPEC) == ids  # deterministic
    assert training_structure_ids({"strained": {"count": 2, "max_strain": 0.01}}) == [
        "strain-000",
        "strain-001",
    ]
    assert training_structure_ids({**SPEC, "rattled": {"count": 0}, "supercell": None}) == [
        i for i in ids if i.startswith(("hydro", "strain"))
    ]
    assert training_structure_ids({}) == []
    with pytest.raises(ValueError, match="structures"):
        training_structure_ids({"strainedd": {"count": 2}})


def test_keys_and_info(structures):
    assert list(structures) == training_structure_ids(SPEC)
    kinds = {
        "hydro": "hydrostatic",
        "strain": "strained",
        "rattle": "rattled",
        "super": "supercell",
    }
    for sid, atoms in structures.items():
        assert atoms.info["structure_id"] == sid
        assert atoms.info["config_type"] == kinds[sid.split("-")[0]]
        assert np.shape(atoms.info["voigt_strain"]) == (6,)
        assert all(atoms.pbc)
    assert len(structures["super-000"]) == 8 and len(structures["strain-000"]) == 2


def test_reproducible_with_seed_and_seed_matters(structures):
    again = training_structures(SI_MATERIAL, SPEC, SEED)
    other = training_structures(SI_MATERIAL, SPEC, SEED + 1)
    for sid, atoms in structures.items():
        np.testing.assert_array_equal(again[sid].positions, atoms.positions)
        np.testing.assert_array_equal(again[sid].cell, atoms.cell)
        if not sid.startswith("hydro"):  # hydrostatic strains come from the config
            assert not np.allclose(other[sid].cell, atoms.cell)


def test_recorded_strain_is_the_applied_strain(structures):
    prim = primitive_cell(SI_MATERIAL).cell
    conv = conventional_cell(SI_MATERIAL, [1, 1, 1]).cell
    for sid, atoms in structures.items():
        reference = conv if sid.startswith("super") else prim
        np.testing.assert_allclose(
            applied_strain(reference, atoms.cell), atoms.info["voigt_strain"], atol=1e-12
        )
    for sid, strain in zip(
        [f"hydro-{i:03d}" for i in range(4)], SPEC["hydrostatic"]["strains"], strict=True
    ):
        np.testing.assert_allclose(structures[sid].info["voigt_strain"], [strain] * 3 + [0] * 3)
        assert structures[sid].get_volume() == pytest.approx(
            primitive_cell(SI_MATERIAL).get_volume() * (1 + strain) ** 3
        )


def test_random_strains_cover_all_six_components_within_bounds(structures):
    for section, prefix in (("strained", "strain"), ("rattled", "rattle"), ("supercell", "super")):
        limit = SPEC[section]["max_strain"]
        voigt = np.array(
            [a.info["voigt_strain"] for s, a in structures.items() if s.startswith(prefix + "-")]
        )
        tensor = np.array([voigt_to_strain_tensor(v) for v in voigt])
        assert np.abs(tensor).max() <= limit + 1e-15  # every tensor component in [-max, max]
        assert np.all(np.abs(voigt).max(axis=0) > 0)  # shear included
    strained = np.array([structures[f"strain-{i:03d}"].info["voigt_strain"] for i in range(10)])
    assert np.abs(strained[:, 3:]).max() > SPEC["strained"]["max_strain"]  # engineering: 2 eps
    assert np.all(np.abs(strained).max(axis=0) > 0.3 * SPEC["strained"]["max_strain"])


def test_rattled_atoms_are_displaced(structures):
    for sid, rattle in (("rattle-000", 0.06), ("super-000", 0.08)):
        atoms = structures[sid]
        base = (
            primitive_cell(SI_MATERIAL)
            if sid.startswith("rattle")
            else conventional_cell(SI_MATERIAL, [1, 1, 1])
        )
        ideal = apply_voigt_strain(base, atoms.info["voigt_strain"])
        displacement = atoms.positions - ideal.positions
        assert 0.1 * rattle < np.abs(displacement).max() < 6 * rattle
    for i in range(10):  # strained cells stay ideal (clamped ion)
        atoms = structures[f"strain-{i:03d}"]
        np.testing.assert_allclose(
            atoms.get_scaled_positions(), primitive_cell(SI_MATERIAL).get_scaled_positions()
        )


def test_changing_one_section_leaves_the_others_alone(structures):
    changed = copy.deepcopy(SPEC)
    changed["strained"] = {"count": 13, "max_strain": 0.05}
    changed["hydrostatic"]["strains"].append(0.045)
    changed["supercell"]["count"] = 3
    new = training_structures(SI_MATERIAL, changed, SEED)
    for sid, atoms in structures.items():
        if sid.startswith(("rattle", "super", "hydro")):
            np.testing.assert_array_equal(new[sid].positions, atoms.positions)
            np.testing.assert_array_equal(new[sid].cell, atoms.cell)
    assert "super-002" in new and "hydro-004" in new
    # appending to a section does not change its first structures
    longer = training_structures(
        SI_MATERIAL, {**SPEC, "strained": {"count": 12, "max_strain": 0.03}}, SEED
    )
    for i in range(10):
        sid = f"strain-{i:03d}"
        np.testing.assert_array_equal(longer[sid].cell, structures[sid].cell)


def test_apply_voigt_strain_convention():
    atoms = primitive_cell(SI_MATERIAL)
    gamma = 0.02  # engineering shear e4 = 2 eps_yz
    sheared = apply_voigt_strain(atoms, [0, 0, 0, gamma, 0, 0])
    assert sheared is not atoms
    np.testing.assert_array_equal(atoms.cell, primitive_cell(SI_MATERIAL).cell)  # untouched
    # a vector along z picks up a y component gamma/2 * z (and vice versa): symmetric eps
    r = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    deformed = r @ (np.eye(3) + voigt_to_strain_tensor([0, 0, 0, gamma, 0, 0]))
    np.testing.assert_allclose(deformed, [[0, gamma / 2, 1], [0, 1, gamma / 2]])
    np.testing.assert_allclose(sheared.get_scaled_positions(), atoms.get_scaled_positions())
    # small strain: relative volume change is the trace
    e = np.array([1e-4, -2e-4, 3e-4, 1e-4, 2e-4, -1e-4])
    dv = apply_voigt_strain(atoms, e).get_volume() / atoms.get_volume() - 1
    assert dv == pytest.approx(e[:3].sum(), rel=1e-3)
    for v in np.random.default_rng(0).uniform(-0.1, 0.1, (5, 6)):
        np.testing.assert_allclose(strain_tensor_to_voigt(voigt_to_strain_tensor(v)), v)


def test_elastic_set_is_plus_minus_pairs():
    ids = elastic_structure_ids()
    assert ids == [f"elastic-e{i}{s}" for i in range(1, 7) for s in "pm"]
    magnitude = 0.005
    elastic = elastic_structures(SI_MATERIAL, magnitude)
    assert list(elastic) == ids
    prim = primitive_cell(SI_MATERIAL)
    for direction in range(6):
        plus = elastic[f"elastic-e{direction + 1}p"]
        minus = elastic[f"elastic-e{direction + 1}m"]
        expected = np.zeros(6)
        expected[direction] = magnitude
        np.testing.assert_allclose(plus.info["voigt_strain"], expected)
        np.testing.assert_allclose(minus.info["voigt_strain"], -expected)
        np.testing.assert_allclose(applied_strain(prim.cell, plus.cell), expected, atol=1e-14)
        np.testing.assert_allclose(applied_strain(prim.cell, minus.cell), -expected, atol=1e-14)
        for atoms in (plus, minus):
            assert atoms.info["config_type"] == "elastic"
            np.testing.assert_allclose(atoms.get_scaled_positions(), prim.get_scaled_positions())
    with pytest.raises(ValueError, match="strain_magnitude"):
        elastic_structures(SI_MATERIAL, 0.0)


def test_cells_and_errors():
    assert len(primitive_cell(SI_MATERIAL)) == 2
    conv = conventional_cell(SI_MATERIAL, [2, 1, 1])
    assert len(conv) == 16
    np.testing.assert_allclose(conv.cell.lengths(), [2 * 5.431, 5.431, 5.431])
    gaas = {"prototype": "zincblende", "elements": ["Ga", "As"], "lattice_constant_A": 5.65}
    assert primitive_cell(gaas).get_chemical_formula() == "AsGa"
    with pytest.raises(ValueError, match="material.prototype"):
        primitive_cell({**SI_MATERIAL, "prototype": "perovskite-ish"})
    with pytest.raises(ValueError, match="lattice_constant_A"):
        primitive_cell({**SI_MATERIAL, "lattice_constant_A": -1.0})
    with pytest.raises(ValueError, match="repeat"):
        conventional_cell(SI_MATERIAL, [1, 0, 1])
    with pytest.raises(ValueError, match="structures.strained.count"):
        training_structure_ids({"strained": {"count": -1}})


def test_structure_set_round_trip_and_id_checks(structures, tmp_path):
    """One multi-frame file per set: each structure is read back by its id (cell, positions,
    strain record); an id the set does not hold, or duplicate ids, are errors."""
    path = tmp_path / "train.extxyz"
    write_structure_set(path, list(structures.values()))
    for sid, atoms in reversed(structures.items()):
        back = read_structure(path, sid)
        assert back.info["structure_id"] == sid
        np.testing.assert_allclose(back.cell[:], atoms.cell[:], atol=1e-12)
        np.testing.assert_allclose(back.positions, atoms.positions, atol=1e-8)  # extxyz: 8 decimals
        np.testing.assert_allclose(back.info["voigt_strain"], atoms.info["voigt_strain"])
        assert back.info["config_type"] == atoms.info["config_type"]
    with pytest.raises(ValueError, match="holds no structure 'hydro-999'"):
        read_structure(path, "hydro-999")
    first = next(iter(structures.values()))
    with pytest.raises(ValueError, match="unique"):
        write_structure_set(tmp_path / "dup.extxyz", [first, first])


def mesh_of(cell, spacing: float) -> list[int]:
    """Monkhorst-Pack sizes ceil(2π |b_i| / spacing), b_i the rows of inv(cell).T (no 2π)."""
    recip = np.linalg.inv(np.asarray(cell, dtype=float)).T
    return [int(np.ceil(2 * np.pi * np.linalg.norm(b) / spacing - 1e-8)) for b in recip]


def test_one_kpoint_mesh_per_structure_family(tmp_path):
    """Strained variants use their reference cell's mesh, and the label records it: fcc Cu's
    elastic ± pair on the mesh of the primitive cell, not 15 vs 16 along the strained axis."""
    from dft2mlip.dft.qe import write_pw_input
    from dft2mlip.dft.settings import QESettings
    from dft2mlip.structures import kpoint_reference_cell

    cu = {"prototype": "fcc", "elements": ["Cu"], "lattice_constant_A": 3.615}
    prim = primitive_cell(cu)
    # a spacing just below the primitive cell's 15-point boundary: own-cell meshes would differ
    spacing = 2 * np.pi * np.linalg.norm(np.linalg.inv(prim.cell.array).T[0]) / 15.003
    elastic = elastic_structures(cu, 0.005)
    own = {sid: mesh_of(a.cell, spacing) for sid, a in elastic.items()}
    assert own["elastic-e1p"] != own["elastic-e1m"]  # the problem this solves
    settings = QESettings(pseudopotentials={"Cu": "Cu.UPF"}, kspacing_per_A=spacing)
    expected = mesh_of(prim.cell, spacing)
    for sid, atoms in elastic.items():
        np.testing.assert_allclose(kpoint_reference_cell(atoms), prim.cell.array)
        assert list(write_pw_input(atoms, settings, tmp_path / sid / "pw.in")) == expected
        text = (tmp_path / sid / "pw.in").read_text()
        assert "{} {} {}  0 0 0".format(*expected) in text
    train = training_structures(SI_MATERIAL, SPEC, SEED)
    conv = conventional_cell(SI_MATERIAL, [1, 1, 1])
    for sid, atoms in train.items():
        reference = conv if sid.startswith("super") else primitive_cell(SI_MATERIAL)
        np.testing.assert_allclose(kpoint_reference_cell(atoms), reference.cell.array)
    # a structure outside any family (e.g. imported) uses its own cell
    lone = prim.copy()
    np.testing.assert_allclose(kpoint_reference_cell(lone), prim.cell.array)
    # these Si cells keep the mesh of their own cell (6x6x6, 4x4x4 for the 8-atom cell); in the
    # default run, two of the 24 strained cells (up to 6 % engineering shear) move from 7x6x6 and
    # 6x7x6 to the family's 6x6x6
    for atoms in train.values():
        assert mesh_of(kpoint_reference_cell(atoms), 0.35) == mesh_of(atoms.cell, 0.35)


def face_widths(cell) -> np.ndarray:
    """Distances between opposite faces: V / |a_j x a_k| (computed here from scratch)."""
    a = np.asarray(cell, dtype=float)
    volume = abs(np.dot(a[0], np.cross(a[1], a[2])))
    return np.array(
        [volume / np.linalg.norm(np.cross(a[j], a[k])) for j, k in ((1, 2), (2, 0), (0, 1))]
    )


HCP_MG = {"prototype": "hcp", "elements": ["Mg"], "lattice_constant_A": 3.21, "c_over_a": 1.624}
WURTZITE_GAN = {"prototype": "wurtzite", "elements": ["Ga", "N"], "lattice_constant_A": 3.19,
                "c_over_a": 1.626}  # fmt: skip


@pytest.mark.parametrize("material", [HCP_MG, WURTZITE_GAN], ids=["hcp-Mg", "wurtzite-GaN"])
def test_hexagonal_prototypes_and_every_generator(material):
    prim = primitive_cell(material)
    a, c = material["lattice_constant_A"], material["lattice_constant_A"] * material["c_over_a"]
    np.testing.assert_allclose(prim.cell.cellpar(), [a, a, c, 90, 90, 120], atol=1e-9)
    assert len(prim) == 2 * len(material["elements"])
    conv = conventional_cell(material, [1, 1, 1])  # the orthorhombic cell
    np.testing.assert_allclose(conv.cell.cellpar(), [a, a * np.sqrt(3), c, 90, 90, 90], atol=1e-9)
    assert len(conv) == 2 * len(prim)
    structures = training_structures(material, SPEC, SEED)
    assert list(structures) == training_structure_ids(SPEC)
    for sid, atoms in structures.items():
        reference = conv if sid.startswith("super") else prim
        np.testing.assert_allclose(  # strains incl. shear on a non-orthogonal cell
            applied_strain(reference.cell, atoms.cell), atoms.info["voigt_strain"], atol=1e-12
        )
    for atoms in elastic_structures(material, 0.005).values():
        np.testing.assert_allclose(
            applied_strain(prim.cell, atoms.cell), atoms.info["voigt_strain"], atol=1e-12
        )
    with pytest.raises(ValueError, match="c_over_a"):
        primitive_cell({**SI_MATERIAL, "c_over_a": 1.6})


@pytest.mark.parametrize("name", ["GaAs.cif", "POSCAR", "GaAs.extxyz"])
def test_material_from_a_structure_file(tmp_path, name):
    import ase.io

    source = primitive_cell(
        {"prototype": "zincblende", "elements": ["Ga", "As"], "lattice_constant_A": 5.65}
    )
    source.positions[1] += [0.02, -0.01, 0.03]  # not a prototype any more
    ase.io.write(tmp_path / name, source)
    material = {"structure": str(tmp_path / name), "elements": ["Ga", "As"]}
    cell = primitive_cell(material)
    np.testing.assert_allclose(cell.cell.cellpar(), source.cell.cellpar(), atol=1e-5)
    np.testing.assert_allclose(
        cell.get_all_distances(mic=True), source.get_all_distances(mic=True), atol=1e-5
    )
    assert cell.get_chemical_formula() == "AsGa"
    assert len(conventional_cell(material, [2, 1, 1])) == 4
    structures = training_structures(material, SPEC, SEED)
    for sid, atoms in structures.items():
        reference = conventional_cell(material, [1, 1, 1]) if sid.startswith("super") else cell
        np.testing.assert_allclose(
            applied_strain(reference.cell, atoms.cell), atoms.info["voigt_strain"], atol=1e-12
        )
    with pytest.raises(ValueError, match=r"'material.structure'.*holds \['As', 'Ga'\]"):
        primitive_cell({**material, "elements": ["Ga"]})


def test_repeats_for_a_minimum_width():
    cu = primitive_cell({"prototype": "fcc", "elements": ["Cu"], "lattice_constant_A": 3.615})
    width = 3.615 / np.sqrt(3)  # fcc primitive: every face distance is a/sqrt(3)
    np.testing.assert_allclose(face_widths(cu.cell), [width] * 3)
    for target in (2.0, 9.0, 10.5):
        n = repeats_for_width(cu.cell, target)
        assert n == (int(np.ceil(target / width)),) * 3
        assert face_widths(cu.repeat(n).cell).min() >= target
        if min(n) > 1:  # and one fewer repeat is too narrow
            assert face_widths(cu.repeat(tuple(k - 1 for k in n)).cell).min() < target
    mg = primitive_cell(HCP_MG)
    widths = face_widths(mg.cell)
    assert repeats_for_width(mg, 9.0) == tuple(int(np.ceil(9.0 / w)) for w in widths)


def test_rattling_a_one_atom_cell_is_refused():
    cu = {"prototype": "fcc", "elements": ["Cu"], "lattice_constant_A": 3.615}
    with pytest.raises(ValueError, match=r"'structures.rattled.count' = 8.*only translates"):
        check_rattled_cell(cu, SPEC)
    check_rattled_cell(cu, {**SPEC, "rattled": {"count": 0}})
    check_rattled_cell(SI_MATERIAL, SPEC)  # two atoms: forces carry information


VACANCY = {"count": 6, "repeat": [1, 1, 1], "max_strain": 0.01, "rattle_A": 0.05}


@pytest.mark.parametrize(
    "material",
    [SI_MATERIAL, {"prototype": "zincblende", "elements": ["Si", "C"], "lattice_constant_A": 4.36}],
)
def test_vacancy_cells_are_strained_supercells_less_one_atom(material):
    """Each vacancy cell is the conventional cell, strained by its recorded strain, with one
    atom fewer; every other atom within a few rattle widths of its site (the recorded strain
    maps the reference cell onto the cell); the k-mesh is the full cell's; other sections
    unchanged by adding vacancies."""
    spec = {**SPEC, "vacancy": VACANCY}
    structures = training_structures(material, spec, SEED)
    vac_ids = [sid for sid in structures if sid.startswith("vac-")]
    assert vac_ids == [f"vac-{i:03d}" for i in range(6)] == training_structure_ids(spec)[-6:]
    full = conventional_cell(material, [1, 1, 1])
    removed_species = []
    for sid in vac_ids:
        atoms = structures[sid]
        assert len(atoms) == len(full) - 1 and atoms.info["config_type"] == "vacancy"
        np.testing.assert_allclose(atoms.info["reference_cell"], full.cell.array)
        np.testing.assert_allclose(
            applied_strain(full.cell, atoms.cell), atoms.info["voigt_strain"], atol=1e-12
        )
        ideal = apply_voigt_strain(full, atoms.info["voigt_strain"])
        # match each atom to the nearest ideal site: all distinct, one site left over
        d = np.linalg.norm(atoms.positions[:, None, :] - ideal.positions[None, :, :], axis=-1)
        nearest = d.argmin(axis=1)
        assert len(set(nearest)) == len(atoms) and d.min(axis=1).max() < 6 * 0.05
        (empty,) = set(range(len(full))) - set(nearest)
        removed_species.append(full[empty].symbol)
    assert len(set(removed_species)) == len(set(material["elements"]))  # both species drawn
    without = training_structures(material, SPEC, SEED)
    for sid, atoms in without.items():
        np.testing.assert_array_equal(atoms.positions, structures[sid].positions)


def test_a_vacancy_cell_too_small_is_refused_before_any_work():
    cu = {"prototype": "fcc", "elements": ["Cu"], "lattice_constant_A": 3.615}
    check_vacancy_cell(cu, {"vacancy": VACANCY})  # 4 atoms: 3 remain
    sc = {"prototype": "sc", "elements": ["Po"], "lattice_constant_A": 3.35}
    with pytest.raises(ValueError, match=r"'structures.vacancy'.*at least 3 atoms.*has 1"):
        check_vacancy_cell(sc, {"vacancy": VACANCY})
    check_vacancy_cell(sc, {"vacancy": {**VACANCY, "repeat": [2, 2, 1]}})
