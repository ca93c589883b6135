"""Label files and the dataset: round trips, splits, exclusion of failed labels, settings hash."""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase.io import read
from conftest import SI_MATERIAL, fixture_structure

from dft2mlip.data import Label, build_dataset, read_label, write_label
from dft2mlip.dft.qe import parse_pw_output
from dft2mlip.structures import conventional_cell, primitive_cell
from dft2mlip.units import EV_PER_A3_TO_GPA

HASH = "9e8ba8949ce3"
FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
QE_FIXTURE = Path(__file__).parent / "data" / "qe" / "si2_scf.pwo"


def make_label(sid, status="ok", settings_hash=HASH, seed=0, supercell=False) -> Label:
    """A label with made-up reference values (data plumbing only, no physics)."""
    rng = np.random.default_rng(seed)
    atoms = conventional_cell(SI_MATERIAL, [1, 1, 1]) if supercell else primitive_cell(SI_MATERIAL)
    atoms.info.update(structure_id=sid, config_type="strained", voigt_strain=rng.normal(0, 0.01, 6))
    if status == "ok":
        atoms.info["REF_energy"] = -108.0 * len(atoms) / 2 + rng.normal()
        atoms.info["REF_stress"] = rng.normal(0, 0.01, 6)
        atoms.arrays["REF_forces"] = rng.normal(0, 0.2, (len(atoms), 3))
    return Label(
        structure_id=sid,
        config_type="strained",
        status=status,
        message="" if status == "ok" else f"{status} because of test {sid}",
        atoms=atoms,
        provenance={"engine": "qe", "code_version": "6.7MaX", "n_scf_iterations": 7},
        energy_kind="free_energy",
        settings_hash=settings_hash,
        dft_engine="qe",
    )


def write_labels(directory: Path, labels) -> list[Path]:
    paths = []
    for label in labels:
        path = directory / "labels" / f"{label.structure_id}.extxyz"
        write_label(label, path)
        paths.append(path)
    return paths


@pytest.fixture
def mixed_labels(tmp_path):
    """18 ok labels (one 8-atom), one SCF-not-converged and one failed label on disk."""
    labels = [make_label(f"strain-{i:03d}", seed=i) for i in range(17)]
    labels.append(make_label("super-000", seed=99, supercell=True))
    labels.append(make_label("rattle-000", status="scf_not_converged", seed=50))
    labels.append(make_label("rattle-001", status="failed", seed=51))
    return labels, write_labels(tmp_path, labels)


def test_label_round_trip_keeps_values_types_and_extra_info(tmp_path):
    label = make_label("strain-007", seed=3)
    label.provenance["note"] = 'a "quoted" path C:\\qe and Å'
    label.atoms.info["empty_note"] = ""  # extxyz cannot hold it: dropped, not corrupting
    for awkward_hash in ("0123456789ab", "1234e5678901", "000000000000", "abcdef012345"):
        label.settings_hash = awkward_hash  # extxyz alone would turn some into numbers
        write_label(label, tmp_path / "label.extxyz")
        back = read_label(tmp_path / "label.extxyz")
        assert back.settings_hash == awkward_hash
    assert (back.structure_id, back.config_type, back.status) == ("strain-007", "strained", "ok")
    assert back.energy == label.energy
    np.testing.assert_array_equal(back.stress, label.stress)
    np.testing.assert_allclose(back.forces, label.forces, atol=1e-8)
    np.testing.assert_allclose(back.atoms.positions, label.atoms.positions, atol=1e-8)
    np.testing.assert_array_equal(back.atoms.info["voigt_strain"], label.atoms.info["voigt_strain"])
    assert back.provenance["n_scf_iterations"] == 7
    assert back.provenance["note"] == "a 'quoted' path C:/qe and Å"
    assert back.energy_kind == "free_energy" and back.dft_engine == "qe"
    assert back.message == "" and "empty_note" not in back.atoms.info
    # the file itself follows the contract: a single extxyz frame with the info keys
    (frame,) = read(tmp_path / "label.extxyz", index=":", format="extxyz")
    for key in ("structure_id", "status", "message", "dft_engine", "energy_kind", "provenance"):
        assert key in frame.info
    json.loads(frame.info["provenance"])


def test_failed_label_carries_structure_only(tmp_path):
    label = make_label("rattle-003", status="failed")
    label.atoms.info["REF_energy"] = 1.0  # stale values must not leak into the file
    label.atoms.arrays["REF_forces"] = np.ones((2, 3))
    write_label(label, tmp_path / "failed.extxyz")
    back = read_label(tmp_path / "failed.extxyz")
    assert back.status == "failed" and back.message == label.message
    assert back.energy is None and back.forces is None and back.stress is None
    assert not any(k.startswith("REF_") for k in [*back.atoms.info, *back.atoms.arrays])
    np.testing.assert_allclose(back.atoms.cell, label.atoms.cell)


def test_write_label_refuses_empty_contract_fields(tmp_path):
    label = make_label("strain-000")
    label.settings_hash = ""
    with pytest.raises(ValueError, match="settings_hash is empty"):
        write_label(label, tmp_path / "label.extxyz")


def test_label_validation():
    atoms = primitive_cell(SI_MATERIAL)
    with pytest.raises(ValueError, match="status"):
        Label("x", "strained", "done", "", atoms)
    with pytest.raises(ValueError, match="REF_"):
        Label("x", "strained", "ok", "", atoms)


def test_build_dataset_splits_excludes_and_tabulates(mixed_labels, tmp_path, caplog):
    labels, paths = mixed_labels
    with caplog.at_level(logging.WARNING, logger="dft2mlip.data"):
        table = build_dataset(paths, FRACTIONS, seed=5, out_dir=tmp_path / "ds")
    assert "2 of 20 labels excluded" in caplog.text and "rattle-001 (failed" in caplog.text

    assert len(table) == 20 and set(table["structure_id"]) == {lab.structure_id for lab in labels}
    rows = table.set_index("structure_id")
    assert rows.loc["rattle-000", "split"] == "excluded"
    assert rows.loc["rattle-000", "status"] == "scf_not_converged"
    assert (
        rows.loc["rattle-001", "split"] == "excluded"
        and rows.loc["rattle-001", "status"] == "failed"
    )
    assert "test rattle-001" in rows.loc["rattle-001", "message"]
    assert np.isnan(rows.loc["rattle-001", "energy_eV"])
    assert (table["split"].value_counts().to_dict()) == {
        "train": 12,
        "val": 3,
        "test": 3,
        "excluded": 2,
    }
    assert pd.read_parquet(tmp_path / "ds" / "labels.parquet").equals(table)

    summary = json.loads((tmp_path / "ds" / "summary.json").read_text())
    assert summary["status"] == {"ok": 18, "scf_not_converged": 1, "failed": 1}
    assert summary["split"] == {"train": 12, "val": 3, "test": 3, "excluded": 2}
    assert summary["settings_hash"] == HASH

    # the extxyz files hold exactly the ok labels of their split, REF keys intact
    by_id = {lab.structure_id: lab for lab in labels}
    seen = []
    for split in ("train", "val", "test"):
        frames = read(tmp_path / "ds" / f"{split}.extxyz", index=":", format="extxyz")
        for frame in frames:
            sid = frame.info["structure_id"]
            seen.append(sid)
            assert rows.loc[sid, "split"] == split
            label = by_id[sid]
            assert frame.info["REF_energy"] == pytest.approx(label.energy, abs=1e-12)
            np.testing.assert_allclose(frame.info["REF_stress"], label.stress, atol=1e-15)
            np.testing.assert_allclose(frame.arrays["REF_forces"], label.forces, atol=1e-8)
            assert frame.info["config_type"] == "strained" and frame.info["dft_engine"] == "qe"
            assert frame.info["energy_kind"] == "free_energy"
            assert "status" not in frame.info and "provenance" not in frame.info
    assert sorted(seen) == sorted(sid for sid, lab in by_id.items() if lab.status == "ok")

    # table values follow from the labels (GPa, tension positive, pressure = -trace/3)
    sup = by_id["super-000"]
    row = rows.loc["super-000"]
    assert row["n_atoms"] == 8 and row["formula"] == "Si8"
    assert row["energy_per_atom_eV"] == pytest.approx(sup.energy / 8)
    assert row["max_force_eV_per_A"] == pytest.approx(np.linalg.norm(sup.forces, axis=1).max())
    stress_gpa = sup.stress * EV_PER_A3_TO_GPA
    for name, value in zip(("xx", "yy", "zz", "yz", "xz", "xy"), stress_gpa, strict=True):
        assert row[f"stress_{name}_GPa"] == pytest.approx(value)
    assert row["pressure_GPa"] == pytest.approx(-stress_gpa[:3].sum() / 3)
    assert json.loads(row["provenance"])["code_version"] == "6.7MaX"


def test_split_is_seeded_and_independent_of_path_order(mixed_labels, tmp_path):
    _, paths = mixed_labels

    def split(seed, order, name):
        table = build_dataset(order, FRACTIONS, seed=seed, out_dir=tmp_path / name)
        return table.set_index("structure_id")["split"].to_dict()

    first = split(5, paths, "a")
    assert split(5, paths[::-1], "b") == first
    assert split(6, paths, "c") != first
    assert (tmp_path / "a" / "train.extxyz").read_text() == (
        tmp_path / "b" / "train.extxyz"
    ).read_text()


def test_small_datasets_still_get_val_and_test(tmp_path):
    paths = write_labels(tmp_path, [make_label(f"strain-{i:03d}", seed=i) for i in range(3)])
    table = build_dataset(paths, FRACTIONS, seed=1, out_dir=tmp_path / "ds")
    assert sorted(table["split"]) == ["test", "train", "val"]


def test_mixed_settings_hash_raises_naming_ids(tmp_path):
    labels = [make_label(f"strain-{i:03d}", seed=i) for i in range(4)]
    labels.append(make_label("strain-004", settings_hash="ffffffffffff"))
    labels.append(make_label("rattle-000", status="failed", settings_hash="eeeeeeeeeeee"))
    with pytest.raises(ValueError) as err:
        build_dataset(write_labels(tmp_path, labels), FRACTIONS, 0, tmp_path / "ds")
    message = str(err.value)
    assert "settings_hash" in message and "strain-004" in message and "ffffffffffff" in message
    assert "rattle-000" not in message  # a failed label's settings do not matter


def test_bad_inputs_are_rejected(tmp_path):
    paths = write_labels(tmp_path, [make_label("strain-000"), make_label("strain-001")])
    with pytest.raises(ValueError, match="dataset.fractions"):
        build_dataset(paths, {"train": 0.5, "val": 0.2, "test": 0.2}, 0, tmp_path / "ds")
    with pytest.raises(ValueError, match="dataset.fractions"):
        build_dataset(paths, {"train": 0.8, "validation": 0.2}, 0, tmp_path / "ds")
    with pytest.raises(ValueError, match="occurs twice"):
        build_dataset([paths[0], paths[0]], FRACTIONS, 0, tmp_path / "ds")


def test_real_pw_label_flows_into_the_dataset(tmp_path):
    """The committed pw.x output -> label file -> dataset, values unchanged."""
    label = parse_pw_output(QE_FIXTURE, fixture_structure(), HASH)
    assert label.status == "ok", label.message
    others = [make_label(f"strain-{i:03d}", seed=i) for i in range(3)]
    paths = write_labels(tmp_path, [label, *others])
    table = build_dataset(paths, FRACTIONS, 0, tmp_path / "ds").set_index("structure_id")
    split = table.loc["fixture-si2", "split"]
    frames = read(tmp_path / "ds" / f"{split}.extxyz", index=":", format="extxyz")
    (frame,) = [f for f in frames if f.info["structure_id"] == "fixture-si2"]
    assert frame.info["REF_energy"] == pytest.approx(label.energy, abs=1e-10)
    np.testing.assert_allclose(frame.info["REF_stress"], label.stress, atol=1e-15)
    np.testing.assert_allclose(frame.arrays["REF_forces"], label.forces, atol=1e-8)
    assert table.loc["fixture-si2", "pressure_GPa"] == pytest.approx(
        -label.stress[:3].mean() * EV_PER_A3_TO_GPA
    )
    provenance = json.loads(table.loc["fixture-si2", "provenance"])
    assert (
        provenance["pseudopotentials"]["Si"]["md5"]
        == label.provenance["pseudopotentials"]["Si"]["md5"]
    )


def test_multi_label_files_round_trip_and_fingerprints(tmp_path):
    from dft2mlip.data import read_labels, structure_fingerprint, write_labels

    labels = [make_label("a", seed=1), make_label("b", status="failed", seed=2)]
    write_labels(labels, tmp_path / "many.extxyz")
    back = read_labels(tmp_path / "many.extxyz")
    assert [(b.structure_id, b.status) for b in back] == [("a", "ok"), ("b", "failed")]
    assert np.allclose(back[0].stress, labels[0].stress) and back[1].stress is None
    write_labels([], tmp_path / "empty.extxyz")
    assert read_labels(tmp_path / "empty.extxyz") == []
    atoms = labels[0].atoms
    shifted = atoms.copy()
    shifted.positions += atoms.cell[0]  # a lattice translation: the same structure
    assert structure_fingerprint(shifted) == structure_fingerprint(atoms)
    moved = atoms.copy()
    moved.positions[1] += [0.01, 0.0, 0.0]
    assert structure_fingerprint(moved) != structure_fingerprint(atoms)
