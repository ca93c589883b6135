"""The cross-family consistency check (dft2mlip.validate.families): the same perfect crystal in
the primitive and the conventional cell, each with its family's k-point mesh.

Expected values: closed forms worked out here, and one real pw.x pair at tiny settings whose
offset is read from the text of pw.x's own outputs (the "!" total-energy lines)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms

from dft2mlip.units import EV_PER_A3_TO_GPA
from dft2mlip.validate.families import (
    family_cells,
    family_offsets,
    family_structure_ids,
    write_family_offsets,
)

ROOT = Path(__file__).resolve().parents[1]
RY_EV = 13.605693122994  # CODATA 2018, as pw.x 6.7 prints its "!" line in Ry
SI = {"name": "Si", "prototype": "diamond", "elements": ["Si"], "lattice_constant_A": 5.431}


def labelled(n: int, energy_per_atom: float, stress_GPa=(0.0,) * 6) -> Atoms:
    atoms = Atoms(f"Si{n}", cell=np.eye(3) * 5.0, pbc=True)
    atoms.info["REF_energy"] = energy_per_atom * n
    atoms.info["REF_stress"] = np.asarray(stress_GPa) / EV_PER_A3_TO_GPA
    return atoms


def test_offsets_per_atom_against_the_tolerances():
    # conventional 9.2 meV/atom lower and 0.045 GPa more compressive in xx than primitive
    prim = labelled(2, -139.0290)
    conv = labelled(8, -139.0382, (-0.045, 0, 0, 0, 0, 0))
    out = family_offsets([prim, conv], ["ok", "ok"], energy_tol_meV=1.0, stress_tol_GPa=0.1)
    assert out["offsets"]["conventional"]["energy_meV_per_atom"] == pytest.approx(-9.2, abs=1e-6)
    assert out["offsets"]["conventional"]["stress_GPa"] == pytest.approx(0.045)
    assert out["consistent"] is False
    assert "conventional cells -9.20 meV/atom (tolerance 1)" in out["verdict"]
    assert "GPa in stress" not in out["verdict"]  # 0.045 GPa is within 0.1
    # within both tolerances
    close = labelled(8, -139.0295, (0.02, 0.02, 0.02, 0, 0, 0))
    ok = family_offsets([prim, close], ["ok", "ok"], energy_tol_meV=1.0, stress_tol_GPa=0.1)
    assert ok["consistent"] is True and ok["verdict"].startswith("consistent")
    # a failed label: no verdict made up
    failed = family_offsets([prim, conv], ["ok", "failed"], 1.0, 0.1)
    assert failed["consistent"] is None and "conventional label failed" in failed["verdict"]


def test_the_check_needs_two_different_cells():
    assert family_structure_ids(SI) == ["family-primitive", "family-conventional"]
    polonium = {"name": "Po", "prototype": "sc", "elements": ["Po"], "lattice_constant_A": 3.35}
    assert family_structure_ids(polonium) == []  # simple cubic: one cell, one family


def test_family_cells_are_the_perfect_reference_crystal():
    reference = family_cells(SI, None)[0].copy()
    reference.set_cell(reference.cell * 1.01, scale_atoms=True)  # a "relaxed" cell, 1 % larger
    prim, conv = family_cells(SI, reference)
    assert (len(prim), len(conv)) == (2, 8)
    assert conv.get_volume() / 8 == pytest.approx(prim.get_volume() / 2)
    assert prim.get_volume() == pytest.approx(reference.get_volume())
    assert conv.cell.lengths() == pytest.approx([5.431 * 1.01] * 3)


@pytest.mark.skipif(shutil.which("pw.x") is None or not Path("/usr/share/espresso/pseudo").is_dir(),
                    reason="pw.x and Debian's pseudopotentials")  # fmt: skip
def test_real_pw_pair_offset_matches_the_outputs_text(tmp_path):
    """Both cells through the pipeline's own writer, runner and parser at tiny settings (a few
    seconds); the JSON's offset equals the one computed from pw.x's "!" lines."""
    from dft2mlip.data import write_label
    from dft2mlip.dft.engines import get_engine
    from dft2mlip.dft.labels import parse_run, run_input, write_input

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["dft"]
    cfg["qe"].update(ecutwfc_Ry=14.0, ecutrho_Ry=112.0, kspacing_per_A=0.5, conv_thr_Ry=1e-8)
    physics = get_engine("qe").physics_config(cfg)
    paths, per_atom = [], []
    for atoms in family_cells(SI, None):
        work = tmp_path / atoms.info["structure_id"]
        work.mkdir()
        write_input("qe", physics, atoms, work, work / "settings.json")
        run = run_input("qe", work, executable="pw.x", nprocs=1, mpi_launcher="")
        label = parse_run("qe", physics, work, atoms, work / "settings.json", run)
        assert label.status == "ok", label.message
        write_label(label, work / "label.extxyz")
        paths.append(str(work / "label.extxyz"))
        ry = float(re.findall(r"^!\s+total energy\s+=\s+(\S+) Ry", (work / "pw.out").read_text(),
                              re.M)[-1])  # fmt: skip
        per_atom.append(ry * RY_EV / len(atoms))
    out = write_family_offsets(paths, 1.0, 0.1, tmp_path / "offsets.json")
    expected = 1e3 * (per_atom[1] - per_atom[0])
    offset = out["offsets"]["conventional"]["energy_meV_per_atom"]
    assert offset == pytest.approx(expected, abs=0.05)
    assert (tmp_path / "offsets.json").is_file()
