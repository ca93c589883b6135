"""Convergence study: grid, settings per point, selection logic, a real pw.x study, and its place
in the DAG (the chosen settings feed every DFT input; off by default)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import SI_MATERIAL, TINY_QE

from dft2mlip.dft.convergence import (
    ConvergenceSpec,
    apply_chosen,
    plot_study,
    point_errors,
    reference_structures,
    run_point,
    select_settings,
    settings_at,
)
from dft2mlip.dft.labels import engine_settings
from dft2mlip.units import EV_PER_A3_TO_GPA

ROOT = Path(__file__).resolve().parents[1]


def test_spec_grid_reference_and_validation():
    spec = ConvergenceSpec(cutoffs=[40, 30], kspacings_per_A=[0.25, 0.5])
    assert [p for p, _, _ in spec.points()] == ["c30_k0.5", "c30_k0.25", "c40_k0.5", "c40_k0.25"]
    assert spec.reference_id() == "c40_k0.25"
    defaults = ConvergenceSpec()
    assert defaults.energy_tol_meV_per_atom <= 1.0
    assert defaults.force_tol_meV_per_A <= 10.0 and defaults.stress_tol_GPa <= 0.1
    for bad in ({"cutoffs": [30, 30]}, {"kspacings_per_A": [-0.1]}, {"stress_tol_GPa": 0}):
        with pytest.raises(ValueError, match="dft.convergence"):
            ConvergenceSpec(**bad)


def test_settings_at_keeps_ecutrho_ratio_and_apply_chosen(tmp_path):
    qe = settings_at("qe", TINY_QE, 40.0, 0.3)
    assert qe["ecutwfc_Ry"] == 40.0 and qe["ecutrho_Ry"] == 320.0 and qe["kspacing_per_A"] == 0.3
    assert qe["conv_thr_Ry"] == TINY_QE["conv_thr_Ry"] and qe["smearing"] == TINY_QE["smearing"]
    vasp = settings_at("vasp", {"encut_eV": 520.0}, 600.0, 0.2)
    assert vasp == {"encut_eV": 600.0, "kspacing_per_A": 0.2}
    chosen = tmp_path / "chosen.json"
    chosen.write_text(json.dumps({"engine": "qe", "cutoff": 25.0, "kspacing_per_A": 0.5}))
    applied = apply_chosen("qe", TINY_QE, chosen)
    assert applied["ecutwfc_Ry"] == 25.0 and applied["kspacing_per_A"] == 0.5
    assert apply_chosen("qe", TINY_QE, None) == TINY_QE
    with pytest.raises(ValueError, match="engine"):
        apply_chosen("vasp", {}, chosen)


def test_reference_structures_are_strained_rattled_and_seeded():
    a = reference_structures(SI_MATERIAL, 3, 0.01, 0.03)
    b = reference_structures(SI_MATERIAL, 3, 0.01, 0.03)
    assert np.allclose(a["A"].positions, b["A"].positions)
    assert np.allclose(np.abs(a["A"].info["voigt_strain"]), 0.01)
    assert not np.allclose(a["A"].cell, a["B"].cell)
    assert len(a["A"]) == len(a["B"]) == 2


@pytest.mark.parametrize(
    ("prototype", "a0", "n_atoms"), [("fcc", 3.6, 4), ("bcc", 2.9, 2), ("sc", 2.5, 2)]
)
def test_one_atom_cells_are_studied_in_a_cell_whose_rattling_gives_forces(prototype, a0, n_atoms):
    """A lone atom in its primitive cell only translates when displaced (zero forces by
    symmetry): the study takes the conventional cell (fcc 4, bcc 2 atoms), or 2 x sc."""
    material = {"prototype": prototype, "elements": ["Cu"], "lattice_constant_A": a0}
    pair = reference_structures(material, 3, 0.01, 0.03)
    assert len(pair["A"]) == len(pair["B"]) == n_atoms
    shift = pair["A"].get_scaled_positions(wrap=False) - pair["B"].get_scaled_positions()
    relative = shift - shift[0]  # a rigid translation would leave every row zero
    assert np.abs(relative).max() > 1e-3
    assert np.allclose(pair["B"].cell.cellpar()[3:], 90.0)  # the cubic cell


def synthetic(spec, converged_from):
    """Results where every point at cutoff >= c0 and spacing <= k0 equals the reference exactly
    and every other point is off by 10x each tolerance: the expected choice is, by construction,
    the cheapest point of the converged block."""
    c0, k0 = converged_from
    ref_e = {"A": -10.0, "B": -10.2}
    results = {}
    for pid, cutoff, spacing in spec.points():
        off = 0.0 if (cutoff >= c0 and spacing <= k0) else 1.0
        structures = {}
        for name in ("A", "B"):
            structures[name] = {
                "status": "ok",
                "message": "",
                "n_atoms": 2,
                "n_kpoints": int(round((1 / spacing) ** 3)),
                "wall_time_s": 1.0,
                "energy_eV": ref_e[name] + off * (0.02 if name == "A" else 0.0),
                "forces_eV_per_A": (np.full((2, 3), 0.1) + off * 0.1).tolist(),
                "stress_eV_per_A3": (np.full(6, 0.01) + off * 1.0 / EV_PER_A3_TO_GPA).tolist(),
            }
        results[pid] = {"engine": "qe", "structures": structures}
    return results


def test_selection_picks_the_cheapest_converged_point_by_construction():
    spec = ConvergenceSpec(cutoffs=[20, 30, 40, 50], kspacings_per_A=[0.5, 0.35, 0.25, 0.2])
    table, chosen = select_settings(synthetic(spec, (30, 0.35)), spec, "qe")
    assert (chosen["cutoff"], chosen["kspacing_per_A"]) == (30.0, 0.35)
    assert chosen["warning"] is None and table["chosen"].sum() == 1
    assert set(table[table["within_tolerance"]]["point"]) == {
        p for p, c, k in spec.points() if c >= 30 and k <= 0.35
    }
    assert list(table.columns)[:2] == ["cutoff", "kspacing_per_A"]


def test_selection_skips_failed_points_and_warns_when_only_the_reference_passes():
    spec = ConvergenceSpec(cutoffs=[20, 30], kspacings_per_A=[0.5, 0.25])
    results = synthetic(spec, (20, 0.5))  # everything converged ...
    results["c20_k0.5"]["structures"]["A"]["status"] = "failed"  # ... but the cheapest failed
    _, chosen = select_settings(results, spec, "qe")
    assert chosen["point"] != "c20_k0.5"
    only_ref = synthetic(spec, (30, 0.25))
    _, chosen = select_settings(only_ref, spec, "qe")
    assert chosen["point"] == spec.reference_id() and "extend" in chosen["warning"]
    only_ref[spec.reference_id()]["structures"]["B"]["status"] = "failed"
    with pytest.raises(ValueError, match="reference point"):
        select_settings(only_ref, spec, "qe")


@pytest.mark.slow
def test_real_pw_study_picks_the_cheapest_point_within_tolerance(tmp_path, pw_x, tiny_qe_settings):
    """2-atom Si at toy cutoffs: the k-point mesh dominates (DESIGN.md), so the coarse mesh is
    rejected on forces/stress while a lower cutoff passes on the finer mesh."""
    spec = ConvergenceSpec(
        enabled=True,
        cutoffs=[16.0, 20.0, 24.0],
        kspacings_per_A=[0.9, 0.6],
        energy_tol_meV_per_atom=2.0,
        force_tol_meV_per_A=20.0,
        stress_tol_GPa=0.3,
    )
    structures = reference_structures(SI_MATERIAL, 1, spec.strain, spec.rattle_A)
    results = {
        pid: run_point(
            "qe",
            settings_at("qe", TINY_QE, c, k),
            structures,
            tmp_path / pid,
            run_kwargs={"mpi_launcher": ""},
        )  # fmt: skip
        for pid, c, k in spec.points()
    }
    table, chosen = select_settings(results, spec, "qe")
    plot_study(table, spec, tmp_path / "study.png")
    assert (tmp_path / "study.png").stat().st_size > 0
    assert (table["status"] == "ok").all()
    row = table[table["chosen"]].iloc[0]
    assert row["within_tolerance"]
    # every cheaper point violates at least one tolerance
    cheaper = table[table["cost"] < row["cost"]]
    for _, other in cheaper.iterrows():
        assert (
            other["energy_diff_err_meV_per_atom"] > spec.energy_tol_meV_per_atom
            or other["force_err_meV_per_A"] > spec.force_tol_meV_per_A
            or other["stress_err_GPa"] > spec.stress_tol_GPa
        ), other
    assert chosen["kspacing_per_A"] == 0.6  # the coarse mesh fails: k dominates
    assert chosen["point"] != spec.reference_id()
    # errors recomputed independently from the raw results
    ref = results[spec.reference_id()]
    errors = point_errors(results[chosen["point"]], ref)
    assert errors["stress_err_GPa"] == pytest.approx(chosen["errors"]["stress_err_GPa"])
    # tighter tolerances can only make the choice more expensive
    tight = ConvergenceSpec(**{**spec.__dict__, "stress_tol_GPa": 0.01, "force_tol_meV_per_A": 1.0})
    tight_table, _ = select_settings(results, tight, "qe")
    tight_row = tight_table[tight_table["chosen"]].iloc[0]
    assert tight_row["cost"] >= row["cost"]
    # and the chosen settings are what every label then uses
    chosen_path = tmp_path / "chosen.json"
    chosen_path.write_text(json.dumps(chosen))
    used = engine_settings("qe", TINY_QE, chosen_path)
    assert used.ecutwfc_Ry == chosen["cutoff"] and used.kspacing_per_A == 0.6
    assert used.ecutrho_Ry == chosen["cutoff"] * 8


@pytest.mark.slow
@pytest.mark.workflow
def test_study_in_the_dag_feeds_every_dft_input(tmp_path, pw_x, tiny_qe_settings):
    """Dry run: the study's jobs are in the DAG, upstream of the DFT inputs; real run: the label
    is computed with the chosen cutoff and k-spacing, and a rerun has nothing to do."""
    cfg = yaml.safe_load((ROOT / "tests" / "workflow" / "config_tiny.yaml").read_text())
    cfg["dft"]["convergence"] = {
        "enabled": True,
        "cutoffs": [16.0, 20.0],
        "kspacings_per_A": [0.9, 0.6],
        "energy_tol_meV_per_atom": 2.0,
        "force_tol_meV_per_A": 20.0,
        "stress_tol_GPa": 0.3,
    }
    for name in ("Snakefile", "workflow", "scripts", "envs", "profiles"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/dft/train/hydro-000/label.extxyz"

    def snakemake(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "2", *args, target],
            cwd=tmp_path, capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        return proc.stdout + proc.stderr

    out = snakemake("-n")
    counts = dict(
        (line.split()[0], int(line.split()[1]))
        for line in out.split("Job stats:")[1].split("\n\n")[0].splitlines()[2:]
        if len(line.split()) == 2 and line.split()[1].isdigit()
    )
    assert counts["convergence_point"] == 4 and counts["convergence_select"] == 1
    assert counts["dft_input"] == counts["dft_run"] == 1
    snakemake()
    results = tmp_path / "results"
    chosen = json.loads((results / "convergence" / "chosen_settings.json").read_text())
    table = pd.read_csv(results / "convergence" / "convergence.csv")
    assert len(table) == 4 and table["chosen"].sum() == 1
    assert (results / "convergence" / "convergence_study.png").stat().st_size > 0
    settings = json.loads((results / "dft" / "train" / "hydro-000" / "settings.json").read_text())
    assert settings["physics"]["ecutwfc_Ry"] == chosen["cutoff"]
    assert settings["physics"]["kspacing_per_A"] == chosen["kspacing_per_A"]
    assert settings["convergence_choice"]["point"] == chosen["point"]
    assert "Nothing to be done" in snakemake("-n")


def test_table_round_trips_through_csv(tmp_path):
    spec = ConvergenceSpec(cutoffs=[20, 30], kspacings_per_A=[0.5, 0.25])
    table, _ = select_settings(synthetic(spec, (20, 0.25)), spec, "qe")
    table.to_csv(tmp_path / "convergence.csv", index=False)
    back = pd.read_csv(tmp_path / "convergence.csv")
    assert back["chosen"].sum() == 1 and back.columns[0] == "cutoff"
