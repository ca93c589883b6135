"""Quantum ESPRESSO layer: settings, k-points, input writing, output parsing and running pw.x.

Parser tests use a real pw.x 6.7 output committed in tests/data/qe/ (see README.md there);
sign and failure tests run pw.x on a 2-atom Si cell (about 1-2 s each).
"""

import hashlib
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import read
from ase.io.espresso import kspacing_to_grid
from ase.units import Bohr, Ry
from conftest import SI_MATERIAL, SI_PSEUDO, TINY_QE, fixture_structure

from dft2mlip.data import read_label, write_label
from dft2mlip.dft.qe import (
    kpoint_mesh,
    parse_pw_output,
    reported_pressure_kbar,
    write_pw_input,
)
from dft2mlip.dft.run import pw_command, pw_environment, run_pw
from dft2mlip.dft.settings import QESettings, check_pseudopotentials, resolve_pseudo_dir
from dft2mlip.structures import conventional_cell, primitive_cell
from dft2mlip.units import EV_PER_A3_TO_GPA, KBAR_TO_GPA

DATA = Path(__file__).parent / "data" / "qe"
GOLDEN = DATA / "golden_pw.in"
FIXTURE_OUT = DATA / "si2_scf.pwo"
REGENERATE = os.environ.get("DFT2MLIP_REGENERATE_QE_FIXTURES") == "1"
REGEN_HINT = (
    "If the change is intended, regenerate the fixtures deliberately with\n"
    "  DFT2MLIP_REGENERATE_QE_FIXTURES=1 python -m pytest tests/test_qe.py -k 'golden or fixture'\n"
    "and review `git diff tests/data/qe` before committing."
)


def qe_settings(**changes) -> QESettings:
    return QESettings.from_config({**TINY_QE, **changes})


def run_label(atoms, settings, run_dir: Path, **run_kwargs):
    """write input -> run pw.x -> parse; returns (label, run result, output path)."""
    write_pw_input(atoms, settings, run_dir / "pw.in")
    result = run_pw(run_dir / "pw.in", run_dir / "pw.out", **run_kwargs)
    label = parse_pw_output(run_dir / "pw.out", atoms, settings.settings_hash(), settings=settings)
    return label, result, run_dir / "pw.out"


# --------------------------------------------------------------------------- settings


def test_settings_hash_stable_and_sensitive_to_physics_only(tiny_qe_settings, tmp_path):
    base = tiny_qe_settings.settings_hash()
    assert re.fullmatch(r"[0-9a-f]{12}", base)
    assert qe_settings().settings_hash() == base
    for physics_change in (
        {"ecutwfc_Ry": 22.0},
        {"ecutrho_Ry": 200.0},
        {"kspacing_per_A": 0.5},
        {"degauss_Ry": 0.02},
        {"smearing": "gaussian"},
        {"conv_thr_Ry": 1e-9},
        {"pseudopotentials": {"Si": "Si.pbe-rrkj.UPF"}},
    ):
        assert qe_settings(**physics_change).settings_hash() != base, physics_change
    for recovery_change in (
        {"mixing_beta": 0.3},
        {"electron_maxstep": 300},
        {"executable": "/opt/qe/bin/pw.x"},
    ):
        assert qe_settings(**recovery_change).settings_hash() == base, recovery_change

    # the same file in another directory: same physics; one byte changed: different physics
    copy_dir = tmp_path / "pseudo"
    copy_dir.mkdir()
    shutil.copy(tiny_qe_settings.pseudo_path / SI_PSEUDO, copy_dir / SI_PSEUDO)
    assert qe_settings(pseudo_dir=str(copy_dir)).settings_hash() == base
    with open(copy_dir / SI_PSEUDO, "a") as handle:
        handle.write("\n")
    assert qe_settings(pseudo_dir=str(copy_dir)).settings_hash() != base


def test_physics_dict_records_pseudo_md5(tiny_qe_settings):
    physics = tiny_qe_settings.physics_dict()
    expected = hashlib.md5((tiny_qe_settings.pseudo_path / SI_PSEUDO).read_bytes()).hexdigest()
    assert physics["pseudopotentials"]["Si"] == {"file": SI_PSEUDO, "md5": expected}
    assert "mixing_beta" not in physics and "electron_maxstep" not in physics


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"ecutwfc_Ry": 0.0}, "dft.qe.ecutwfc_Ry"),
        ({"ecutrho_Ry": 60.0}, "dft.qe.ecutrho_Ry"),
        ({"kspacing_per_A": 0.0}, "dft.qe.kspacing_per_A"),
        ({"kspacing_per_A": "dense"}, "dft.qe.kspacing_per_A"),
        ({"occupations": "smeared"}, "dft.qe.occupations"),
        ({"smearing": "cold-ish"}, "dft.qe.smearing"),
        ({"degauss_Ry": -0.01}, "dft.qe.degauss_Ry"),
        ({"conv_thr_Ry": 0.0}, "dft.qe.conv_thr_Ry"),
        ({"electron_maxstep": 0}, "dft.qe.electron_maxstep"),
        ({"electron_maxstep": 2.5}, "dft.qe.electron_maxstep"),
        ({"mixing_beta": 1.5}, "dft.qe.mixing_beta"),
        ({"executable": ""}, "dft.qe.executable"),
        ({"pseudopotentials": {}}, "dft.qe.pseudopotentials"),
        ({"pseudopotentials": {"Si": "dir/Si.UPF"}}, "dft.qe.pseudopotentials.Si"),
        ({"ecutwfc": 30.0}, "dft.qe.ecutwfc"),  # a typo of ecutwfc_Ry
    ],
)
def test_qe_settings_reject_bad_values_naming_the_key(change, key):
    with pytest.raises(ValueError, match=re.escape(key)):
        qe_settings(**change)


def test_qe_settings_normalise_numbers():
    settings = qe_settings(ecutwfc_Ry=20, ecutrho_Ry=160, electron_maxstep=50.0)
    assert isinstance(settings.ecutwfc_Ry, float) and isinstance(settings.electron_maxstep, int)
    assert settings.settings_hash() == qe_settings().settings_hash()


def test_resolve_pseudo_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("ESPRESSO_PSEUDO", str(tmp_path / "env"))
    assert resolve_pseudo_dir(str(tmp_path / "cfg")) == tmp_path / "cfg"
    assert resolve_pseudo_dir(None) == tmp_path / "env"
    monkeypatch.delenv("ESPRESSO_PSEUDO")
    assert resolve_pseudo_dir(None) == Path("/usr/share/espresso/pseudo")
    assert resolve_pseudo_dir("").is_absolute()


def test_check_pseudopotentials_messages_name_key_and_directory(tiny_qe_settings, tmp_path):
    check_pseudopotentials(tiny_qe_settings, ["Si"])
    with pytest.raises(ValueError) as err:
        check_pseudopotentials(tiny_qe_settings, ["Si", "Fe"])
    assert "Fe" in str(err.value) and "dft.qe.pseudopotentials.Fe" in str(err.value)
    assert str(tiny_qe_settings.pseudo_path) in str(err.value)

    empty = qe_settings(pseudo_dir=str(tmp_path))
    with pytest.raises(ValueError) as err:
        check_pseudopotentials(empty, ["Si"])
    message = str(err.value)
    assert SI_PSEUDO in message and str(tmp_path) in message
    assert "dft.qe.pseudo_dir" in message and "$ESPRESSO_PSEUDO" in message


# --------------------------------------------------------------------------- k-points


def test_kpoint_mesh_default_si_cells():
    assert kpoint_mesh(primitive_cell(SI_MATERIAL).cell, 0.35) == (6, 6, 6)
    assert kpoint_mesh(conventional_cell(SI_MATERIAL, [1, 1, 1]).cell, 0.35) == (4, 4, 4)


def test_kpoint_mesh_matches_ase_and_is_monotonic():
    rng = np.random.default_rng(3)
    for _ in range(20):
        cell = np.diag(rng.uniform(3, 12, 3)) + rng.uniform(-1, 1, (3, 3))
        for spacing in (0.15, 0.3, 0.6):
            # ASE's kspacing_to_grid takes the spacing without 2π
            expected = kspacing_to_grid(Atoms(cell=cell, pbc=True), spacing / (2 * np.pi))
            assert kpoint_mesh(cell, spacing) == tuple(expected)
    cell = primitive_cell(SI_MATERIAL).cell
    meshes = [kpoint_mesh(cell, s) for s in np.linspace(1.5, 0.1, 30)]
    assert (np.diff(np.array(meshes), axis=0) >= 0).all()  # denser spacing, never fewer k
    b_fcc = np.sqrt(3) / SI_MATERIAL["lattice_constant_A"]  # |b_i| of the fcc primitive cell
    assert meshes[0] == (math.ceil(2 * np.pi * b_fcc / 1.5),) * 3
    assert meshes[-1] == (math.ceil(2 * np.pi * b_fcc / 0.1),) * 3
    assert kpoint_mesh(cell, 100.0) == (1, 1, 1)
    bigger = conventional_cell(SI_MATERIAL, [2, 2, 2]).cell
    assert kpoint_mesh(bigger, 0.35) == (2, 2, 2)
    with pytest.raises(ValueError, match="kspacing"):
        kpoint_mesh(cell, 0.0)


# --------------------------------------------------------------------------- input


def golden_settings() -> QESettings:
    # a fixed, machine-independent pseudo_dir: write_pw_input does not need the files
    return qe_settings(pseudo_dir="/opt/pseudo-for-golden-test")


def test_golden_pw_input(tmp_path):
    written = tmp_path / "pw.in"
    write_pw_input(fixture_structure(), golden_settings(), written)
    if REGENERATE:
        shutil.copy(written, GOLDEN)
    assert written.read_text() == GOLDEN.read_text(), (
        f"write_pw_input output differs from {GOLDEN}.\n{REGEN_HINT}"
    )


def test_written_input_reads_back(tmp_path):
    atoms = fixture_structure()
    write_pw_input(atoms, golden_settings(), tmp_path / "run" / "pw.in")
    text = (tmp_path / "run" / "pw.in").read_text()
    back = read(tmp_path / "run" / "pw.in", format="espresso-in")
    assert np.allclose(back.cell, atoms.cell, atol=1e-12)
    assert np.allclose(back.positions, atoms.positions, atol=1e-9)
    for needle in ("tstress          = .true.", "tprnfor          = .true.", "'scf'"):
        assert needle in text
    assert "prefix           = 'fixture-si2'" in text
    assert "pseudo_dir       = '/opt/pseudo-for-golden-test'" in text
    assert "outdir           = './tmp'" in text
    mesh = kpoint_mesh(atoms.cell, TINY_QE["kspacing_per_A"])
    assert f"{mesh[0]} {mesh[1]} {mesh[2]}  0 0 0" in text
    assert "&CELL" not in text and "&RISM" not in text  # empty namelists pw.x 6.x warns about


def test_write_pw_input_refuses_unsupported(tmp_path):
    atoms = fixture_structure()
    atoms.set_initial_magnetic_moments([1.0, 1.0])  # ignored: spin comes from the settings only
    write_pw_input(atoms, golden_settings(), tmp_path / "pw.in")
    assert (tmp_path / "pw.in").read_text() == GOLDEN.read_text()
    with pytest.raises(ValueError, match=r"dft\.qe\.pseudopotentials\.Ge"):
        germanium = primitive_cell({**SI_MATERIAL, "elements": ["Ge"]})
        write_pw_input(germanium, golden_settings(), tmp_path / "pw.in")


# --------------------------------------------------------------------------- parser


@pytest.fixture(scope="module")
def fixture_output(tmp_path_factory) -> Path:
    """The committed real pw.x output (rewritten with pw.x when regenerating)."""
    if REGENERATE:
        run_dir = tmp_path_factory.mktemp("regen")
        write_pw_input(fixture_structure(), qe_settings(), run_dir / "pw.in")
        result = run_pw(run_dir / "pw.in", run_dir / "pw.out", nprocs=1, mpi_launcher="")
        assert result.returncode == 0
        shutil.copy(run_dir / "pw.out", FIXTURE_OUT)
        shutil.copy(run_dir / "pw.in", DATA / "si2_scf.pwi")
    return FIXTURE_OUT


def _kbar_block(text: str) -> np.ndarray:
    """The 3x3 kbar columns of QE's last 'total stress' block (pressure positive)."""
    lines = text.splitlines()
    start = max(i for i, ln in enumerate(lines) if "total   stress" in ln)
    return np.array([[float(x) for x in lines[start + 1 + r].split()[3:6]] for r in range(3)])


def test_parse_fixture_output(fixture_output):
    text = fixture_output.read_text()
    structure = fixture_structure()
    label = parse_pw_output(fixture_output, structure, "0123456789ab")
    assert label.status == "ok", label.message
    assert (label.structure_id, label.config_type) == ("fixture-si2", "strained")
    assert label.energy_kind == "free_energy" and label.dft_engine == "qe"
    assert label.settings_hash == "0123456789ab"

    # energy: the "!" line (Ry) converted independently
    bang = float(re.search(r"^!\s+total energy\s+=\s+(\S+) Ry", text, re.M).group(1))
    # (ASE's espresso reader converts with CODATA 2006 constants, ase.units.Ry is CODATA 2014:
    # they differ by 8e-8 relative, i.e. 2e-5 eV here)
    assert label.energy == pytest.approx(bang * Ry, rel=2e-7)

    # forces: QE's Ry/bohr lines converted independently; Newton's third law for 2 atoms
    force_line = r"atom\s+\d+ type\s+\d+\s+force =\s+(\S+)\s+(\S+)\s+(\S+)"
    qe_forces = np.array(re.findall(force_line, text), dtype=float)
    assert label.forces.shape == (2, 3)
    np.testing.assert_allclose(label.forces, qe_forces * Ry / Bohr, atol=1e-6)
    assert np.abs(label.forces).max() > 0.05  # the displaced atom feels a real force
    np.testing.assert_allclose(label.forces.sum(axis=0), 0.0, atol=1e-5)

    # stress: QE's kbar block is pressure positive, ours tension positive
    kbar = _kbar_block(text)
    expected_gpa = -KBAR_TO_GPA * np.array(
        [kbar[0, 0], kbar[1, 1], kbar[2, 2], kbar[1, 2], kbar[0, 2], kbar[0, 1]]
    )
    np.testing.assert_allclose(label.stress * EV_PER_A3_TO_GPA, expected_gpa, atol=6e-4)
    assert np.abs(expected_gpa[3:]).max() > 0.1  # the shear strain shows up as shear stress
    pressure = reported_pressure_kbar(fixture_output)
    assert pressure == pytest.approx(-label.stress[:3].mean() * EV_PER_A3_TO_GPA * 10, abs=0.01)

    # the label keeps the exact input structure and info
    np.testing.assert_array_equal(label.atoms.positions, structure.positions)
    np.testing.assert_array_equal(label.atoms.info["voigt_strain"], structure.info["voigt_strain"])

    prov = label.provenance
    assert prov["engine"] == "qe" and prov["code_version"] == re.search(r"v\.(\S+)", text)[1]
    assert prov["n_scf_iterations"] == int(re.search(r"achieved in\s+(\d+)", text)[1])
    assert prov["wall_time_s"] > 0 and prov["parser"].startswith("dft2mlip ")
    assert prov["pseudopotentials"]["Si"]["file"] == SI_PSEUDO


def test_fixture_pseudo_md5_is_the_installed_file(fixture_output, tiny_qe_settings):
    # pw.x's printed MD5 is the same quantity the settings hash uses
    label = parse_pw_output(fixture_output, fixture_structure(), "h", settings=tiny_qe_settings)
    assert label.status == "ok", label.message
    installed = tiny_qe_settings.physics_dict()["pseudopotentials"]["Si"]["md5"]
    assert label.provenance["pseudopotentials"]["Si"]["md5"] == installed


def test_parse_detects_settings_and_structure_mismatch(fixture_output):
    other = qe_settings(ecutwfc_Ry=25.0, ecutrho_Ry=200.0)
    label = parse_pw_output(fixture_output, fixture_structure(), "h", settings=other)
    assert label.status == "failed" and "ecutwfc_Ry" in label.message

    wrong = conventional_cell(SI_MATERIAL, [1, 1, 1])
    wrong.info.update(structure_id="fixture-si2", config_type="strained")
    label = parse_pw_output(fixture_output, wrong, "h")
    assert label.status == "failed" and "8" in label.message and "2 atoms" in label.message

    moved = fixture_structure()
    moved.positions[1] += 0.05
    label = parse_pw_output(fixture_output, moved, "h")
    assert label.status == "failed" and "positions differ" in label.message


def test_parse_truncated_empty_missing_outputs_fail(fixture_output, tmp_path):
    text = fixture_output.read_text()
    structure = fixture_structure()
    cases = {
        "truncated.pwo": (text[: len(text) // 2], "JOB DONE"),
        "empty.pwo": ("", "empty"),
        "no_stress.pwo": (text[: text.index("Computing stress")] + "JOB DONE.\n", "stress"),
    }
    for name, (content, needle) in cases.items():
        (tmp_path / name).write_text(content)
        label = parse_pw_output(tmp_path / name, structure, "h")
        assert label.status == "failed" and needle in label.message, (name, label.message)
        assert "REF_energy" not in label.atoms.info and "REF_forces" not in label.atoms.arrays
    label = parse_pw_output(tmp_path / "missing.pwo", structure, "h")
    assert label.status == "failed" and "does not exist" in label.message
    with pytest.raises(ValueError, match="tstress"):
        reported_pressure_kbar(tmp_path / "empty.pwo")


# --------------------------------------------------------------------------- real pw.x runs


@pytest.mark.slow
@pytest.mark.parametrize(("scale", "nprocs"), [(0.97, 2), (1.03, 1)])
def test_compressed_and_expanded_cell_signs(pw_x, tiny_qe_settings, tmp_path, scale, nprocs):
    atoms = primitive_cell(SI_MATERIAL)
    atoms.set_cell(atoms.cell * scale, scale_atoms=True)
    atoms.info.update(structure_id=f"scaled-{scale}", config_type="hydrostatic")
    label, result, out = run_label(atoms, tiny_qe_settings, tmp_path, nprocs=nprocs)
    assert result.returncode == 0 and label.status == "ok", label.message
    pressure_kbar = reported_pressure_kbar(out)
    diagonal = label.stress[:3]
    if scale < 1:  # compressed: QE pressure positive, tension-positive stress negative
        assert pressure_kbar > 10 and np.all(diagonal < 0)
    else:
        assert pressure_kbar < -10 and np.all(diagonal > 0)
    assert -diagonal.mean() * EV_PER_A3_TO_GPA * 10 == pytest.approx(pressure_kbar, abs=0.01)
    assert label.provenance["mpi_processes"] == nprocs


@pytest.mark.slow
def test_scf_not_converged_is_kept_without_reference(pw_x, tiny_qe_settings, tmp_path):
    settings = qe_settings(electron_maxstep=2)
    label, result, _ = run_label(fixture_structure(), settings, tmp_path, nprocs=1)
    assert result.returncode != 0  # pw.x 6.7 exits 2; run_pw must not raise
    assert label.status == "scf_not_converged", label.message
    assert "electron_maxstep" in label.message
    assert label.provenance["n_scf_iterations"] == 2
    write_label(label, tmp_path / "label.extxyz")
    back = read_label(tmp_path / "label.extxyz")
    assert back.status == "scf_not_converged" and back.settings_hash == label.settings_hash
    assert not any(k.startswith("REF_") for k in [*back.atoms.info, *back.atoms.arrays])
    # raising electron_maxstep is error recovery, not new physics
    assert settings.settings_hash() == tiny_qe_settings.settings_hash()


@pytest.mark.slow
def test_pw_error_block_gives_failed_label(pw_x, tmp_path):
    settings = qe_settings(pseudopotentials={"Si": "Missing.UPF"})  # pw.x stops in readpp
    atoms = fixture_structure()
    write_pw_input(atoms, settings, tmp_path / "pw.in")
    result = run_pw(tmp_path / "pw.in", tmp_path / "pw.out", nprocs=1)
    assert result.returncode != 0
    label = parse_pw_output(tmp_path / "pw.out", atoms, "h")
    assert label.status == "failed"
    assert "readpp" in label.message and "Missing.UPF" in label.message


@pytest.mark.slow
def test_run_pw_timeout_kills_and_parses_as_failed(pw_x, tmp_path):
    atoms = conventional_cell(SI_MATERIAL, [1, 1, 1])
    write_pw_input(atoms, qe_settings(), tmp_path / "pw.in")
    result = run_pw(tmp_path / "pw.in", tmp_path / "pw.out", nprocs=1, timeout_s=0.5)
    assert result.timed_out and result.wall_time_s < 15
    label = parse_pw_output(tmp_path / "pw.out", atoms, "h")
    # on a loaded machine pw.x may not have printed a line in 0.5 s: then the output is empty
    assert label.status == "failed"
    assert "JOB DONE" in label.message or "empty output" in label.message, label.message
    assert "timeout" in (tmp_path / "pw.out.stderr").read_text()


def test_pw_command_and_environment(pw_x, monkeypatch):
    assert pw_command("pw.in", nprocs=1) == [pw_x, "-in", "pw.in"]
    assert pw_command("pw.in", nprocs=4, mpi_launcher="") == [pw_x, "-in", "pw.in"]
    if shutil.which("mpirun"):
        command = pw_command("pw.in", nprocs=3, mpi_launcher="mpirun -np {nprocs}")
        assert command == ["mpirun", "-np", "3", pw_x, "-in", "pw.in"]
        env = pw_environment(command)
        if os.geteuid() == 0 and "Open MPI" in os.popen("mpirun --version 2>&1").read():
            assert env["OMPI_ALLOW_RUN_AS_ROOT"] == "1"
            assert env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] == "1"
    with pytest.raises(FileNotFoundError) as err:
        pw_command("pw.in", executable="no-such-pw.x")
    assert "quantum-espresso" in str(err.value) and "dft.qe.executable" in str(err.value)
    with pytest.raises(FileNotFoundError, match="dft.mpi_launcher"):
        pw_command("pw.in", nprocs=2, mpi_launcher="no-such-mpirun -n {nprocs}")
    with pytest.raises(ValueError, match="dft.mpi_launcher"):
        pw_command("pw.in", nprocs=2, mpi_launcher="mpirun -np {ranks}")


REAL_VCRELAX = Path(__file__).parent / "data" / "realdata" / "qe" / "vcrelax_success.out"


def test_parse_multi_step_output_compares_the_last_structure_tightly():
    """A real vc-relax (cell changed by 3e-4 Å): the first structure is refused, saying how
    many ionic steps there are; the last one gets the last step's stress."""
    first = read(REAL_VCRELAX, format="espresso-out", index=0)
    first.calc = None
    label = parse_pw_output(REAL_VCRELAX, first, "h")
    assert label.status == "failed" and "cell differs" in label.message
    assert "3 ionic steps and step 3 (the last) was compared" in label.message
    last = read(REAL_VCRELAX, format="espresso-out", index=-1)
    stress = last.calc.results["stress"]
    last.calc = None
    label = parse_pw_output(REAL_VCRELAX, last, "h")
    assert label.status == "ok", label.message
    text = REAL_VCRELAX.read_text().rsplit("total   stress", 1)[1].splitlines()[1:4]
    ry_per_bohr3 = np.array([line.split()[:3] for line in text], dtype=float)
    expected = -ry_per_bohr3 * 13.60569193 / 0.52917720859**3  # CODATA 2006, tension +
    np.testing.assert_allclose(label.stress, expected.reshape(9)[[0, 4, 8, 5, 2, 1]], atol=1e-12)
    np.testing.assert_allclose(label.stress, stress, atol=1e-14)
