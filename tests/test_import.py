"""Importing existing data: external extxyz (REF_* keys or ASE calculator results) and finished
VASP (stand-in output) / QE (committed real pw.x output) run directories, with the dataset's
checks: convergence, units, duplicates, settings hash; provenance columns in the table."""

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from conftest import fixture_structure

from dft2mlip.data import build_dataset, read_labels, write_label, write_labels
from dft2mlip.dft.importing import (
    check_import_sources,
    import_settings_hashes,
    import_source,
)
from dft2mlip.dft.qe import parse_pw_output
from dft2mlip.dft.vasp import VaspSettings, write_vasp_input
from dft2mlip.units import EV_PER_A3_TO_GPA

STANDIN = Path(__file__).parent / "vasp_standin" / "vasp_std"
QE_OUT = Path(__file__).parent / "data" / "qe" / "si2_scf.pwo"
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


@pytest.fixture(autouse=True)
def no_potcars(monkeypatch):
    from pymatgen.core import SETTINGS

    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.delitem(SETTINGS, "PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.delenv("VASP_STANDIN_SCF_STEPS", raising=False)


def emt_frames(n=4, seed=0):
    """Al cells with EMT results (free_energy = energy for EMT), strained and rattled."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk("Al", "fcc", a=4.05 * (1 + rng.uniform(-0.02, 0.02))).repeat((2, 1, 1))
        atoms.rattle(0.05, seed=int(rng.integers(1000)))
        atoms.calc = EMT()
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        atoms.calc = SinglePointCalculator(
            atoms, energy=e + 0.01, free_energy=e, forces=f, stress=s
        )
        frames.append(atoms)
    return frames


def test_extxyz_with_calculator_results_uses_free_energy_and_checks_units(tmp_path):
    frames = emt_frames()
    path = tmp_path / "ext.extxyz"
    ase.io.write(path, frames, format="extxyz")
    labels = import_source({"name": "ext", "path": str(path), "format": "extxyz"})
    assert [lab.status for lab in labels] == ["ok"] * 4
    first = labels[0]
    assert first.structure_id == "ext__00000" and first.config_type == "imported"
    assert first.energy == pytest.approx(frames[0].calc.results["free_energy"])
    assert first.energy_kind == "free_energy"
    assert np.allclose(first.stress, frames[0].calc.results["stress"])
    assert first.provenance["import"]["source"] == "ext"
    # round trip through the multi-label file
    write_labels(labels, tmp_path / "imported.extxyz")
    back = read_labels(tmp_path / "imported.extxyz")
    assert [b.structure_id for b in back] == [lab.structure_id for lab in labels]
    assert np.allclose(back[2].forces, labels[2].forces)


def test_extxyz_with_ref_keys_and_bad_units_or_missing_data(tmp_path):
    frames = emt_frames(3, seed=1)
    ref = []
    for i, atoms in enumerate(frames):
        a = atoms.copy()
        res = atoms.calc.results
        a.info.update(REF_energy=res["free_energy"], REF_stress=res["stress"], config_type="md")
        a.arrays["REF_forces"] = res["forces"]
        if i == 1:
            a.info["REF_stress"] = res["stress"] * EV_PER_A3_TO_GPA * 1000  # MPa-ish, not eV/Å³
        if i == 2:
            del a.info["REF_stress"]
        ref.append(a)
    path = tmp_path / "ref.extxyz"
    ase.io.write(path, ref, format="extxyz")
    labels = import_source({"name": "r", "path": str(path), "format": "extxyz"})
    assert labels[0].status == "ok" and labels[0].config_type == "md"
    assert labels[1].status == "failed" and "eV/Å³" in labels[1].message
    assert labels[2].status == "failed" and "stress" in labels[2].message


def test_vasp_run_directories_through_the_same_parser(tmp_path):
    settings = VaspSettings.from_config({"encut_eV": 400.0, "kspacing_per_A": 0.3})
    frames = emt_frames(2, seed=2)
    for i, atoms in enumerate(frames):
        run = tmp_path / "runs" / f"run{i}"
        atoms.calc = None
        write_vasp_input(atoms, settings, run)
        env = {**os.environ, "VASP_STANDIN_SCF_STEPS": "300" if i == 1 else "6"}
        subprocess.run([sys.executable, str(STANDIN)], cwd=run, check=True, env=env,
                       capture_output=True)  # fmt: skip
    source = {"name": "old", "path": str(tmp_path / "runs" / "*"), "format": "vasp"}
    check_import_sources([source])
    labels = import_source(source)
    assert [lab.structure_id for lab in labels] == ["old__run0", "old__run1"]
    assert labels[0].status == "ok"
    assert labels[1].status == "scf_not_converged"  # NELM 200 < 300 steps needed
    ref = frames[0].copy()
    ref.calc = EMT()
    assert labels[0].energy == pytest.approx(ref.get_potential_energy(), abs=1e-7)
    assert np.allclose(labels[0].stress, ref.get_stress(), atol=1e-7)
    assert labels[0].settings_hash.startswith("import-")
    assert labels[0].settings_hash == labels[1].settings_hash  # same INCAR, POTCARs, k-mesh
    assert labels[0].provenance["settings"]["ENCUT"] == 400.0
    files = [str(tmp_path / "runs" / run / name) for run in ("run0", "run1")
             for name in ("vasprun.xml", "OUTCAR")]  # fmt: skip
    assert import_settings_hashes(source) == {labels[0].settings_hash: files}


def test_qe_run_directory_matches_the_pipeline_parser(tmp_path):
    run = tmp_path / "qe_runs" / "si"
    run.mkdir(parents=True)
    shutil.copy(QE_OUT, run / "pw.out")
    labels = import_source({"name": "q", "path": str(tmp_path / "qe_runs" / "*"), "format": "qe"})
    assert len(labels) == 1 and labels[0].status == "ok"
    direct = parse_pw_output(QE_OUT, fixture_structure(), "h")
    assert labels[0].energy == pytest.approx(direct.energy)
    assert np.allclose(labels[0].stress, direct.stress)
    assert labels[0].provenance["pseudopotentials"]["Si"]["md5"]


def test_config_check_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match="nothing|no extxyz data"):
        check_import_sources(
            [{"name": "x", "path": str(tmp_path / "nope*.xyz"), "format": "extxyz"}]
        )
    (tmp_path / "a.xyz").write_text("")
    with pytest.raises(ValueError, match="used twice"):
        check_import_sources([{"name": "x", "path": "a", "format": "extxyz"}] * 2)
    (tmp_path / "a.extxyz").write_text("")
    bad = {"name": "x", "path": str(tmp_path / "a.extxyz"), "format": "qe", "frames": "first"}
    with pytest.raises(ValueError, match="frames must be one of"):
        check_import_sources([bad])
    with pytest.raises(ValueError, match="frames must be one of"):
        import_source(bad)


def pipeline_labels(tmp_path, n=4):
    """Pipeline-style labels (settings hash 'pipeline00001') from EMT Al frames."""
    from dft2mlip.data import Label

    paths = []
    for i, atoms in enumerate(emt_frames(n, seed=10)):
        res = atoms.calc.results
        a = atoms.copy()
        a.calc = None
        a.info.update(REF_energy=res["free_energy"], REF_stress=res["stress"])
        a.arrays["REF_forces"] = res["forces"]
        label = Label(f"strain-{i:03d}", "strained", "ok", "", a,
                      provenance={"engine": "qe", "code_version": "6.7MaX",
                                  "pseudopotentials": {"Al": {"file": "Al.UPF", "md5": "abc"}},
                                  "run": {"corrections": [{"handler": "PwScfHandler",
                                                           "errors": ["scf_not_converged"]}]},
                                  "parser": "dft2mlip 0.1.0"},
                      settings_hash="pipeline0001", dft_engine="qe")  # fmt: skip
        path = tmp_path / "labels" / f"{label.structure_id}.extxyz"
        write_label(label, path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("policy", ["warn", "exclude", "error"])
def test_dataset_with_imports_duplicates_and_settings_policy(tmp_path, policy, caplog):
    paths = pipeline_labels(tmp_path)
    # the import repeats one pipeline structure and adds two new ones
    duplicate = ase.io.read(paths[1])
    new = emt_frames(2, seed=77)
    ext = tmp_path / "ext.extxyz"
    dup = duplicate.copy()
    dup.calc = SinglePointCalculator(dup, energy=duplicate.info["REF_energy"],
                                     forces=duplicate.arrays["REF_forces"],
                                     stress=duplicate.info["REF_stress"])  # fmt: skip
    ase.io.write(ext, [dup, *new], format="extxyz")
    source = {"name": "ext", "path": str(ext), "format": "extxyz", "on_settings_mismatch": policy}
    write_labels(import_source(source), tmp_path / "import.extxyz")
    out = tmp_path / "dataset"
    if policy == "error":
        with pytest.raises(ValueError, match="on_settings_mismatch"):
            build_dataset(paths, FRACTIONS, 1, out, imported_paths=[tmp_path / "import.extxyz"])
        return
    with caplog.at_level(logging.WARNING):
        table = build_dataset(paths, FRACTIONS, 1, out, imported_paths=[tmp_path / "import.extxyz"])
    table = table.set_index("structure_id")
    assert "duplicate of strain-001" in table.loc["ext__00000", "excluded_reason"]
    assert table.loc["ext__00000", "split"] == "excluded"
    new_ids = ["ext__00001", "ext__00002"]
    in_splits = set(table.loc[new_ids, "split"]) - {"excluded"}
    assert bool(in_splits) == (policy == "warn")
    assert "differs from the pipeline's" in caplog.text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings_hash"] == "pipeline0001"
    assert summary["imported"]["n_labels"] == 3
    # provenance columns
    row = table.loc["strain-000"]
    assert row["code_version"] == "6.7MaX" and "Al:Al.UPF:md5=abc" in row["pseudopotentials"]
    assert row["n_corrections"] == 1 and "PwScfHandler" in row["corrections"]
    assert row["source"] == "pipeline" and table.loc["ext__00001", "source"] == "ext"
    train = ase.io.read(out / "train.extxyz", index=":")
    assert all("REF_stress" in a.info for a in train)
    back = pd.read_parquet(out / "labels.parquet")
    assert len(back) == 4 + 3


def _broken_invariant(label, where: str) -> str | None:
    """Why ``label`` breaks the import invariant: an ok label with all of atoms, forces (N, 3),
    stress (6) and energy finite and consistent, or a non-ok one with a one-line cause."""
    if label.status != "ok":
        message = label.message.strip()
        return None if message and "\n" not in message else f"{where}: cause {message!r}"
    n = len(label.atoms)
    volume = abs(np.linalg.det(label.atoms.cell[:]))
    fine = (n > 0 and label.forces.shape == (n, 3) and label.stress.shape == (6,)
            and np.isfinite(label.energy) and np.isfinite(label.forces).all()
            and np.isfinite(label.stress).all() and volume > 1e-6
            and np.isfinite(label.atoms.positions).all())  # fmt: skip
    return None if fine else f"{where}: ok label with {n} atoms, forces {label.forces.shape}"


def test_any_output_gives_a_consistent_ok_label_or_a_one_line_cause(tmp_path):
    """Every QE/VASP output of tests/data whole, cut at 10/50/90/99 %, with 20 lines removed
    and with a number turned into NaN or text (tests/import_variants.py), through the import
    and the pipeline's own parsers: never an exception, never an empty or inconsistent ok."""
    from import_variants import damaged_variants

    from dft2mlip.dft.vasp import parse_vasp_output

    broken, statuses, reference = [], {}, {}
    for fmt, name, variant, path in damaged_variants(tmp_path):
        where = f"{name} ({variant})"
        try:
            labels = import_source({"name": "r", "path": str(path), "format": fmt})
            structure = reference.setdefault(name, labels[-1].atoms.copy())
            parse = parse_pw_output if fmt == "qe" else parse_vasp_output
            labels.append(parse(path, structure, "h"))
        except Exception as err:  # the invariant: no exception reaches the caller
            broken.append(f"{where}: {type(err).__name__}: {err}")
            continue
        broken += [why for label in labels if (why := _broken_invariant(label, where))]
        statuses[(fmt, name, variant)] = [label.status for label in labels]
    assert not broken, broken
    # a pw.x output cut anywhere lost its "JOB DONE": none of its cut copies is ok
    cuts = [s for (fmt, _, variant), s in statuses.items() if fmt == "qe" and "cut" in variant]
    assert cuts and all("ok" not in s for s in cuts)
    assert any("ok" in s for s in statuses.values())
