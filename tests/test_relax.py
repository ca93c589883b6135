"""The DFT-relaxed reference cell (material.relax): real pw.x vc-relax of diamond Si, the VASP
stand-in's relaxation, the structures built on the relaxed cell, and the dry-run DAG.

Expected values come from outside the code under test: the pressure pw.x itself prints in its
output text, and the band of published PBE lattice constants of diamond Si, 5.46-5.48 Å
(all-electron and pseudopotential PBE results in the literature, e.g. Materials Project mp-149).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk

from dft2mlip.dft.relax import (
    RelaxThresholds,
    read_reference,
    relax_reference,
    write_relax_input,
)
from dft2mlip.structures import (
    conventional_cell,
    elastic_structures,
    kpoint_reference_cell,
    training_structures,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SERIAL = {"executable": "pw.x", "mpi_launcher": "", "max_errors": 3, "walltime_s": None}
#: Si with the default settings (30 Ry / 240 Ry, k-spacing 0.35/Å -> 6x6x6) relaxes to 5.4676 Å.
#: The low cutoff (the file suggests 44 Ry) and the mesh barely move it, measured with the same
#: code path (relax_reference, serial pw.x 6.7): 44/352 Ry, 6³: 5.4685 Å; 60/480 Ry, 11³:
#: 5.4676 Å, i.e. <= 1 mÅ. So the test checks the published PBE band 5.46-5.48 Å itself.
PBE_A_SI = 5.47
A_TOLERANCE = 0.01

needs_pw = pytest.mark.skipif(shutil.which("pw.x") is None, reason="pw.x not installed")


def _si_material(a: float) -> dict:
    return {**CONFIG["material"], "lattice_constant_A": a}


@pytest.fixture(scope="module")
def si_relax(tmp_path_factory):
    """vc-relax of diamond Si from a = 5.431 Å * 0.99 (1 % compressed) at the default settings."""
    out = tmp_path_factory.mktemp("relax")
    material = _si_material(5.431 * 0.99)
    summary = relax_reference(
        "qe", CONFIG["dft"]["qe"], material, out / "relaxed.extxyz", out / "relax.json",
        run=SERIAL, nprocs=1,
    )  # fmt: skip
    return material, summary, out


@needs_pw
def test_vc_relax_input_has_the_dataset_settings_and_vc_relax(tmp_path):
    atoms = bulk("Si", "diamond", a=5.431)
    write_relax_input("qe", CONFIG["dft"]["qe"], atoms, tmp_path)
    text = " ".join(re.sub(r"\s*=\s*", " = ", (tmp_path / "pw.in").read_text()).split())
    for needle in ("calculation = 'vc-relax'", "cell_dofree = 'all'", "ion_dynamics = 'bfgs'",
                   "cell_dynamics = 'bfgs'", "press_conv_thr = 0.1", "ecutwfc = 30.0",
                   "ecutrho = 240.0", "degauss = 0.01", "6 6 6 0 0 0"):  # fmt: skip
        assert needle in text, needle


@needs_pw
def test_si_vc_relax_expands_to_pbe_lattice_constant_at_zero_pressure(si_relax):
    material, summary, out = si_relax
    assert summary["status"] == "ok", summary["message"]
    text = (out / "pw.out").read_text()
    # pw.x's own words: the pressure of its final SCF in the relaxed cell (kbar), from the text
    printed = [float(p) for p in re.findall(r"P=\s*(\S+)", text)]
    assert "Final scf calculation at the relaxed structure" in text
    assert printed[0] > 20.0  # the 1 % compressed start is under pressure (~ +4 GPa)
    assert abs(printed[-1]) < 3 * 10 * RelaxThresholds().pressure_GPa  # kbar, ~press_conv_thr
    assert summary["pressure_GPa"] == pytest.approx(printed[-1] / 10, abs=1e-3)
    # expanded: the conventional cubic a, from the relaxed cell
    a0 = summary["conventional"]["initial"]["a_A"]
    a = summary["conventional"]["final"]["a_A"]
    assert a0 == pytest.approx(5.431 * 0.99)
    assert a > a0 and summary["volume_change_percent"] > 3.0
    assert a == pytest.approx(PBE_A_SI, abs=A_TOLERANCE)
    assert summary["n_steps"] >= 1
    # the relaxed cell's own mesh (the families') is the one the relaxation used here
    assert summary["kpoint_mesh_relaxed_cell"] == summary["kpoint_mesh"] == [6, 6, 6]


@needs_pw
def test_structures_and_elastic_set_are_built_on_the_relaxed_cell(si_relax):
    material, summary, out = si_relax
    reference = read_reference(out / "relaxed.extxyz", out / "relax.json")
    assert reference.get_volume() == pytest.approx(summary["final"]["volume_A3"], rel=1e-6)
    for atoms in elastic_structures(material, 0.005, reference).values():
        assert np.allclose(kpoint_reference_cell(atoms), reference.cell.array)
        undeformed = atoms.cell.array @ np.linalg.inv(np.eye(3) + _eps(atoms))
        assert np.allclose(undeformed, reference.cell.array, atol=1e-9)
    train = training_structures(material, CONFIG["structures"], 1, reference)
    assert np.allclose(kpoint_reference_cell(train["hydro-000"]), reference.cell.array)
    cubic = conventional_cell(material, [1, 1, 1], reference)
    assert len(cubic) == 8
    assert np.allclose(cubic.cell.cellpar()[:3], summary["conventional"]["final"]["a_A"])
    assert np.allclose(kpoint_reference_cell(train["super-000"]), cubic.cell.array, atol=1e-9)


@needs_pw
def test_a_relaxation_that_runs_out_of_steps_fails_and_stops_the_structures(tmp_path):
    material = _si_material(5.431 * 0.99)
    summary = relax_reference(
        "qe", CONFIG["dft"]["qe"], material, tmp_path / "relaxed.extxyz", tmp_path / "relax.json",
        run=SERIAL, thresholds=RelaxThresholds(max_steps=1),
    )  # fmt: skip
    assert summary["status"] == "failed"
    assert "nstep = 1" in summary["message"] and "dft.relax.max_steps" in summary["message"]
    with pytest.raises(RuntimeError, match=r"relaxation of the reference cell failed.*nstep = 1"):
        read_reference(tmp_path / "relaxed.extxyz", tmp_path / "relax.json")


@needs_pw
def test_report_shows_relaxed_next_to_configured_and_the_residual_pressure(si_relax, tmp_path):
    from dft2mlip.dft.relax import reference_record
    from dft2mlip.report.write import write_report

    _, summary, out = si_relax
    record = reference_record(out / "relax.json", relax=True, new_dft=True)
    text = write_report(tmp_path / "r", dataset_table=None, runs={}, dft_elastic_json=None,
                        write_html=False, reference=record).read_text()  # fmt: skip
    a0, a = summary["conventional"]["initial"]["a_A"], summary["conventional"]["final"]["a_A"]
    assert f"| conventional a (Å) | {a0:.4f} | {a:.4f} | {100 * (a / a0 - 1):+.2f} % |" in text
    assert f"residual pressure of the final state: {summary['pressure_GPa']:.3g} GPa" in text
    assert f"ionic steps: {summary['n_steps']}" in text and "Status **ok**" in text
    for relax, new_dft, says in ((False, True, "material.relax is false"),
                                 (True, False, "dft.engine: none")):  # fmt: skip
        record = reference_record(None, relax=relax, new_dft=new_dft)
        text = write_report(tmp_path / says[:5], dataset_table=None, runs={},
                            dft_elastic_json=None, write_html=False,
                            reference=record).read_text()  # fmt: skip
        assert "**Not relaxed.**" in text and says in text


def _eps(atoms):
    from dft2mlip.structures import voigt_to_strain_tensor

    return voigt_to_strain_tensor(atoms.info["voigt_strain"])


def test_failed_relaxation_is_refused_with_its_cause(tmp_path):
    (tmp_path / "relax.json").write_text(json.dumps(
        {"status": "failed", "message": "pw.x vc-relax stopped after nstep = 60 ionic steps"}
    ))  # fmt: skip
    with pytest.raises(RuntimeError, match="nstep = 60.*material.relax: false"):
        read_reference(tmp_path / "relaxed.extxyz", tmp_path / "relax.json")


# ---- VASP stand-in (a genuine relaxation with ASE's BFGS, written in VASP's formats)

STANDIN = ROOT / "tests" / "vasp_standin" / "vasp_std"


@pytest.fixture
def no_potcars(monkeypatch):
    from pymatgen.core import SETTINGS

    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.delitem(SETTINGS, "PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.setenv("DFT2MLIP_VASP_STANDIN", "1")


def test_vasp_relax_input_and_standin_relaxation(tmp_path, no_potcars):
    from ase.calculators.emt import EMT
    from pymatgen.io.vasp import Incar

    material = {"prototype": "fcc", "elements": ["Cu"], "lattice_constant_A": 3.50}
    vasp = {"executable": f"{sys.executable} {STANDIN}", "encut_eV": 400.0,
            "kspacing_per_A": 0.3}  # fmt: skip
    summary = relax_reference(
        "vasp", vasp, material, tmp_path / "relaxed.extxyz", tmp_path / "relax.json",
        run={**SERIAL, "executable": vasp["executable"]},
    )  # fmt: skip
    incar = Incar.from_file(tmp_path / "INCAR")
    assert (incar["IBRION"], incar["ISIF"], incar["NSW"]) == (2, 3, RelaxThresholds().max_steps)
    assert incar["EDIFFG"] < 0
    assert summary["status"] == "ok", summary["message"]
    assert summary["n_steps"] > 1
    # the final structure is the last ionic step of vasprun.xml, an EMT minimum: zero stress
    reference = read_reference(tmp_path / "relaxed.extxyz", tmp_path / "relax.json")
    assert reference.get_volume() > bulk("Cu", "fcc", a=3.50).get_volume()
    reference.calc = EMT()
    assert np.abs(reference.get_stress()).max() < 5e-4  # eV/Å³ (0.08 GPa)
    assert abs(summary["pressure_GPa"]) < 0.1


# ---- the DAG (snakemake -n)


def _planned(tmp_path, **material):
    from tiny_run import TINY, make_workdir, planned_jobs, snakemake

    workdir = make_workdir(tmp_path)
    cfg = yaml.safe_load(TINY.read_text())
    cfg["material"].update(material)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    return planned_jobs(snakemake(workdir, "-n").stdout)


def test_dry_run_has_the_relax_job_and_relax_false_removes_it(tmp_path):
    on = _planned(tmp_path / "on")
    assert on["relax_input"] == on["relax_reference"] == on["structures"] == 1
    off = _planned(tmp_path / "off", relax=False)
    assert not {"relax_input", "relax_reference"} & set(off) and off["structures"] == 1


# ---- sizing by width (structures.supercell.min_width_A, validation.md.min_width_A)


def _checked(mutate) -> dict:
    from dft2mlip.config import check_config, validate_config

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    mutate(cfg)
    validate_config(cfg)
    check_config(cfg)
    return cfg


@pytest.mark.parametrize("section", ["structures.supercell", "validation.md"])
def test_min_width_below_the_model_cutoff_is_refused_naming_the_key(section):
    from dft2mlip.config import ConfigError

    def narrow(cfg):
        part = cfg
        for key in section.split("."):
            part = part[key]
        part.pop("repeat", None)
        part["min_width_A"] = 3.0  # model.r_max_A is 4.5

    with pytest.raises(ConfigError, match=rf"'{section}\.min_width_A' = 3\.0 Å is below.*"
                                          r"model\.r_max_A = 4\.5"):  # fmt: skip
        _checked(narrow)


def test_repeat_and_min_width_together_are_refused():
    from dft2mlip.config import ConfigError

    def both(cfg):
        cfg["structures"]["supercell"].update(repeat=[1, 1, 1], min_width_A=9.0)

    with pytest.raises(ConfigError, match=r"supercell\.repeat.*supercell\.min_width_A.*both"):
        _checked(both)


def test_min_width_sizes_the_supercells_and_the_md_cell():
    from dft2mlip.validate.deform import DeformationSpec

    def wide(cfg):
        cfg["structures"]["supercell"].pop("repeat", None)
        cfg["structures"]["supercell"]["min_width_A"] = 9.0
        cfg["validation"]["md"].pop("repeat", None)
        cfg["validation"]["md"]["min_width_A"] = 9.0

    cfg = _checked(wide)
    # 9 Å over Si's 5.431 Å cubic cell: 2 repeats each way (8 atoms per cubic cell x 8 = 64)
    train = training_structures(cfg["material"], cfg["structures"], cfg["seed"])
    assert len(train["super-000"]) == 64
    spec = DeformationSpec.from_config(cfg["validation"]["md"])
    base = conventional_cell(cfg["material"], [1, 1, 1]).cell.array
    assert spec.sized(base).repeat == (2, 2, 2)
    # the default config is unchanged: 8-atom supercells
    default = _checked(lambda cfg: None)
    assert len(training_structures(default["material"], default["structures"], 1)["super-000"]) == 8


@pytest.mark.parametrize(
    ("prototype", "elements", "a"),
    [("diamond", ["Si"], 5.43), ("zincblende", ["Si", "C"], 4.36), ("fcc", ["Cu"], 3.61),
     ("bcc", ["Fe"], 2.87), ("rocksalt", ["Na", "Cl"], 5.64), ("hcp", ["Mg"], 3.21),
     ("wurtzite", ["Zn", "O"], 3.25), ("fluorite", ["Ca", "F", "F"], 5.46)],
)  # fmt: skip
def test_conventional_cell_of_a_relaxed_primitive_cell_is_the_same_crystal(prototype, elements, a):
    """The conventional cell built from a (here uniformly expanded) primitive reference is the
    prototype's conventional cell with the same expansion: same cell, same atoms up to order."""
    from dft2mlip.structures import primitive_cell

    material = {"prototype": prototype, "elements": elements, "lattice_constant_A": a}
    reference = primitive_cell(material)
    reference.set_cell(reference.cell.array * 1.01, scale_atoms=True)
    built = conventional_cell(material, [1, 1, 1], reference)
    expected = conventional_cell({**material, "lattice_constant_A": a * 1.01}, [1, 1, 1])
    assert np.allclose(built.cell.array, expected.cell.array, atol=1e-9)
    assert sorted(built.get_chemical_symbols()) == sorted(expected.get_chemical_symbols())
    # up to one rigid translation (ASE's hcp cells differ in origin), every atom of one sits on
    # an atom of the same species of the other (periodic images)
    assert any(_same_sites(built, expected, shift) for shift in
               built.get_scaled_positions() - expected.get_scaled_positions()[0])  # fmt: skip


def _same_sites(built, expected, shift) -> bool:
    for symbol, position in zip(expected.symbols, expected.get_scaled_positions(), strict=True):
        d = built.get_scaled_positions() - position - shift
        d -= np.rint(d)
        hits = np.linalg.norm(d @ built.cell.array, axis=1) < 1e-6
        if not (hits.any() and built.symbols[int(np.argmax(hits))] == symbol):
            return False
    return True
