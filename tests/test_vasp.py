"""VASP layer: settings and hash, golden inputs (MatPESStaticSet), parser units/signs/order, and
the whole VASP path of the workflow.

VASP is licensed, so it cannot run here: tests/vasp_standin/vasp_std is a STAND-IN executable
that computes energy, forces and stress with ASE's EMT and writes them in VASP's genuine
vasprun.xml/OUTCAR formats and conventions (kB, compression positive, order xx yy zz xy yz zx).
The parser is checked against EMT computed directly in the test, so a sign, unit or order
error anywhere between the stand-in's output and the label shows up.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read

from dft2mlip.dft.labels import STANDIN_ENV, parse_run, run_input, write_input
from dft2mlip.dft.vasp import (
    NON_PHYSICS_INCAR,
    VaspSettings,
    check_ready_to_run,
    parse_vasp_output,
    vasp_kb_line_to_voigt,
    write_vasp_input,
)
from dft2mlip.structures import apply_voigt_strain
from dft2mlip.units import EV_PER_A3_TO_GPA, KBAR_TO_GPA

ROOT = Path(__file__).resolve().parents[1]
STANDIN = Path(__file__).parent / "vasp_standin" / "vasp_std"
STANDIN_CMD = f"{sys.executable} {STANDIN}"
DATA = Path(__file__).parent / "data" / "vasp"
REGENERATE = os.environ.get("DFT2MLIP_REGENERATE_VASP_FIXTURES") == "1"
TINY_VASP = {"executable": STANDIN_CMD, "encut_eV": 400.0, "kspacing_per_A": 0.3}


@pytest.fixture(autouse=True)
def no_potcars(monkeypatch):
    """No POTCAR directory configured (as in CI): inputs use potcar_spec=True."""
    from pymatgen.core import SETTINGS

    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.delitem(SETTINGS, "PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.delenv("VASP_STANDIN_SCF_STEPS", raising=False)
    monkeypatch.delenv("VASP_STANDIN_CRASH_ONCE", raising=False)


def compressed_al():
    """fcc Al primitive cell compressed 3 % with shear, one atom displaced: all six stress
    components and nonzero forces (2 atoms)."""
    atoms = bulk("Al", "fcc", a=4.05).repeat((2, 1, 1))
    voigt = np.array([-0.03, -0.03, -0.03, 0.01, -0.008, 0.012])
    atoms = apply_voigt_strain(atoms, voigt)
    atoms.positions[1] += [0.05, -0.03, 0.02]
    atoms.info.update(structure_id="al-compressed", config_type="test")
    return atoms


def run_standin(directory: Path, env: dict | None = None, check: bool = True) -> None:
    subprocess.run(
        [sys.executable, str(STANDIN)],
        cwd=directory,
        check=check,
        capture_output=True,
        env={**os.environ, **(env or {})},
    )


# --------------------------------------------------------------------------- settings


def test_settings_hash_tracks_physics_only():
    base = VaspSettings.from_config(TINY_VASP).settings_hash()
    for change in (
        {"encut_eV": 450.0},
        {"kspacing_per_A": 0.25},
        {"ediff_eV": 1e-7},
        {"ismear": 1},
        {"sigma_eV": 0.1},
        {"prec": "Normal"},
        {"incar": {"LREAL": "Auto"}},
        {"incar": {"ALGO": "Fast"}},
        {"potcar_functional": "PBE_54"},
    ):
        assert VaspSettings.from_config({**TINY_VASP, **change}).settings_hash() != base, change
    for change in (
        {"nelm": 400},
        {"incar": {"AMIX": 0.1, "BMIX": 0.01, "NCORE": 4, "KPAR": 2}},
        {"executable": "srun vasp_std"},
        {"potcar_dir": "/somewhere/else"},
    ):
        assert VaspSettings.from_config({**TINY_VASP, **change}).settings_hash() == base, change
    with_potcar = VaspSettings.from_config(TINY_VASP).settings_hash({"Al": "ab" * 32})
    assert with_potcar != base


@pytest.mark.parametrize(
    "change, key",
    [
        ({"encut_eV": -1}, "encut_eV"),
        ({"ediff_eV": 1e-3}, "ediff_eV"),
        ({"ispin": 2}, "ispin"),
        ({"incar": {"ENCUT": 500}}, "incar.ENCUT"),
        ({"ismear": 7}, "ismear"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_settings_reject_bad_values_naming_the_key(change, key):
    with pytest.raises(ValueError, match=rf"dft\.vasp\.{key}"):
        VaspSettings.from_config({**TINY_VASP, **change})


def test_recovery_tags_are_not_physics():
    for tag in ("NELM", "AMIX", "BMIX", "NCORE", "KPAR", "NPAR"):
        assert tag in NON_PHYSICS_INCAR
    for tag in ("ENCUT", "ALGO", "ISMEAR", "SIGMA", "PREC", "EDIFF", "LREAL", "KSPACING"):
        assert tag not in NON_PHYSICS_INCAR


# --------------------------------------------------------------------------- inputs


def test_golden_inputs(tmp_path):
    """INCAR/POSCAR/POTCAR.spec pinned; changes to the input set or our overrides show up."""
    written = write_vasp_input(compressed_al(), VaspSettings.from_config(TINY_VASP), tmp_path)
    assert written["potcar_spec"] is True and written["potcar_sha256"] == {}
    assert sorted(written["files"]) == ["INCAR", "KPOINTS", "POSCAR", "POTCAR.spec"]
    if REGENERATE:
        DATA.mkdir(parents=True, exist_ok=True)
        for name in ("INCAR", "POSCAR"):
            shutil.copy(tmp_path / name, DATA / f"golden_{name}")
    for name in ("INCAR", "POSCAR"):
        assert (tmp_path / name).read_text() == (DATA / f"golden_{name}").read_text(), (
            f"{name} differs from tests/data/vasp/golden_{name}; if intended, regenerate with "
            "DFT2MLIP_REGENERATE_VASP_FIXTURES=1 and review the diff"
        )
    assert (tmp_path / "POTCAR.spec").read_text().split() == ["Al"]


def test_inputs_request_forces_stress_and_the_configured_physics(tmp_path):
    from pymatgen.io.vasp import Incar

    settings = VaspSettings.from_config({**TINY_VASP, "incar": {"LREAL": False}})
    atoms = compressed_al()
    write_vasp_input(atoms, settings, tmp_path)
    incar = Incar.from_file(tmp_path / "INCAR")
    assert incar["NSW"] == 0 and incar["IBRION"] == -1 and incar["ISIF"] == 2
    assert incar["ENCUT"] == 400 and incar["KSPACING"] == 0.3 and incar["EDIFF"] == 1e-6
    assert incar["ISMEAR"] == 0 and incar["SIGMA"] == 0.05 and incar["PREC"] == "Accurate"
    assert "MAGMOM" not in incar and incar["ISPIN"] == 1
    poscar = read(tmp_path / "POSCAR", format="vasp")
    assert poscar.get_chemical_symbols() == atoms.get_chemical_symbols()  # order kept
    assert np.allclose(poscar.cell, atoms.cell, atol=1e-10)
    assert np.allclose(poscar.positions, atoms.positions, atol=1e-8)


def test_real_run_without_potcar_stops_with_a_clear_error(tmp_path):
    write_vasp_input(compressed_al(), VaspSettings.from_config(TINY_VASP), tmp_path)
    with pytest.raises(FileNotFoundError, match="dft.vasp.potcar_dir.*PMG_VASP_PSP_DIR"):
        check_ready_to_run(tmp_path)
    check_ready_to_run(tmp_path, allow_potcar_spec=True)  # the stand-in may run


# --------------------------------------------------------------------------- parser


def test_kb_line_conversion_sign_and_order():
    # VASP "in kB": xx yy zz xy yz zx, compression positive
    voigt = vasp_kb_line_to_voigt([10.0, 20.0, 30.0, 1.0, 2.0, 3.0])
    expected_gpa = -np.array([10.0, 20.0, 30.0, 2.0, 3.0, 1.0]) * KBAR_TO_GPA  # yz xz xy
    assert np.allclose(voigt * EV_PER_A3_TO_GPA, expected_gpa)


@pytest.fixture
def standin_run(tmp_path):
    atoms = compressed_al()
    settings = VaspSettings.from_config(TINY_VASP)
    write_vasp_input(atoms, settings, tmp_path)
    run_standin(tmp_path)
    if REGENERATE:
        for name in ("vasprun.xml", "OUTCAR"):
            shutil.copy(tmp_path / name, DATA / name)
    return atoms, settings, tmp_path


def emt_reference(atoms):
    ref = atoms.copy()
    ref.calc = EMT()
    return ref.get_potential_energy(), ref.get_forces(), ref.get_stress()


@pytest.mark.parametrize("source", ["vasprun.xml", "OUTCAR"])
def test_parser_matches_emt_in_project_units_and_signs(standin_run, source):
    atoms, settings, directory = standin_run
    if source == "OUTCAR":
        (directory / "vasprun.xml").unlink()  # the fallback path
    label = parse_vasp_output(directory, atoms, settings.settings_hash(), settings=settings)
    assert label.status == "ok", label.message
    assert label.provenance["output_file"] == source
    energy, forces, stress = emt_reference(atoms)
    assert label.energy == pytest.approx(energy, abs=1e-7)  # free energy TOTEN
    assert np.allclose(label.forces, forces, atol=2e-6)
    # all six components, in ASE order and sign (kB printed with 5 decimals = 1e-6 GPa)
    assert np.allclose(label.stress * EV_PER_A3_TO_GPA, stress * EV_PER_A3_TO_GPA, atol=2e-5)
    assert np.abs(stress[3:]).min() > 1e-4, "the test cell must have shear stress"


def test_compressed_cell_pressure_positive_ref_stress_negative(standin_run):
    atoms, settings, directory = standin_run
    text = (directory / "OUTCAR").read_text()
    pressure_kb = float(text.split("external pressure =")[1].split()[0])
    assert pressure_kb > 0  # VASP: compression positive
    label = parse_vasp_output(directory, atoms, settings.settings_hash(), settings=settings)
    assert np.all(label.stress[:3] < 0)  # project: tension positive
    assert -label.stress[:3].mean() * EV_PER_A3_TO_GPA == pytest.approx(
        pressure_kb * KBAR_TO_GPA, abs=0.01
    )


def test_energy_is_free_energy_toten_not_sigma0(standin_run):
    from pymatgen.io.vasp import Vasprun

    atoms, settings, directory = standin_run
    label = parse_vasp_output(directory, atoms, "h")
    run = Vasprun(str(directory / "vasprun.xml"), parse_potcar_file=False)
    assert label.energy == pytest.approx(run.ionic_steps[-1]["e_fr_energy"])
    assert abs(label.energy - run.final_energy) > 1e-5  # pymatgen's final_energy is σ→0
    assert label.energy_kind == "free_energy"


def test_committed_standin_fixture_parses_with_pymatgen_and_ase():
    """tests/data/vasp/{vasprun.xml,OUTCAR}: stand-in output of compressed_al(); both libraries
    read it as VASP output, and agree with our parser."""
    from pymatgen.io.vasp import Outcar, Vasprun

    atoms = compressed_al()
    directory = DATA
    label = parse_vasp_output(directory, atoms, "h")
    assert label.status == "ok"
    run = Vasprun(str(DATA / "vasprun.xml"), parse_potcar_file=False)
    assert run.converged_electronic
    outcar = Outcar(str(DATA / "OUTCAR"))
    assert outcar.final_fr_energy == pytest.approx(label.energy, abs=1e-7)
    via_ase = read(DATA / "OUTCAR", format="vasp-out")
    assert np.allclose(via_ase.get_stress(), label.stress, atol=1e-7)
    assert np.allclose(via_ase.get_forces(), label.forces, atol=1e-5)
    xml_ase = read(DATA / "vasprun.xml", format="vasp-xml")
    assert np.allclose(xml_ase.get_stress(), label.stress, atol=1e-7)


def test_unconverged_scf_is_flagged(tmp_path):
    atoms = compressed_al()
    settings = VaspSettings.from_config({**TINY_VASP, "nelm": 5})
    write_vasp_input(atoms, settings, tmp_path)
    run_standin(tmp_path, {"VASP_STANDIN_SCF_STEPS": "9"})
    label = parse_vasp_output(tmp_path, atoms, "h", settings=settings)
    assert label.status == "scf_not_converged" and "NELM" in label.message
    (tmp_path / "vasprun.xml").unlink()
    assert parse_vasp_output(tmp_path, atoms, "h").status == "scf_not_converged"


def test_killed_run_and_wrong_settings_fail(tmp_path):
    atoms = compressed_al()
    settings = VaspSettings.from_config(TINY_VASP)
    write_vasp_input(atoms, settings, tmp_path)
    run_standin(tmp_path, {"VASP_STANDIN_CRASH_ONCE": str(tmp_path / "marker")}, check=False)
    label = parse_vasp_output(tmp_path, atoms, "h")
    assert label.status == "failed" and "killed" in label.message
    run_standin(tmp_path)
    other = VaspSettings.from_config({**TINY_VASP, "encut_eV": 500.0})
    label = parse_vasp_output(tmp_path, atoms, "h", settings=other)
    assert label.status == "failed" and "ENCUT" in label.message
    moved = atoms.copy()
    moved.positions[0] += 0.01
    assert "positions differ" in parse_vasp_output(tmp_path, moved, "h").message


def test_label_steps_record_provenance(tmp_path, monkeypatch):
    """write_input -> run_input (custodian VaspJob) -> parse_run, as the workflow does."""
    monkeypatch.setenv(STANDIN_ENV, "1")
    atoms = compressed_al()
    record = write_input("vasp", TINY_VASP, atoms, tmp_path, tmp_path / "settings.json")
    run = run_input("vasp", tmp_path, executable=STANDIN_CMD, mpi_launcher="", max_errors=2)
    assert run["custodian_error"] is None and run["n_corrections"] == 0
    label = parse_run("vasp", TINY_VASP, tmp_path, atoms, tmp_path / "settings.json", run)
    assert label.status == "ok"
    prov = label.provenance
    assert prov["settings_hash"] == record["settings_hash"] == label.settings_hash
    assert prov["engine"] == "vasp" and prov["potcars"] == ["PAW_PBE Al 00Jan0000"]
    assert prov["potcar_spec"] is True and prov["standin"] is True
    assert prov["corrections"] == [] and "dft2mlip" in prov["parser"]
    with pytest.raises(RuntimeError, match="other DFT settings"):
        parse_run("vasp", {**TINY_VASP, "encut_eV": 420.0}, tmp_path, atoms,
                  tmp_path / "settings.json", run)  # fmt: skip


# --------------------------------------------------------------------------- workflow


def vasp_workflow_config(tmp_path: Path) -> dict:
    """fcc Al with the stand-in; an imported extxyz source too."""
    extra = compressed_al()
    energy, forces, stress = emt_reference(extra)
    extra.info.update(REF_energy=energy, REF_stress=stress)
    extra.arrays["REF_forces"] = forces
    extra.info.pop("structure_id")
    (tmp_path / "external.extxyz").write_text("")
    import ase.io

    ase.io.write(tmp_path / "external.extxyz", extra, format="extxyz")
    return {
        "seed": 5,
        "material": {
            "name": "Al",
            "prototype": "fcc",
            "elements": ["Al"],
            "lattice_constant_A": 4.05,
        },  # fmt: skip
        "structures": {
            "hydrostatic": {"strains": [-0.02, 0.02]},
            "strained": {"count": 2, "max_strain": 0.02},
            "rattled": {"count": 0},  # one atom per fcc cell: rattle a supercell instead
            "supercell": {"count": 1, "repeat": [1, 1, 1], "max_strain": 0.01, "rattle_A": 0.05},
        },
        "dft": {"engine": "vasp", "mpi_launcher": "", "vasp": dict(TINY_VASP)},
        "dataset": {
            "fractions": {"train": 0.6, "val": 0.2, "test": 0.2},
            "import": [
                # other "DFT" (EMT) on purpose: trained with the VASP labels, allowed by "warn"
                {
                    "name": "ext",
                    "path": str(tmp_path / "external.extxyz"),
                    "format": "extxyz",
                    "on_settings_mismatch": "warn",
                }  # fmt: skip
            ],
        },
        "model": {
            "r_max_A": 4.0,
            "num_channels": 8,
            "max_L": 0,
            "correlation": 2,
            "num_interactions": 1,
        },  # fmt: skip
        "training": {
            "epochs": 1,
            "batch_size": 2,
            "runs": {"adaptive": {"scheme": "softadapt", "window": 2}},
        },  # fmt: skip
        "validation": {"md": {"snapshots": 1}},
    }


@pytest.mark.slow
@pytest.mark.workflow
def test_vasp_path_inputs_custodian_parse_dataset_training(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    for name in ("Snakefile", "workflow", "scripts", "envs", "profiles"):
        (work / name).symlink_to(ROOT / name)
    (work / "config").mkdir()
    cfg = vasp_workflow_config(tmp_path)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, STANDIN_ENV: "1", "PYTHONUNBUFFERED": "1"}
    target = "results/train/adaptive/seed0/model.pt"
    elastic = ["results/validate/dft/elastic.json", "results/validate/dft/elastic_relaxed.json"]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", target, *elastic],
        cwd=work, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_parquet(work / "results" / "dataset" / "labels.parquet")
    n_pipeline = 2 + 2 + 1
    assert len(table) == n_pipeline + 1
    assert set(table["status"]) == {"ok"}
    assert set(table["dft_engine"]) == {"vasp", "external"}
    pipeline = table[table["source"] == "pipeline"]
    assert pipeline["settings_hash"].nunique() == 1
    assert pipeline["code_version"].str.contains("standin").all()
    # the compressed hydrostatic cell: positive pressure, negative REF_stress diagonal
    hydro = pipeline.set_index("structure_id").loc["hydro-000"]
    assert hydro["pressure_GPa"] > 0 and hydro["stress_xx_GPa"] < 0
    assert (work / target).is_file()
    # relaxed-ion DFT elastic constants through VASP's fixed-cell rule: one-atom fcc cells have
    # no internal strain, so every relaxation is the clamped-ion label and the tensors agree
    relax_dirs = sorted((work / "results" / "validate" / "dft" / "relax").iterdir())
    assert len(relax_dirs) == 12 and all((d / "INCAR").is_file() for d in relax_dirs)
    clamped, relaxed = (json.loads((work / e).read_text()) for e in elastic)
    assert relaxed["protocol"] == "relaxed_ion" and clamped["protocol"] == "clamped_ion"
    np.testing.assert_allclose(relaxed["C_GPa"], clamped["C_GPa"], atol=1e-9)
    assert relaxed["cubic"]["C11"] > relaxed["cubic"]["C12"] > 0
    rerun = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "-n", target, *elastic],
        cwd=work, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert "Nothing to be done" in rerun.stdout + rerun.stderr


# ---- relaxed-ion elastic constants: the ionic relaxation in a fixed strained cell (ISIF 2)

FMAX = 0.002  # eV/Å


def sheared_hcp_cu():
    """hcp Cu (EMT) under an engineering xy shear of 0.02 (eps_xy = 1 %): its two atoms are not
    inversion centres, so the shear pushes them off their clamped positions (internal strain)."""
    atoms = apply_voigt_strain(bulk("Cu", "hcp", a=2.56, c=4.18), np.array([0, 0, 0, 0, 0, 0.02]))
    atoms.info.update(structure_id="elastic-e6p", config_type="elastic")
    return atoms


def _fixed_cell_relax(tmp_path, monkeypatch, max_steps):
    from dft2mlip.dft.engines import get_engine

    monkeypatch.setenv(STANDIN_ENV, "1")
    engine = get_engine("vasp")
    settings = engine.settings(TINY_VASP)
    atoms = sheared_hcp_cu()
    settings_hash = engine.write_fixed_cell_relax(
        atoms, settings, tmp_path, fmax_eV_per_A=FMAX, max_steps=max_steps
    )
    run_input("vasp", tmp_path, executable=STANDIN_CMD, nprocs=1, mpi_launcher="")
    label = engine.parse_fixed_cell_relax(
        tmp_path, atoms, settings_hash, settings=settings, fmax_eV_per_A=FMAX,
        max_steps=max_steps,
    )  # fmt: skip
    return atoms, settings_hash, label


def test_vasp_fixed_cell_relaxation_relaxes_the_ions_only(tmp_path, monkeypatch):
    from pymatgen.io.vasp import Incar

    atoms, settings_hash, label = _fixed_cell_relax(tmp_path, monkeypatch, max_steps=60)
    incar = Incar.from_file(tmp_path / "INCAR")
    assert (incar["IBRION"], incar["ISIF"], incar["NSW"]) == (2, 2, 60)
    assert incar["EDIFFG"] == pytest.approx(-FMAX)
    # the single point's physics and mesh: the same settings hash as a clamped-ion label
    single = tmp_path / "single"
    assert write_input("vasp", TINY_VASP, atoms, single, single / "settings.json")[
        "settings_hash"
    ] == settings_hash  # fmt: skip
    assert (single / "KPOINTS").read_text() == (tmp_path / "KPOINTS").read_text()
    assert label.status == "ok", label.message
    assert label.atoms.info["relax_ionic_steps"] >= 1
    # fixed cell, moved atoms
    np.testing.assert_allclose(label.atoms.cell.array, atoms.cell.array, atol=1e-6)
    assert np.linalg.norm(label.atoms.positions - atoms.positions, axis=1).max() > 1e-3
    # EMT, computed here: the clamped cell has forces, the label's positions are relaxed and its
    # stress is EMT's there (tension positive, eV/Å³), lower than clamped in the sheared component
    clamped = emt_reference(atoms)
    assert np.linalg.norm(clamped[1], axis=1).max() > 10 * FMAX
    energy, forces, stress = emt_reference(label.atoms)
    assert np.linalg.norm(forces, axis=1).max() <= 1.05 * FMAX
    np.testing.assert_allclose(label.stress, stress, atol=2e-6)
    assert label.energy == pytest.approx(energy, abs=1e-3) and energy < clamped[0]
    assert 0 < stress[5] < clamped[2][5]


def test_vasp_fixed_cell_relaxation_cut_off_by_nsw_fails_naming_the_key(tmp_path, monkeypatch):
    _, _, label = _fixed_cell_relax(tmp_path, monkeypatch, max_steps=1)
    assert label.status == "failed"
    assert "validation.elastic.relax_max_steps" in label.message


@pytest.mark.parametrize("moments", [{}, {"Al": 1.5}], ids=["ISPIN1", "ISPIN2"])
def test_standin_prints_the_real_outcar_text_of_its_spin_setting(tmp_path, moments):
    """The stand-in's OUTCAR is made of a real OUTCAR of the same ISPIN (VASP 6.2.1 without
    spin: "magnetization" with no value; VASP 5.3.3 with spin: the value), so the pipeline's own
    VASP path meets VASP's text: both import with EMT's numbers and the right moment. ISPIN 1
    reads the committed stand-in output (tests/data/vasp, the same input); ISPIN 2 runs it."""
    import re

    from dft2mlip.dft.importing import import_source

    real = Path(__file__).parent / "data" / "realdata" / "vasp"
    atoms = compressed_al()
    settings = VaspSettings.from_config({**TINY_VASP, "magnetic_moments_muB": moments})
    ispin = settings.ispin
    if ispin == 1:
        for name in ("OUTCAR", "vasprun.xml"):
            shutil.copy(DATA / name, tmp_path / name)
    else:
        write_vasp_input(atoms, settings, tmp_path)
        run_standin(tmp_path)
    template = (real / ("nonspin_v621" if ispin == 1 else "outcar_example_1") / "OUTCAR")
    text, template = (tmp_path / "OUTCAR").read_text(), template.read_text()
    count = r"^ number of electron\s+\S+ magnetization(.*)$"
    ours, theirs = re.findall(count, text, re.M), re.findall(count, template, re.M)
    assert ours and theirs and len({bool(v.strip()) for v in ours + theirs}) == 1

    def parameter_keys(outcar: str) -> list[str]:
        section = outcar.split(" Startparameter for this run:")[1].split("Write flags")[0]
        return re.findall(r"^\s+([A-Z][A-Z_]+)\s*=", section, re.M)

    assert parameter_keys(text) == parameter_keys(template)  # the real file's section
    assert re.search(rf"ISPIN\s*=\s*{ispin}\b", text)
    energy, forces, stress = emt_reference(atoms)
    for files in (("OUTCAR",), ("OUTCAR", "vasprun.xml")):
        run = tmp_path / f"run{len(files)}"
        run.mkdir()
        for name in files:
            shutil.copy(tmp_path / name, run / name)
        (label,) = import_source({"name": "s", "path": str(run), "format": "vasp"})
        assert label.status == "ok", label.message
        assert label.energy == pytest.approx(energy, abs=1e-7)
        assert np.allclose(label.forces, forces, atol=2e-6)
        assert np.allclose(label.stress, stress, atol=2e-5 / EV_PER_A3_TO_GPA)
        assert label.provenance["settings"]["ISPIN"] == ispin
        moment = label.provenance.get("total_magnetization_muB")
        assert moment == (pytest.approx(1.5 * len(atoms)) if ispin == 2 else None)
