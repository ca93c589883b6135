"""Import of real DFT outputs written by other people's runs (tests/data/realdata, see its
README): QE fixtures of aiida-quantumespresso, VASP test data of ASE and custodian.

Every expected number is computed here from the file text with regular expressions and the
unit constants written out below, independently of the parsers under test.
"""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from dft2mlip.dft.importing import import_settings_hashes, import_source

REALDATA = Path(__file__).parent / "data" / "realdata"
QE = REALDATA / "qe"
VASP = REALDATA / "vasp"

#: CODATA 2006, the constants pw.x itself and ASE's espresso-out reader use
RY_EV = 13.60569193
BOHR_A = 0.52917720859
#: 1 GPa in eV/Å³ (ASE's CODATA 2014 elementary charge)
GPA_EV_PER_A3 = 1 / 160.21766208
FLOAT = r"[-+]?\d+\.\d*(?:[eE][-+]?\d+)?"


def one(source: dict) -> list:
    return import_source({"name": "r", **source})


def qe_source(path: Path, **extra) -> dict:
    return {"path": str(path), "format": "qe", **extra}


def qe_expected(text: str) -> dict:
    """Energy (eV), forces (eV/Å) and stress (eV/Å³, tension +, Voigt) of the last SCF."""
    energies = [float(e) for e in re.findall(rf"^!\s+total energy\s+=\s+({FLOAT}) Ry", text, re.M)]
    n_atoms = int(re.search(r"number of atoms/cell\s*=\s*(\d+)", text).group(1))
    last_forces = text.rsplit("Forces acting on atoms", 1)[1]
    forces = re.findall(rf"atom\s+\d+ type\s+\d+\s+force =\s+({FLOAT})\s+({FLOAT})\s+({FLOAT})",
                        last_forces)[:n_atoms]  # fmt: skip
    expected = {
        "energies": np.array(energies) * RY_EV,
        "forces": np.array(forces, dtype=float) * RY_EV / BOHR_A,
    }
    if "total   stress" in text:
        block = text.rsplit("total   stress", 1)[1].splitlines()[1:4]
        ry = np.array([line.split()[:3] for line in block], dtype=float)
        pressure_positive = ry * RY_EV / BOHR_A**3
        # QE: pressure positive; the project: tension positive, [xx, yy, zz, yz, xz, xy]
        expected["stress"] = -pressure_positive.reshape(9)[[0, 4, 8, 5, 2, 1]]
    return expected


@pytest.mark.parametrize(
    ("name", "n_steps"),
    [("vcrelax_success.out", 3), ("vcrelax_failed_not_converged_final_scf.out", 5),
     ("default_xml_230310.out", 1), ("magnetic_moments_v68.out", 1)],
)  # fmt: skip
def test_qe_label_is_the_last_frame_energy_forces_stress(name, n_steps):
    text = (QE / name).read_text()
    expected = qe_expected(text)
    (label,) = one(qe_source(QE / name))
    assert label.status == "ok", label.message
    assert len(expected["energies"]) == n_steps
    assert label.energy == pytest.approx(expected["energies"][-1], rel=1e-9, abs=1e-7)
    np.testing.assert_allclose(label.forces, expected["forces"], atol=1e-9)
    np.testing.assert_allclose(label.stress, expected["stress"], atol=1e-12)
    assert label.provenance["n_ionic_steps"] == n_steps
    if n_steps > 1:
        assert f"{n_steps} ionic steps" in label.message
        assert f"ionic step {n_steps} of {n_steps} (the last)" in label.message


def test_qe_vcrelax_stores_the_last_cell_with_the_last_stress():
    text = (QE / "vcrelax_success.out").read_text()
    block = text.rsplit("CELL_PARAMETERS (angstrom)", 1)[1].splitlines()[1:4]
    final_cell = np.array([line.split() for line in block], dtype=float)
    alat = float(re.search(rf"lattice parameter \(alat\)\s+=\s+({FLOAT})", text).group(1))
    axes = re.findall(rf"a\(\d\) = \(\s*({FLOAT})\s+({FLOAT})\s+({FLOAT})", text)
    first_cell = np.array(axes[:3], dtype=float) * alat * BOHR_A
    assert np.abs(final_cell - first_cell).max() > 1e-4  # the cell did change
    (label,) = one(qe_source(QE / "vcrelax_success.out"))
    np.testing.assert_allclose(label.atoms.cell[:], final_cell, atol=1e-9)
    assert label.atoms.get_chemical_symbols() == ["Si", "Si"]


def test_qe_frames_all_gives_one_label_per_ionic_step():
    text = (QE / "vcrelax_success.out").read_text()
    energies = qe_expected(text)["energies"]
    labels = one(qe_source(QE / "vcrelax_success.out", frames="all"))
    assert [lab.structure_id for lab in labels] == [
        "r__vcrelax_success__step001", "r__vcrelax_success__step002",
        "r__vcrelax_success__step003",
    ]  # fmt: skip
    assert all(lab.status == "ok" for lab in labels)
    np.testing.assert_allclose([lab.energy for lab in labels], energies, rtol=1e-9)
    assert [lab.provenance["ionic_step"] for lab in labels] == [1, 2, 3]


def test_qe_relaxation_whose_last_scf_failed_keeps_the_steps_before(tmp_path):
    text = (QE / "vcrelax_success.out").read_text()
    head = text[: text.rindex("!    total energy")]
    stop = "     convergence NOT achieved after 100 iterations: stopping\n\n   JOB DONE.\n"
    (tmp_path / "stuck.out").write_text(head + stop)
    (last,) = one(qe_source(tmp_path / "stuck.out"))
    assert last.status == "scf_not_converged"
    assert "ionic step 3 of 3 (the last)" in last.message
    assert "convergence NOT achieved after 100 iterations" in last.message
    labels = one(qe_source(tmp_path / "stuck.out", frames="all"))
    assert [lab.status for lab in labels] == ["ok", "ok", "scf_not_converged"]
    np.testing.assert_allclose(
        [lab.energy for lab in labels[:2]], qe_expected(text)["energies"][:2], rtol=1e-9
    )


def test_qe_relaxation_without_stress_names_the_missing_item():
    (label,) = one(qe_source(QE / "relax_success.out"))
    assert label.status == "failed"
    assert "no stress" in label.message and "ionic step 1 of 1" in label.message


def test_qe_failures_keep_pw_x_s_own_cause(tmp_path):
    (empty,) = one(qe_source(QE / "failed_computing_cholesky.out"))
    assert empty.status == "failed" and "empty output" in empty.message
    (scf,) = one(qe_source(QE / "failed_scf_not_converged.out"))
    assert scf.status == "scf_not_converged" and "SCF not converged" in scf.message
    assert "NOT achieved after 2 iterations" in scf.message
    header = (QE / "failed_scf_not_converged.out").read_text().split("Self-consistent")[0]
    bar = " " + "%" * 78
    error = "\n     Error in routine  cdiaghg (159):\n     problems computing cholesky\n"
    error = bar + error + bar + "\n"
    (tmp_path / "cholesky.out").write_text(header + error)
    (chol,) = one(qe_source(tmp_path / "cholesky.out"))
    assert chol.status == "failed" and "problems computing cholesky" in chol.message
    assert "cdiaghg" in chol.message
    text = (QE / "vcrelax_success.out").read_text()
    (tmp_path / "walltime.out").write_text(text[: len(text) // 2])
    (cut,) = one(qe_source(tmp_path / "walltime.out"))
    assert cut.status == "failed" and "stopped before the end (walltime?)" in cut.message


def test_qe_frames_agree_with_ase_where_ase_reads_the_file():
    import ase.io

    from dft2mlip.dft.qe import pw_frames

    for name in ("vcrelax_success.out", "vcrelax_failed_not_converged_final_scf.out",
                 "relax_success.out", "default_xml_230310.out"):  # fmt: skip
        ours = pw_frames((QE / name).read_text())
        theirs = ase.io.read(QE / name, format="espresso-out", index=":")
        assert len(ours) == len(theirs), name
        for mine, ase_atoms in zip(ours, theirs, strict=True):
            results = ase_atoms.calc.results
            assert mine.energy_eV == pytest.approx(results["energy"], abs=1e-9)
            np.testing.assert_allclose(mine.atoms.cell[:], ase_atoms.cell[:], atol=1e-9)
            np.testing.assert_allclose(mine.atoms.positions, ase_atoms.positions, atol=1e-9)
            if results.get("stress") is not None:
                np.testing.assert_allclose(mine.stress, results["stress"], atol=1e-14)


def vasprun_expected(text: str) -> dict:
    """TOTEN (the last SCF energy before the ionic step's structure), forces, stress."""
    calculation = text.rsplit("<calculation>", 1)[1]
    before_structure = calculation.split("<structure>")[0]
    toten = re.findall(rf'name="e_fr_energy">\s*({FLOAT})', before_structure)[-1]

    def varray(name: str) -> list[str]:
        body = calculation.split(f'<varray name="{name}" >')[1].split("</varray>")[0]
        return re.findall(r"<v>\s*(.*?)\s*</v>", body)

    forces = np.array([row.split() for row in varray("forces")], dtype=float)
    kb = np.array([row.split() for row in varray("stress")], dtype=float)
    # VASP: kB, compression positive -> eV/Å³, tension positive, ASE Voigt order
    stress = -(kb * 0.1 * GPA_EV_PER_A3).reshape(9)[[0, 4, 8, 5, 2, 1]]
    after_stress = calculation.split('<varray name="stress" >')[1]
    ionic = float(re.search(rf'name="e_fr_energy">\s*({FLOAT})', after_stress).group(1))
    return {"energy": float(toten), "forces": forces, "stress": stress, "ionic_e_fr": ionic}


def vasp_dir(tmp_path: Path, source: Path, *names: str) -> Path:
    run = tmp_path / source.name
    run.mkdir()
    for name in names:
        shutil.copy(source / name, run / name)
    return run


def test_vasp_pstress_energy_is_toten_not_the_enthalpy():
    text = (VASP / "pstress" / "vasprun.xml").read_text()
    expected = vasprun_expected(text)
    pstress_kb = float(re.search(rf'name="PSTRESS">\s*({FLOAT})', text).group(1))
    volume = float(re.search(rf'name="volume">\s*({FLOAT})', text).group(1))
    pv = pstress_kb * 0.1 * GPA_EV_PER_A3 * volume
    assert expected["ionic_e_fr"] - expected["energy"] == pytest.approx(pv, abs=2e-7)  # 7.1 meV
    (label,) = one({"path": str(VASP / "pstress"), "format": "vasp"})
    assert label.status == "ok", label.message
    assert label.energy == pytest.approx(expected["energy"], abs=2e-7)
    np.testing.assert_allclose(label.forces, expected["forces"], atol=1e-12)
    np.testing.assert_allclose(label.stress, expected["stress"], atol=1e-12)
    assert label.provenance["settings"]["PSTRESS"] == 1.0


def test_vasp_dfpt_vasprun_without_outcar_imports():
    text = (VASP / "dfpt_vasprun_only" / "vasprun.xml").read_text()
    expected = vasprun_expected(text)
    (label,) = one({"path": str(VASP / "dfpt_vasprun_only"), "format": "vasp"})
    assert label.status == "ok", label.message
    assert label.energy == pytest.approx(expected["energy"], abs=1e-8)
    np.testing.assert_allclose(label.forces, expected["forces"], atol=1e-12)
    np.testing.assert_allclose(label.stress, expected["stress"], atol=1e-12)
    assert label.atoms.get_chemical_symbols() == ["Na", "Cl"]
    # the SCF only: the linear-response steps after the ionic step's structure do not count
    calculation = text.split("<calculation>")[1]
    assert label.provenance["n_scf_iterations"] == calculation.split("<structure>")[0].count(
        "<scstep>"
    )


def outcar_expected(text: str) -> dict:
    toten = re.findall(rf"free  energy   TOTEN\s+=\s+({FLOAT}) eV", text)[-1]
    xx, yy, zz, xy, yz, zx = map(float, re.findall(r"^\s*in kB\s+(.+)$", text, re.M)[-1].split())
    block = text.rsplit("TOTAL-FORCE (eV/Angst)", 1)[1].splitlines()[2:]
    n_atoms = int(re.search(r"NIONS =\s*(\d+)", text).group(1))
    rows = np.array([line.split() for line in block[:n_atoms]], dtype=float)
    return {
        "energy": float(toten),
        "stress": -np.array([xx, yy, zz, yz, zx, xy]) * 0.1 * GPA_EV_PER_A3,
        "positions": rows[:, :3],
        "forces": rows[:, 3:],
        "n_scf": len(re.findall(r"-+ Iteration\s+1\(\s*\d+\)", text)),
    }


@pytest.mark.parametrize("files", [("OUTCAR", "POSCAR"), ("OUTCAR",)])
def test_vasp_outcar_without_vasprun_imports(tmp_path, files):
    source = VASP / "outcar_example_1"
    expected = outcar_expected((source / "OUTCAR").read_text())
    run = vasp_dir(tmp_path, source, *files)
    (label,) = one({"path": str(run), "format": "vasp"})
    assert label.status == "ok", label.message
    assert label.energy == pytest.approx(expected["energy"], abs=1e-8)
    np.testing.assert_allclose(label.stress, expected["stress"], atol=1e-12)
    np.testing.assert_allclose(label.forces, expected["forces"], atol=1e-8)
    np.testing.assert_allclose(label.atoms.positions, expected["positions"], atol=1e-8)
    assert label.provenance["n_scf_iterations"] == expected["n_scf"]
    assert label.atoms.get_chemical_symbols() == ["Ni"] * 18


def two_step_outcar(text: str, converged_second: bool) -> str:
    """The example OUTCAR with its ionic step repeated as step 2 (EDIFF line kept or not)."""
    head, rest = text.split("--- Iteration", 1)
    head, dashes = head.rsplit("\n", 1)
    step, tail = (dashes + "--- Iteration" + rest).split(" General timing and accounting", 1)
    second = re.sub(r"Iteration\s+1\(", "Iteration    2(", step)
    if not converged_second:
        second = second.replace("aborting loop because EDIFF is reached", "aborting loop ---")
    return head + "\n" + step + second + " General timing and accounting" + tail


@pytest.mark.parametrize("converged_second", [True, False])
def test_vasp_outcar_convergence_is_judged_on_the_taken_step(tmp_path, converged_second):
    text = (VASP / "outcar_example_1" / "OUTCAR").read_text()
    run = tmp_path / "relax"
    run.mkdir()
    (run / "OUTCAR").write_text(two_step_outcar(text, converged_second))
    (label,) = one({"path": str(run), "format": "vasp"})
    assert label.provenance["n_ionic_steps"] == 2
    assert label.provenance["n_scf_iterations"] == outcar_expected(text)["n_scf"]
    if converged_second:
        assert label.status == "ok" and "ionic step 2 of 2 (the last)" in label.message
    else:
        assert label.status == "scf_not_converged"
        assert "ionic step 2 of 2" in label.message
    labels = one({"path": str(run), "format": "vasp", "frames": "all"})
    assert [lab.structure_id for lab in labels] == ["r__relax__step001", "r__relax__step002"]
    assert labels[0].status == "ok"


def test_vasp_unfinished_outputs_say_so(tmp_path):
    xml = (VASP / "pstress" / "vasprun.xml").read_text()
    run = tmp_path / "cut"
    run.mkdir()
    (run / "vasprun.xml").write_text(xml[: len(xml) // 2])
    (label,) = one({"path": str(run), "format": "vasp"})
    assert label.status == "failed" and "stopped before the end (walltime?)" in label.message
    outcar = (VASP / "outcar_example_1" / "OUTCAR").read_text()
    (run / "OUTCAR").write_text(outcar[: len(outcar) // 2])
    (label,) = one({"path": str(run), "format": "vasp"})
    assert label.status == "failed" and "OUTCAR stopped before the end" in label.message
    (run / "vasp.out").write_text(" |     ZBRENT: fatal error in bracketing      |\n")
    (label,) = one({"path": str(run), "format": "vasp"})
    assert "vasp.out says: ZBRENT: fatal error in bracketing" in label.message


def test_settings_hash_tracks_vasp_physics_and_matches_the_cheap_hashes(tmp_path):
    xml = (VASP / "pstress" / "vasprun.xml").read_text()
    changes = {
        "same": xml,
        "encut": xml.replace('name="ENMAX">    400.00000000', 'name="ENMAX">    520.00000000'),
        "ispin": xml.replace('name="ISPIN">     1<', 'name="ISPIN">     2<'),
        "ldau": xml.replace('name="LDAU"> F  <', 'name="LDAU"> T  <'),
    }
    for name, text in changes.items():
        assert name == "same" or text != xml, name
        (tmp_path / name).mkdir()
        (tmp_path / name / "vasprun.xml").write_text(text)
    source = {"name": "r", "path": str(tmp_path / "*"), "format": "vasp"}
    labels = import_source(source)
    by_run = {lab.structure_id.split("__")[1]: lab for lab in labels}
    assert len({lab.settings_hash for lab in labels}) == 4
    assert by_run["encut"].provenance["settings"]["ENCUT"] == 520.0
    cheap = import_settings_hashes(source)
    assert {h: sorted(Path(f).parent.name for f in files) for h, files in cheap.items()} == {
        lab.settings_hash: [name] for name, lab in by_run.items()
    }
    (label,) = one({"path": str(VASP / "pstress"), "format": "vasp"})
    assert label.settings_hash == by_run["same"].settings_hash  # the path does not count


def test_settings_hash_tracks_qe_physics_and_settings_json(tmp_path):
    text = (QE / "vcrelax_success.out").read_text()
    other = text.replace("kinetic-energy cutoff     =      30.0000  Ry",
                         "kinetic-energy cutoff     =      40.0000  Ry")  # fmt: skip
    assert other != text
    for name, content in (("a", text), ("b", text), ("c", other)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "pw.out").write_text(content)
    recorded = {"settings_hash": "0123abcd0123", "physics": {"ecutwfc_Ry": 30.0}}
    (tmp_path / "b" / "settings.json").write_text(json.dumps(recorded))
    source = {"name": "r", "path": str(tmp_path / "*"), "format": "qe"}
    labels = {lab.structure_id: lab for lab in import_source(source)}
    assert labels["r__b"].settings_hash == "0123abcd0123"
    assert labels["r__b"].provenance["settings"]["settings_json"] == {"ecutwfc_Ry": 30.0}
    assert labels["r__a"].settings_hash != labels["r__c"].settings_hash
    settings = labels["r__a"].provenance["settings"]
    assert settings["ecutwfc_Ry"] == 30.0 and settings["ecutrho_Ry"] == 240.0
    assert settings["exchange_correlation"].startswith("PBE")
    assert settings["pseudopotentials"]["Si"]["md5"] == "0b0bb1205258b0d07b9f9672cf965d36"
    cheap = import_settings_hashes(source)
    assert {h: [Path(f).parent.name for f in files] for h, files in cheap.items()} == {
        lab.settings_hash: [sid.split("__")[1]] for sid, lab in labels.items()
    }
    (magnetic,) = one(qe_source(QE / "magnetic_moments_v68.out"))
    assert magnetic.provenance["settings"]["nspin"] == 2


def test_extxyz_without_settings_is_one_group_per_source(tmp_path):
    """Files of one source share "settings unknown"; two sources do not (their labels are
    refused together like any mixed settings) unless they give the same settings_id."""
    import ase.io
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    def frames(tag=None):
        atoms = bulk("Si", "diamond", a=5.43)
        atoms.calc = SinglePointCalculator(atoms, energy=-10.0, forces=np.zeros((2, 3)),
                                           stress=np.zeros(6))  # fmt: skip
        if tag:
            atoms.info["settings_hash"] = tag
        return [atoms]

    for name in ("train", "valid", "other"):
        ase.io.write(tmp_path / f"{name}.extxyz", frames(), format="extxyz")
    ase.io.write(tmp_path / "tagged.extxyz", frames("abc123abc123"), format="extxyz")

    def imported(name, file, **extra):
        (label,) = import_source({"name": name, "path": str(tmp_path / file),
                                  "format": "extxyz", **extra})  # fmt: skip
        return label

    train, valid = imported("mine", "train.extxyz"), imported("mine", "valid.extxyz")
    other = imported("theirs", "other.extxyz")
    assert train.settings_hash == valid.settings_hash != other.settings_hash
    assert train.provenance["settings"] == {"unknown": "settings unknown",
                                            "import_source": "mine"}  # fmt: skip
    same = [imported(n, f, settings_id="mp-r2scan")
            for n, f in (("mine", "train.extxyz"), ("theirs", "other.extxyz"))]  # fmt: skip
    assert same[0].settings_hash == same[1].settings_hash
    assert same[0].settings_hash not in (train.settings_hash, other.settings_hash)
    assert imported("mine", "tagged.extxyz").settings_hash == "abc123abc123"
    source = {"name": "mine", "path": str(tmp_path / "*.extxyz"), "format": "extxyz"}
    assert import_settings_hashes(source) == {
        train.settings_hash: [str(tmp_path / f"{n}.extxyz") for n in ("other", "train", "valid")],
        "abc123abc123": [str(tmp_path / "tagged.extxyz")],
    }


@pytest.mark.parametrize("run", ["nonspin_v621", "nonspin_v533_edited", "outcar_example_1"])
def test_vasp_outcar_of_either_spin_imports_with_its_magnetisation(tmp_path, run):
    """ISPIN = 1 prints "magnetization" without a value (VASP 6.2.1, and VASP 5.x as edited in
    nonspin_v533_edited): no moment is recorded and nothing else is read in its place."""
    text = (VASP / run / "OUTCAR").read_text()
    expected = outcar_expected(text)
    counts = re.findall(r"^ number of electron\s+\S+ magnetization(.*)$", text, re.M)
    assert counts, run
    (label,) = one({"path": str(vasp_dir(tmp_path, VASP / run, "OUTCAR")), "format": "vasp"})
    assert label.status == "ok", label.message
    assert label.energy == pytest.approx(expected["energy"], abs=1e-8)
    np.testing.assert_allclose(label.forces, expected["forces"], atol=1e-8)
    np.testing.assert_allclose(label.stress, expected["stress"], atol=1e-12)
    ispin = int(re.search(r"ISPIN\s*=\s*(\d)", text).group(1))
    assert label.provenance["settings"]["ISPIN"] == ispin
    if ispin == 1:
        assert all(not c.strip() for c in counts)
        assert "total_magnetization_muB" not in label.provenance
    else:
        assert label.provenance["total_magnetization_muB"] == float(counts[-1])


# ---- a pw.x output that prints no atomic positions (QE 7.4): the structure its run left beside


def header_cell(text: str) -> np.ndarray:
    """celldm(1) (bohr) times the crystal axes (alat units) the output prints, in Å."""
    alat = float(re.search(rf"celldm\(1\)=\s*({FLOAT})", text).group(1))
    axes = re.findall(rf"a\(\d\) = \(\s*({FLOAT})\s+({FLOAT})\s+({FLOAT})", text)[:3]
    return np.array(axes, dtype=float) * alat * BOHR_A


def pw_input(cell_A: np.ndarray, fractions: list, symbol: str = "Si") -> str:
    rows = "\n".join(" ".join(f"{x:.10f}" for x in row) for row in cell_A)
    atoms = "\n".join(f"{symbol} {a} {b} {c}" for a, b, c in fractions)
    return (f"&CONTROL\n calculation='scf'\n/\n&SYSTEM\n ibrav=0, nat={len(fractions)}, ntyp=1,"
            f" ecutwfc=30\n/\n&ELECTRONS\n/\nATOMIC_SPECIES\n{symbol} 28.085 x.UPF\n\n"
            f"CELL_PARAMETERS angstrom\n{rows}\n\nATOMIC_POSITIONS crystal\n{atoms}\n\n"
            "K_POINTS automatic\n5 5 5 0 0 0\n")  # fmt: skip


def test_qe_output_without_positions_alone_is_refused_with_its_cause():
    text = (QE / "default_xml_241015.out").read_text()
    assert "site n." not in text and "ATOMIC_POSITIONS" not in text
    (label,) = one(qe_source(QE / "default_xml_241015.out"))
    assert label.status == "failed"
    assert "prints no atomic positions" in label.message and "aiida.in" in label.message
    assert "\n" not in label.message


def test_qe_output_without_positions_takes_the_input_beside_it(tmp_path):
    text = (QE / "default_xml_241015.out").read_text()
    assert "Reading input from aiida.in" in text
    expected = qe_expected(text)
    shutil.copy(QE / "default_xml_241015.out", tmp_path / "run.out")
    cell = header_cell(text)
    fractions = [(0.0, 0.0, 0.0), (0.25, 0.25, 0.25)]
    (tmp_path / "aiida.in").write_text(pw_input(cell, fractions))
    (label,) = one(qe_source(tmp_path / "run.out"))
    assert label.status == "ok", label.message
    np.testing.assert_allclose(label.atoms.cell[:], cell, atol=1e-9)
    np.testing.assert_allclose(label.atoms.positions, np.array(fractions) @ cell, atol=1e-9)
    assert label.energy == pytest.approx(expected["energies"][-1], rel=1e-9)
    np.testing.assert_allclose(label.forces, expected["forces"], atol=1e-12)
    np.testing.assert_allclose(label.stress, expected["stress"], atol=1e-14)
    assert "aiida.in" in label.provenance["structure_from"]["step 1"]
    # an input of another run (another cell, or another atom count) is not taken
    for wrong in (pw_input(cell * 1.01, fractions), pw_input(cell, [*fractions, (0.5, 0, 0)])):
        (tmp_path / "aiida.in").write_text(wrong)
        (label,) = one(qe_source(tmp_path / "run.out"))
        assert label.status == "failed" and "aiida.in" in label.message, label.message
        assert "differs" in label.message or "3 atoms, the output 2" in label.message


def test_qe_output_without_positions_takes_the_xml_of_its_save_directory(tmp_path):
    """Our own pw.x 6.7 run (tests/data/qe/si2_scf_xml) with its positions block cut out of
    the output and its input removed: the structure comes from data-file-schema.xml."""
    source = Path(__file__).parent / "data" / "qe" / "si2_scf_xml"
    run = tmp_path / "run"
    shutil.copytree(source, run)
    (run / "pw.in").unlink()
    text = (run / "pw.out").read_text()
    alat = float(re.search(rf"celldm\(1\)=\s*({FLOAT})", text).group(1))
    taus = re.findall(rf"tau\(\s*\d+\) = \(\s*({FLOAT})\s+({FLOAT})\s+({FLOAT})", text)
    positions = np.array(taus, dtype=float) * alat * BOHR_A
    block = re.search(r"\n\s+site n\..*?\n\n", text, re.S).group(0)
    (run / "pw.out").write_text(text.replace(block, "\n\n"))
    (label,) = one(qe_source(run / "pw.out"))
    assert label.status == "ok", label.message
    np.testing.assert_allclose(label.atoms.positions, positions, atol=1e-6)  # 7 decimals of alat
    np.testing.assert_allclose(label.forces, qe_expected(text)["forces"], atol=1e-12)
    assert "data-file-schema.xml" in label.provenance["structure_from"]["step 1"]


def test_an_ok_label_needs_atoms_and_one_force_row_per_atom():
    from ase import Atoms

    from dft2mlip.data import Label

    for atoms in (Atoms(), Atoms("Si2", positions=np.zeros((2, 3)), cell=np.eye(3) * 5, pbc=True)):
        atoms.info.update(REF_energy=-1.0, REF_stress=np.zeros(6))
        atoms.arrays["REF_forces"] = np.zeros((len(atoms), 3))[:1]
        with pytest.raises(ValueError, match="one force row per atom"):
            Label("x", "imported", "ok", "", atoms)


def test_settings_hash_changes_with_each_physics_setting_alone(tmp_path):
    """One edit per run of a real output (tests/import_variants.py): a physics setting gives a
    new hash, a change that is not physics (mixing, MPI processes, the irreducible k-point
    count that symmetry makes of the same mesh) keeps the base run's hash."""
    from import_variants import settings_variants

    variants = settings_variants(tmp_path)
    for engine in ("qe", "vasp"):
        source = {"name": engine, "path": str(tmp_path / engine / "*"), "format": engine}
        groups = import_settings_hashes(source).items()
        hash_of = {Path(f).parent.name: h for h, files in groups for f in files}
        mine = [(change, physics, hash_of[run.name]) for e, change, physics, run in variants
                if e == engine]  # fmt: skip
        for change, physics, settings_hash in mine:
            assert (settings_hash != hash_of["base"]) == physics, (engine, change)
        physics_hashes = [h for _, physics, h in mine if physics]
        assert len(set(physics_hashes)) == len(physics_hashes) >= 6
    (label,) = import_source({"name": "q", "path": str(tmp_path / "qe" / "base" / "pw.out"),
                              "format": "qe"})  # fmt: skip
    assert label.provenance["settings"]["kpoints"] == {"mesh": [4, 4, 4], "shift": [0, 0, 0]}


def test_unknown_k_mesh_is_one_group_per_source(tmp_path):
    """A pw.x output with no input or XML beside it: its k-mesh is unknown, so runs of one
    source share a group and two sources do not, unless they give one settings_id."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(QE / "vcrelax_success.out", tmp_path / name / "pw.out")
    hashes = {name: import_settings_hashes({"name": name, "format": "qe",
                                            "path": str(tmp_path / name)})  # fmt: skip
              for name in ("a", "b")}
    assert list(hashes["a"]) != list(hashes["b"])
    together = import_settings_hashes({"name": "ab", "format": "qe", "path": str(tmp_path / "*")})
    assert len(together) == 1
    named = [import_settings_hashes({"name": n, "format": "qe", "path": str(tmp_path / n),
                                     "settings_id": "study-1"}) for n in ("a", "b")]  # fmt: skip
    assert list(named[0]) == list(named[1])
