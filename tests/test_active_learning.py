"""Active learning (dft2mlip.active): committee disagreement in closed form, score combination,
diverse and random selection, Spearman against scipy, the training set of a generation with a
failed label, a committee of two real trained MACE models (disagreement = true error when the
label is one member's prediction), config checks, and the static DAG of the generations.
"""

from __future__ import annotations

import json
import re

import ase.io
import numpy as np
import pandas as pd
import pytest
import yaml
from ase.build import bulk
from ase.stress import voigt_6_to_full_3x3_stress
from ase.units import GPa
from scipy.stats import spearmanr
from tiny_run import ROOT, make_workdir, planned_jobs, snakemake
from training_helpers import emt_frames

from dft2mlip import active
from dft2mlip.data import Label, write_label

# ---- scoring in closed form


def test_two_member_disagreement_is_half_the_difference():
    """Two members: the ddof-0 std of each quantity is half their difference."""
    n = 4
    rng = np.random.default_rng(0)
    f0 = rng.normal(size=(n, 3))
    kick = np.array([0.3, -0.4, 0.0])  # |kick| = 0.5 eV/Å on atom 2 only
    f1 = f0.copy()
    f1[2] += kick
    s0 = rng.normal(size=6) * 0.01
    ds = np.array([0.002, 0.0, -0.001, 0.0, 0.0015, 0.0])  # eV/Å³
    d = active.frame_disagreement(
        np.array([-10.0, -10.0 + 0.08]), np.array([f0, f1]), np.array([s0, s0 + ds]), n
    )
    assert d["d_energy_meV_per_atom"] == pytest.approx(1e3 * 0.08 / n / 2)
    assert d["d_forces_meV_per_A"] == pytest.approx(1e3 * 0.5 / 2)
    # the std of the full 3x3 tensors (off-diagonals twice), Frobenius norm, in GPa
    full = np.array([voigt_6_to_full_3x3_stress(s0), voigt_6_to_full_3x3_stress(s0 + ds)])
    assert d["d_stress_GPa"] == pytest.approx(np.linalg.norm(full.std(axis=0)) / GPa)


def test_identical_members_agree_exactly():
    f = np.ones((3, 2, 3))
    d = active.frame_disagreement(np.full(3, -5.0), f, np.zeros((3, 6)), 2)
    assert d == {"d_energy_meV_per_atom": 0.0, "d_forces_meV_per_A": 0.0, "d_stress_GPa": 0.0}


def _pool(e, f, s):
    return pd.DataFrame(
        {"d_energy_meV_per_atom": e, "d_forces_meV_per_A": f, "d_stress_GPa": s}, dtype=float
    )


def test_scores_are_the_max_or_sum_of_median_normalised_terms():
    table = _pool([1, 2, 3, 40], [10, 20, 30, 10], [0.1, 0.2, 0.9, 0.2])
    med = {"energy": 2.5, "forces": 15.0, "stress": 0.2}
    n = np.array([
        [1 / med["energy"], 10 / med["forces"], 0.1 / med["stress"]],
        [2 / med["energy"], 20 / med["forces"], 0.2 / med["stress"]],
        [3 / med["energy"], 30 / med["forces"], 0.9 / med["stress"]],
        [40 / med["energy"], 10 / med["forces"], 0.2 / med["stress"]],
    ])  # fmt: skip
    w = {"energy": 1.0, "forces": 1.0, "stress": 2.0}
    by_max = active.combine_scores(table, w, "max")["score"].to_numpy()
    by_sum = active.combine_scores(table, w, "sum")["score"].to_numpy()
    np.testing.assert_allclose(by_max, (n * [1, 1, 2]).max(axis=1))
    np.testing.assert_allclose(by_sum, (n * [1, 1, 2]).sum(axis=1))
    # a stress-only frame (row 2) outranks the energy outlier when energy is switched off
    no_e = active.combine_scores(table, {"energy": 0, "forces": 1, "stress": 1}, "max")
    assert int(no_e["score"].idxmax()) == 2
    # forces/15 vs stress/0.2 row by row: 0.67 > 0.5, 1.33 > 1, 2 < 4.5, 0.67 < 1
    assert list(no_e["top_term"]) == ["forces", "forces", "stress", "stress"]
    assert list(active.combine_scores(table, w, "max")["top_term"])[3] == "energy"


def test_score_rejects_an_unknown_combination_and_all_zero_weights():
    table = _pool([1, 2], [1, 2], [1, 2])
    with pytest.raises(ValueError, match="combine"):
        active.combine_scores(table, {"energy": 1}, "mean")
    with pytest.raises(ValueError, match="at least one weight"):
        active.combine_scores(table, {"energy": 0, "forces": 0, "stress": 0})


# ---- selection


def test_greedy_selection_keeps_picks_apart_on_one_path():
    paths = ["a"] * 6 + ["b"] * 2
    frames = [0, 1, 2, 3, 4, 5, 0, 1]
    scores = [9.0, 8.9, 8.8, 1.0, 5.0, 4.0, 8.95, 0.5]
    # by hand, gap 3: a0 (9.0), b0 (8.95), a1 too close to a0, a2 too close, a4 (5.0) -> k = 3
    picked, relaxed = active.select_diverse(scores, paths, frames, 3, 3)
    assert picked == [0, 6, 4] and not relaxed
    # gap 0: plain top-k
    assert active.select_diverse(scores, paths, frames, 3, 0)[0] == [0, 6, 1]


def test_selection_fills_in_when_the_pool_is_too_small_for_the_gap():
    picked, relaxed = active.select_diverse([3.0, 2.0, 1.0], ["a"] * 3, [0, 1, 2], 2, 10)
    assert picked == [0, 1] and relaxed


def test_per_path_selection_lets_every_path_take_its_turn():
    # path a is more uncertain everywhere (a hotter path): greedy gives it every pick
    paths = ["a"] * 6 + ["b"] * 3 + ["c"] * 2
    frames = [0, 5, 10, 15, 20, 25, 0, 5, 10, 0, 5]
    scores = [9.0, 8.0, 7.0, 6.5, 6.0, 5.5, 3.0, 4.0, 2.0, 1.0, 0.5]
    assert active.select_diverse(scores, paths, frames, 3, 1)[0] == [0, 1, 2]
    # by hand, round 1 offers a0 (9.0), b5 (4.0), c0 (1.0): taken highest first
    picked, relaxed = active.select_per_path(scores, paths, frames, 3, 1)
    assert picked == [0, 7, 9] and not relaxed
    # k = 5: round 2 offers a5 (8.0), b0 (3.0), c5 (0.5); the two highest complete it
    assert active.select_per_path(scores, paths, frames, 5, 1)[0] == [0, 7, 9, 1, 6]
    # gap 6: b's and c's other frames are 5 from their picks, a5 from a0: a's turns fill in
    # with a10 (7.0), then a20 (a15 is 5 from a10)
    assert active.select_per_path(scores, paths, frames, 5, 6)[0] == [0, 7, 9, 2, 4]


def test_per_path_selection_fills_in_when_no_path_has_a_frame_far_enough():
    picked, relaxed = active.select_per_path([3.0, 2.0, 1.0, 0.5], ["a"] * 3 + ["b"],
                                             [0, 1, 2, 0], 3, 10)  # fmt: skip
    assert picked == [0, 3, 1] and relaxed


def test_choose_frames_records_its_selection_rule_and_refuses_an_unknown_one():
    table = active.combine_scores(_pool(np.arange(1, 7), np.ones(6), np.ones(6)), {"energy": 1})
    table["path"], table["frame"] = ["hot"] * 4 + ["cold"] * 2, [0, 1, 2, 3, 0, 1]
    table["md_strain"] = np.linspace(0, 0.02, 6)
    chosen, record = active.choose_frames(table, 1, 2, 0, 1, "none", selection="per_path")
    assert record["selection"] == "per_path" and list(chosen.values()) == [5, 3]
    with pytest.raises(ValueError, match="active_learning.selection = 'best'"):
        active.choose_frames(table, 1, 2, 0, 1, "none", selection="best")


def test_random_selection_is_seeded_distinct_and_uniform():
    a = active.select_random(100, 10, 5)
    assert a == active.select_random(100, 10, 5) and len(set(a)) == 10
    assert a != active.select_random(100, 10, 6)
    counts = np.bincount(
        np.concatenate([active.select_random(10, 3, s) for s in range(3000)]), minlength=10
    )
    assert counts.min() > 0.8 * 900 and counts.max() < 1.2 * 900  # 3000 x 3 / 10 each


def test_choose_frames_names_every_lineage_and_records_the_pool():
    table = active.combine_scores(_pool(np.arange(1, 21), np.ones(20), np.ones(20)), {"energy": 1})
    table["path"] = ["p"] * 20
    table["frame"] = range(20)
    table["md_strain"] = np.linspace(0, 0.02, 20)
    chosen, record = active.choose_frames(table, 2, 3, 4, seed=1, baseline="random")
    assert list(chosen)[:3] == ["g2-pick000", "g2-pick001", "g2-pick002"]
    assert [chosen[f"g2-pick00{i}"] for i in range(3)] == [19, 15, 11]
    assert sorted(k for k in chosen if "rand" in k) == [f"g2-rand00{i}" for i in range(3)]
    assert record["pool_size"] == 20 and not record["gap_relaxed"]
    assert json.loads(json.dumps(record))["frames"][0]["frame"] == 19  # plain JSON types
    only_al, _ = active.choose_frames(table, 2, 3, 4, seed=1, baseline="none")
    assert all("pick" in k for k in only_al)


def test_picks_carry_their_md_cells_reference_and_its_k_mesh(tmp_path):
    """A pick (and a random frame) is labelled with its exploration path's k-point mesh: the
    unstrained MD cell's, not one of its own strained cell (fcc Cu, 6 % tension along x: the
    mesh of the strained cell differs from the path's, so the test tells them apart)."""
    from ase.calculators.emt import EMT

    from dft2mlip.dft.qe import kpoint_mesh
    from dft2mlip.structures import kpoint_reference_cell
    from dft2mlip.validate.deform import DeformationSpec, run_deformation_md

    spec = DeformationSpec.from_config({"mode": "uniaxial", "direction": "x", "repeat": [1, 1, 1],
        "temperature_K": 50.0, "timestep_fs": 2.0, "strain_rate_per_ps": 0.5, "max_strain": 0.06,
        "friction_per_fs": 0.02, "snapshots": 1})  # fmt: skip
    cell = bulk("Cu", "fcc", a=3.59, cubic=True)
    run_deformation_md(cell, EMT(), spec, 3, tmp_path / "t.extxyz", tmp_path / "t.csv")
    pool = ase.io.read(tmp_path / "t.extxyz", ":")
    n = len(pool)
    table = active.combine_scores(_pool(np.arange(1.0, n + 1), np.ones(n), np.ones(n)),
                                  {"energy": 1})  # fmt: skip
    table["path"], table["frame"] = "x", range(n)
    table["md_strain"] = [f.info["md_strain"] for f in pool]
    chosen, _ = active.choose_frames(table, 1, 2, 1, seed=1, baseline="random")
    picks = active.picked_structures(pool, chosen, table)
    spacing = 0.25  # 1/Å: 8 k-points along the unstrained 3.59 Å edge, 7 along the strained one
    assert kpoint_mesh(pool[-1].cell.array, spacing) != kpoint_mesh(cell.cell.array, spacing)
    for atoms in picks:
        np.testing.assert_allclose(kpoint_reference_cell(atoms), cell.cell.array)
        assert kpoint_mesh(kpoint_reference_cell(atoms), spacing) == kpoint_mesh(cell.cell, spacing)
    assert picks[0].info["md_strain"] == pytest.approx(0.06)  # the top score: the last frame
    bare = [f.copy() for f in pool]
    for f in bare:
        del f.info["reference_cell"]
    with pytest.raises(ValueError, match="rerun the MD"):
        active.picked_structures(bare, chosen, table)


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, 30).astype(float)
    y = x + rng.normal(size=30)
    assert active.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert np.isnan(active.spearman([1, 2], [2, 1]))
    assert np.isnan(active.spearman([1, 1, 1], [1, 2, 3]))


def test_names_round_trip():
    assert active.model_name("adaptive", "al", 0) == "adaptive"
    assert active.parse_model_name("adaptive__al3") == ("adaptive", "al", 3)
    assert active.parse_model_name("my_run-2__rand12") == ("my_run-2", "rand", 12)
    for plain in ("adaptive", "tuned__g03", "x__al0", "x__al", "x__alx"):
        assert active.parse_model_name(plain) is None
    assert active.label_ids(4, "rand", 2) == ["g4-rand000", "g4-rand001"]
    assert active.generation_of("g12-pick003") == 12


# ---- training set of a generation: failed labels listed, never trained on


def _label(atoms, sid, status="ok", settings_hash="h1"):
    atoms = atoms.copy()
    if status != "ok":
        for key in ("REF_energy", "REF_stress"):
            atoms.info.pop(key, None)
        atoms.arrays.pop("REF_forces", None)
    return Label(sid, "active_learning", status, "" if status == "ok" else "scf not converged",
                 atoms, settings_hash=settings_hash)  # fmt: skip


def test_training_set_adds_ok_picks_and_lists_the_rest(tmp_path):
    frames = emt_frames(5, seed=4)
    base = []
    for i, atoms in enumerate(frames[:2]):
        atoms = atoms.copy()
        atoms.info.update(structure_id=f"train-{i}", settings_hash="h1")
        base.append(atoms)
    ase.io.write(tmp_path / "train.extxyz", base, format="extxyz")
    paths = []
    for sid, atoms, status, h in [("g1-pick000", frames[2], "ok", "h1"),
                                  ("g1-pick001", frames[3], "failed", "h1"),
                                  ("g2-pick000", frames[4], "ok", "other")]:  # fmt: skip
        paths.append(tmp_path / f"{sid}.extxyz")
        write_label(_label(atoms, sid, status, h), paths[-1])
    table = active.training_set(tmp_path / "train.extxyz", paths, tmp_path / "out.extxyz")
    out = ase.io.read(tmp_path / "out.extxyz", ":")
    assert [a.info["structure_id"] for a in out] == ["train-0", "train-1", "g1-pick000"]
    assert out[2].info["REF_energy"] == pytest.approx(frames[2].info["REF_energy"])
    assert list(table["included"]) == [True, False, False]
    assert list(table["status"]) == ["ok", "failed", "ok"]
    assert "scf not converged" in table["reason"][1] and "settings_hash" in table["reason"][2]
    assert list(table["generation"]) == [1, 1, 2]
    held = Label("heldout-t-00", "heldout", "ok", "", frames[2], settings_hash="h1")
    write_label(held, tmp_path / "held.extxyz")
    with pytest.raises(ValueError, match="held-out benchmark frame"):
        active.training_set(tmp_path / "train.extxyz", [tmp_path / "held.extxyz"],
                            tmp_path / "out2.extxyz")  # fmt: skip


# ---- a committee of two real trained MACE models


@pytest.fixture(scope="module")
def committee(tmp_path_factory):
    from training_helpers import TINY_MODEL

    from dft2mlip.train.trainer import train_run

    work = tmp_path_factory.mktemp("committee")
    ase.io.write(work / "train.xyz", emt_frames(6, seed=1))
    ase.io.write(work / "val.xyz", emt_frames(2, seed=2))
    paths = []
    for seed in (1, 2):
        train_run(work / "train.xyz", work / "val.xyz", work / f"s{seed}", run_name="c",
                  model_cfg=TINY_MODEL, run_cfg={"scheme": "fixed", "weights":
                  {"energy": 1.0, "forces": 1.0, "stress": 1.0}}, epochs=2, batch_size=2,
                  lr=0.01, dtype="float64", seed=seed, threads=1)  # fmt: skip
        paths.append(work / f"s{seed}" / "model.pt")
    return paths


@pytest.mark.slow
def test_committee_disagreement_equals_the_error_against_one_member(committee, tmp_path):
    """With two members and a 'DFT' label equal to member 0's prediction, the committee mean's
    error is half the members' difference, exactly the ddof-0 disagreement, for E, F and S."""
    from dft2mlip.calculator import MLIPCalculator

    atoms = bulk("Al", "fcc", a=4.02, cubic=True)
    atoms.rattle(0.05, seed=3)
    member0 = atoms.copy()
    member0.calc = MLIPCalculator(committee[0])
    atoms.info.update(REF_energy=member0.get_potential_energy(),
                      REF_stress=member0.get_stress(voigt=True))  # fmt: skip
    atoms.arrays["REF_forces"] = member0.get_forces()
    write_label(_label(atoms, "g1-rand000"), tmp_path / "label.extxyz")
    table = active.calibration_table([tmp_path / "label.extxyz"], committee)
    row = table.iloc[0]
    assert row["selection"] == "random" and row["d_forces_meV_per_A"] > 0
    for d_col, err_col in active.TERM_COLUMNS.values():
        # the label went through extxyz (about 8 significant digits): not bit-exact
        assert row[err_col] == pytest.approx(row[d_col], rel=1e-5, abs=1e-9)


@pytest.mark.slow
def test_pool_scoring_on_a_real_md_trajectory(committee, tmp_path):
    """Real MD with member 0, scored by both: one row per recorded frame, and the frames'
    disagreement matches a direct evaluation of the two models."""
    from dft2mlip.calculator import MLIPCalculator
    from dft2mlip.validate.deform import DeformationSpec, run_deformation_md

    spec = DeformationSpec.from_config({"mode": "uniaxial", "direction": "x", "repeat": [1, 1, 1],
        "temperature_K": 300.0, "timestep_fs": 2.0, "strain_rate_per_ps": 0.5,
        "max_strain": 0.02, "friction_per_fs": 0.01, "snapshots": 1})  # fmt: skip
    atoms = bulk("Al", "fcc", a=4.02, cubic=True).repeat((2, 2, 2))
    calc = MLIPCalculator(committee[0])
    run_deformation_md(atoms, calc, spec, 1, tmp_path / "t.extxyz", tmp_path / "t.csv")
    table, pool = active.score_pool({"x": tmp_path / "t.extxyz"}, committee, {"stress": 1.0}, "max")
    md = {**spec.__dict__, "repeat": list(spec.repeat)}
    assert len(table) == len(pool) == active.pool_frames(md)
    frame = pool[5]
    preds = []
    for path in committee:
        a = frame.copy()
        a.calc = MLIPCalculator(path)
        preds.append((a.get_potential_energy(), a.get_forces(), a.get_stress(voigt=True)))
    e, f, s = (np.array([p[i] for p in preds]) for i in range(3))
    expected = active.frame_disagreement(e, f, s, len(frame))
    for col, value in expected.items():
        assert table.loc[5, col] == pytest.approx(value)
    assert table.loc[5, "score"] == pytest.approx(
        table.loc[5, "d_stress_GPa"] / table["d_stress_GPa"].median()
    )


# ---- config checks (one line naming the key)


def _config(**al):
    from dft2mlip.config import validate_config

    cfg = yaml.safe_load((ROOT / "config" / "examples" / "active_learning.yaml").read_text())
    cfg["active_learning"].update(al)
    return validate_config(cfg)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"run": "nope"}, "active_learning.run = 'nope' is not a training run"),
        ({"frames_per_generation": 100000}, "active_learning.frames_per_generation"),
        ({"exploration": {"bad": {"strain_rate_per_ps": 5.0}}}, "active_learning.exploration.bad"),
    ],
)
def test_bad_active_learning_settings_name_the_key(change, message):
    from dft2mlip.config import ConfigError, check_config

    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(_config(**change))


def test_a_committee_needs_two_seeds():
    from dft2mlip.config import ConfigError, check_config

    cfg = _config()
    cfg["training"]["seeds"] = 1
    with pytest.raises(ConfigError, match="training.seeds >= 2"):
        check_config(cfg)
    cfg["active_learning"]["generations"] = 0
    check_config(cfg)  # off: no committee needed


def test_bad_heldout_settings_name_the_key():
    from dft2mlip.config import ConfigError, check_config

    cfg = _config()
    cfg["validation"]["heldout"]["run"] = "nope"
    with pytest.raises(ConfigError, match="validation.heldout.run = 'nope' is not a training run"):
        check_config(cfg)
    cfg = _config()
    cfg["validation"]["heldout"]["paths"]["fast"] = {"strain_rate_per_ps": 5.0}
    with pytest.raises(ConfigError, match=r"validation\.heldout\.paths\.fast: strain_rate"):
        check_config(cfg)


# ---- the static DAG of the generations


def expected_al_jobs(cfg: dict) -> dict:
    al = cfg["active_learning"]
    g, lineages = al["generations"], 2
    return {"al_explore": g * len(al["exploration"]), "al_select": g, "al_calibration": g,
            "al_dataset": g * lineages, "al_summary": 1,
            "deformation_md": len(cfg["training"]["runs"]) + g * lineages}  # fmt: skip


@pytest.mark.workflow
def test_dry_run_has_every_generations_jobs(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "examples" / "active_learning.yaml").read_text())
    workdir = make_workdir(tmp_path / "w", ROOT / "config" / "examples" / "active_learning.yaml")
    out = snakemake(workdir, "-n").stdout
    jobs = planned_jobs(out)
    for rule, n in expected_al_jobs(cfg).items():
        assert jobs[rule] == n, rule
    # every job that builds a cell from the material starts from the DFT-relaxed reference
    # (material.relax is on by default): the exploration MD too, not the configured 5.431 A cell
    relaxed = "results/dft/reference/relaxed.extxyz"
    for rule in ("structures", "deformation_md", "al_explore", "md_snapshots"):
        blocks = [b for b in out.split("\n\n") if f"rule {rule}:" in b]
        assert blocks and all(relaxed in b for b in blocks), rule
    al, seeds = cfg["active_learning"], cfg["training"]["seeds"]
    new_labels = al["generations"] * al["frames_per_generation"] * 2
    new_models = al["generations"] * 2 * seeds
    base = yaml.safe_load(yaml.safe_dump(cfg))  # the same config with active learning off
    base["active_learning"]["generations"] = 0
    base_dir = tmp_path / "base.yaml"
    base_dir.write_text(yaml.safe_dump(base))
    base_jobs = planned_jobs(snakemake(make_workdir(tmp_path / "b", base_dir), "-n").stdout)
    assert jobs["dft_run"] - base_jobs["dft_run"] == new_labels
    for rule in ("train", "validate_model"):
        assert jobs[rule] - base_jobs[rule] == new_models, rule


@pytest.mark.workflow
def test_one_more_generation_adds_only_its_own_jobs(tmp_path):
    """Generation 1 'done' (every output touched, so Snakemake records its parameters), then
    generations: 2 plans generation-2 jobs and the aggregates, nothing of generation 1."""
    cfg = yaml.safe_load((ROOT / "config" / "examples" / "active_learning.yaml").read_text())
    cfg["active_learning"]["generations"] = 1
    cfg["training"]["seeds"] = 2  # fewer jobs to touch; the held-out jobs stay (never replanned)
    cfg["validation"]["md"]["snapshots"] = 2
    (tmp_path / "g1.yaml").write_text(yaml.safe_dump(cfg))
    workdir = make_workdir(tmp_path / "w", tmp_path / "g1.yaml")
    out = snakemake(workdir, "-n").stdout
    for line in re.findall(r"^\s+output: (.*)$", out, re.M):
        for f in line.split(", "):
            (workdir / f).parent.mkdir(parents=True, exist_ok=True)
            (workdir / f).write_text("")
    touched = snakemake(workdir, "--touch", "--forceall")  # every job: records its params
    n_meta = len(list((workdir / ".snakemake" / "metadata").glob("*")))
    assert n_meta > 0, touched.stdout[-3000:] + touched.stderr[-3000:]
    assert planned_jobs(snakemake(workdir, "-n").stdout) == {}
    cfg["active_learning"]["generations"] = 2
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(workdir, "-n").stdout
    planned = re.findall(r"^\s+output: (.*)$", out, re.M)
    aggregates = {"results/al/summary.md", "results/report/summary.md", "results/provenance.json"}
    for line in planned:
        files = line.split(", ")
        assert aggregates & set(files) or all(
            re.search(r"(/g2[-/]|g2\.extxyz|__al2/|__rand2/)", f) for f in files
        ), line
    jobs = planned_jobs(out)
    assert jobs["al_explore"] == len(cfg["active_learning"]["exploration"]), out[:3000]
    assert jobs["al_select"] == 1 and jobs["al_summary"] == 1


# ---- the summary: the verdict is computed from the numbers


def test_summary_verdict_and_label_statuses_from_the_files(tmp_path):
    """Hand-made per-seed numbers: active learning's stress MAE is clearly lower than random's
    (beyond 2 standard errors), its force MAE is not; a failed pick is listed in the report."""
    from dft2mlip.validate.elastic import write_elastic_json

    c_dft = np.diag([160.0, 160, 160, 80, 80, 80])
    write_elastic_json(c_dft, tmp_path / "dft.json", "dft", protocol="relaxed_ion")
    stress = {
        "adaptive": [0.30, 0.31, 0.29],
        "adaptive__al1": [0.10, 0.11, 0.09],
        "adaptive__rand1": [0.20, 0.21, 0.19],
    }
    forces = {
        "adaptive": [50, 51, 49],
        "adaptive__al1": [40, 45, 35],
        "adaptive__rand1": [41, 46, 36],
    }
    heldout = {"adaptive": [0.90, 1.00, 1.10], "adaptive__al1": [0.40, 0.45, 0.35],
               "adaptive__rand1": [0.80, 0.85, 0.75]}  # fmt: skip
    models, inp = [], {k: [] for k in ("metrics", "elastic", "md_stress", "heldout")}
    for run in stress:
        for k in range(3):
            models.append((run, k))
            d = tmp_path / run / str(k)
            d.mkdir(parents=True)
            metrics = {
                "energy_mae_meV_per_atom": 2.0,
                "forces_mae_meV_per_A": forces[run][k],
                "stress_mae_GPa": stress[run][k],
            }
            (d / "metrics.json").write_text(json.dumps(metrics))
            write_elastic_json(c_dft * 1.1, d / "elastic_relaxed.json", run, protocol="relaxed_ion")
            (d / "md_stress.json").write_text(json.dumps({"mae_GPa": 0.5}))
            (d / "heldout.json").write_text(json.dumps({"stress_mae_GPa": heldout[run][k],
                "forces_mae_meV_per_A": 60.0, "energy_mae_meV_per_atom": 3.0}))  # fmt: skip
            for key, name in (
                ("metrics", "metrics"),
                ("elastic", "elastic_relaxed"),
                ("md_stress", "md_stress"),
                ("heldout", "heldout"),
            ):
                inp[key].append(str(d / f"{name}.json"))
    calib = pd.DataFrame(
        {
            "structure_id": ["g1-pick000", "g1-pick001", "g1-rand000", "g1-rand001"],
            "generation": 1,
            "selection": ["active"] * 2 + ["random"] * 2,
            "status": ["ok", "failed", "ok", "ok"],
            "d_energy_meV_per_atom": [1.0, 2, 3, 4],
            "d_forces_meV_per_A": [1.0, 2, 3, 4],
            "d_stress_GPa": [0.1, 0.2, 0.3, 0.4],
            "err_energy_meV_per_atom": [1.0, np.nan, 2, 3],
            "err_forces_meV_per_A": [3.0, np.nan, 2, 1],
            "err_stress_GPa": [0.1, np.nan, 0.2, 0.3],
        }
    )
    calib.to_csv(tmp_path / "calibration.csv", index=False)
    frames = [{"structure_id": "g1-pick000", "top_term": "stress"},
              {"structure_id": "g1-pick001", "top_term": "energy"},
              {"structure_id": "g1-rand000", "top_term": "energy"}]  # fmt: skip
    (tmp_path / "selection.json").write_text(json.dumps({"generation": 1, "frames": frames}))
    for lin in ("al1", "rand1"):
        (tmp_path / f"adaptive__{lin}").mkdir(exist_ok=True)
    pd.DataFrame(
        {
            "structure_id": ["g1-pick000", "g1-pick001"],
            "generation": 1,
            "status": ["ok", "failed"],
            "message": ["", "scf"],
            "included": [True, False],
            "reason": ["", "DFT status failed: scf"],
        }
    ).to_csv(tmp_path / "adaptive__al1" / "labels.csv", index=False)
    pd.DataFrame(
        {
            "structure_id": ["g1-rand000"],
            "generation": 1,
            "status": ["ok"],
            "message": [""],
            "included": [True],
            "reason": [""],
        }
    ).to_csv(tmp_path / "adaptive__rand1" / "labels.csv", index=False)
    inp.update(
        dft_elastic=[],
        dft_elastic_relaxed=[str(tmp_path / "dft.json")],
        calibration=[str(tmp_path / "calibration.csv")],
        selection=[str(tmp_path / "selection.json")],
        labels=[str(tmp_path / f"adaptive__{x}" / "labels.csv") for x in ("al1", "rand1")],
    )
    out = {
        n: tmp_path / "out" / f
        for n, f in [
            ("summary", "summary.md"),
            ("per_seed", "p.csv"),
            ("record", "summary.json"),
            ("generations", "al_generations.png"),
            ("calibration", "al_calibration.png"),
        ]
    }
    (tmp_path / "out").mkdir()
    settings = {
        "frames_per_generation": 2,
        "min_frame_gap": 5,
        "selection": "greedy",
        "score": {"combine": "max", "weights": {"energy": 1, "forces": 1, "stress": 1}},
    }
    record = active.write_summary(
        inp, out, models=models, base="adaptive", generations=1, settings=settings, n_seeds=3
    )
    sentences = record["verdicts"][1]
    s_mae = next(s for s in sentences if s.startswith("test S MAE"))
    assert "adaptive__al1 is lower than" in s_mae and "adaptive__rand1 (Δ -0.1" in s_mae
    f_mae = next(s for s in sentences if s.startswith("test F MAE"))
    assert "not distinguishable from adaptive__rand1" in f_mae
    # the held-out benchmark: active 0.40 vs random 0.80 GPa, each with std 0.05 over 3 seeds
    held = next(s for s in sentences if s.startswith("held-out MD stress MAE"))
    se = np.sqrt(2 * np.var([0.40, 0.45, 0.35], ddof=1) / 3)
    assert f"lower than adaptive__rand1 (Δ -0.4 ± {se:.2g} GPa)" in held
    calib_rows = {r["term"]: r for r in record["calibration"]}
    assert calib_rows["forces"]["n"] == 3
    assert calib_rows["forces"]["spearman"] == pytest.approx(
        spearmanr([1, 3, 4], [3, 2, 1]).statistic
    )
    text = out["summary"].read_text()
    assert "generation 1: energy 1, stress 1" in text
    per_seed = active.with_lineage(pd.read_csv(out["per_seed"]), "adaptive")
    paired = active.paired_differences(per_seed)
    np.testing.assert_allclose(paired["stress_mae_GPa"], [-0.1, -0.1, -0.1])
    np.testing.assert_allclose(paired["forces_mae_meV_per_A"], [-1.0, -1.0, -1.0])
    np.testing.assert_allclose(paired["heldout_stress_mae_GPa"], [-0.4, -0.4, -0.4])
    assert "Active minus random, seed by seed" in text
    assert "| 1 | held-out MD stress MAE | -0.4 GPa | [-0.4, -0.4] | 3 | active lower |" in text
    assert "1 of 2 picked frames trained on" not in text  # 2 of 3 over both lineages
    assert "2 of 3 picked frames trained on" in text and "g1-pick001" in text
    assert json.loads(out["record"].read_text())["verdicts"]["1"] == sentences
    # the report shows the section (Markdown and HTML) with its figures beside it
    from dft2mlip.report.write import write_report

    summary = write_report(tmp_path / "report", dataset_table=None, runs={},
                           dft_elastic_json=None, active_learning_dir=tmp_path / "out")  # fmt: skip
    text = summary.read_text()
    assert "## Active learning: committee-picked vs random frames" in text
    assert "not distinguishable from adaptive__rand1" in text
    for link in ("al_generations.png", "al_calibration.png"):
        assert f"]({link})" in text and (tmp_path / "report" / link).exists()
    assert "Active learning: committee-picked" in (tmp_path / "report" / "report.html").read_text()


def test_paired_verdict_is_a_t_interval_over_seed_differences():
    """Active minus random per seed, its mean and 95 % Student-t interval: the Si generation-3
    differences (-0.035, -0.019, -0.020 GPa) worked out by hand with the tabulated
    t(0.975, 2 d.o.f.) = 4.303; an interval that holds 0 is "not distinguishable"; one seed is
    not judged."""
    rows = []
    diffs = {1: [0.010, -0.005, 0.020], 3: [-0.035, -0.019, -0.020], 4: [-0.01]}
    for g, ds in diffs.items():
        for seed, d in enumerate(ds):
            key = {"generation": g, "seed": seed}
            rows += [{**key, "lineage": "al", "heldout_stress_mae_GPa": 0.2 + d},
                     {**key, "lineage": "rand", "heldout_stress_mae_GPa": 0.2}]  # fmt: skip
    verdicts = {v["generation"]: v for v in active.paired_verdicts(pd.DataFrame(rows))}
    g3 = verdicts[3]
    mean = (-0.035 - 0.019 - 0.020) / 3
    sd = np.sqrt(((-0.035 - mean) ** 2 + (-0.019 - mean) ** 2 + (-0.020 - mean) ** 2) / 2)
    half = 4.303 * sd / np.sqrt(3)
    assert g3["mean"] == pytest.approx(mean)
    assert g3["ci95_low"] == pytest.approx(mean - half, rel=1e-3)  # [-0.047, -0.002]
    assert g3["ci95_high"] == pytest.approx(mean + half, rel=1e-2)
    assert g3["verdict"] == "active lower" and g3["metric"] == "held-out MD stress MAE"
    assert verdicts[1]["verdict"] == "not distinguishable"
    assert verdicts[4]["verdict"] == "cannot be judged (one seed)"
    rows = [{**r, "heldout_stress_mae_GPa": 0.5 - r["heldout_stress_mae_GPa"]} for r in rows]
    flipped = {v["generation"]: v for v in active.paired_verdicts(pd.DataFrame(rows))}
    assert flipped[3]["verdict"] == "random lower"


# ---- one real generation on top of the tiny end-to-end run


@pytest.mark.workflow
def test_one_real_generation_on_the_tiny_run(completed_tiny_run, tmp_path):
    """A copy of the finished tiny run with one generation (k = 2 picks + 2 random frames, one
    shear exploration path): only the new jobs are planned (no training label is relabelled),
    and after the real run each lineage's training set is the dataset's train split plus its ok
    DFT labels, the picks are frames of the exploration trajectory, and the calibration's
    true error of the committee mean is the one recomputed here from the two seed models."""
    import shutil

    from dft2mlip.calculator import MLIPCalculator
    from dft2mlip.data import read_label

    work = tmp_path / "run"
    shutil.copytree(completed_tiny_run.workdir, work, symlinks=True)
    cfg_path = work / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["active_learning"] = {
        "generations": 1,
        "run": "adaptive",
        "frames_per_generation": 2,
        "min_frame_gap": 2,
        "exploration": {"shear": {"mode": "shear", "direction": "xy", "max_strain": 0.02}},
    }
    # the held-out benchmark: one shear frame, labelled once, every model scored on it
    cfg["validation"]["heldout"] = {"frames_per_path": 1, "strain_bins": 1,
                                    "paths": {"shear": {"mode": "shear", "direction": "xy"}}}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    planned = planned_jobs(snakemake(work, "-n", "results/al/summary.md").stdout)
    assert planned["dft_run"] == 4 + 1 and planned["train"] == 2 * cfg["training"]["seeds"]
    for rule in ("structures", "dataset", "elastic_dft", "md_snapshots"):
        assert rule not in planned, rule
    snakemake(work, "results/al/summary.md")

    res = work / "results"
    n_base = len(ase.io.read(res / "dataset" / "train.extxyz", ":"))
    for lineage in ("al", "rand"):
        labels = pd.read_csv(res / "al" / f"adaptive__{lineage}1" / "labels.csv")
        assert len(labels) == 2
        n_ok = int((labels["status"] == "ok").sum())
        train = ase.io.read(res / "al" / f"adaptive__{lineage}1" / "train.extxyz", ":")
        assert len(train) == n_base + n_ok
    pool = ase.io.read(res / "al" / "explore" / "g1" / "shear" / "trajectory.extxyz", ":")
    # the exploration starts from the DFT-relaxed cell (conventional a = sqrt(2) |a_prim|)
    relaxed = ase.io.read(res / "dft" / "reference" / "relaxed.extxyz")
    a_relaxed = np.sqrt(2) * np.linalg.norm(relaxed.cell.array[0])
    assert abs(a_relaxed - 5.431) > 1e-3
    np.testing.assert_allclose(pool[0].cell.lengths(), a_relaxed, rtol=1e-9)
    from dft2mlip.dft.qe import kpoint_mesh

    path_mesh = list(kpoint_mesh(pool[0].cell.array, cfg["dft"]["qe"]["kspacing_per_A"]))
    committee = [MLIPCalculator(res / "train" / "adaptive" / f"seed{k}" / "model.pt")
                 for k in range(cfg["training"]["seeds"])]  # fmt: skip
    calibration = pd.read_csv(res / "al" / "g1" / "calibration.csv").set_index("structure_id")
    for i in range(2):
        lab = read_label(res / "dft" / "al" / f"g1-pick{i:03d}" / "label.extxyz")
        assert list(lab.provenance["kpoint_mesh"]) == path_mesh  # the path's mesh, recorded
        # a pick is a frame of the exploration path (same cell and positions)
        assert any(
            np.allclose(frame.cell.array, lab.atoms.cell.array, atol=1e-8)
            and np.allclose(frame.positions, lab.atoms.positions, atol=1e-8)
            for frame in pool
        ), lab.structure_id
        if lab.status != "ok":
            continue
        stresses = []
        for calc in committee:
            atoms = lab.atoms.copy()
            atoms.calc = calc
            stresses.append(atoms.get_stress(voigt=True))
        # Frobenius norm of the full 3x3 error tensor of the committee mean, in GPa
        error = voigt_6_to_full_3x3_stress(np.mean(stresses, axis=0) - lab.stress)
        expected = np.linalg.norm(error) / GPa
        got = calibration.loc[lab.structure_id, "err_stress_GPa"]
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-9), lab.structure_id
    held = read_label(res / "dft" / "heldout" / "heldout-shear-00" / "label.extxyz")
    assert held.status == "ok"
    for model in ("adaptive", "adaptive__al1", "adaptive__rand1"):
        record = json.loads((res / "validate" / model / "seed0" / "heldout.json").read_text())
        atoms = held.atoms.copy()
        atoms.calc = MLIPCalculator(res / "train" / model / "seed0" / "model.pt")
        error = np.abs(atoms.get_stress(voigt=True) - held.stress).mean() / GPa
        assert record["n_ok"] == 1 and record["stress_mae_GPa"] == pytest.approx(error, rel=1e-6)


# ---- paired lineages: the same start for active and random


def test_paired_lineages_share_statistics_and_initial_parameters(tmp_path):
    """Both lineages of one seed (generation 0's train set plus different picks) are built with
    the statistics of generation 0's set (stats_path, as rule train passes for an AL model): the
    same E0s, scale/shift, neighbour count, score scales and initial parameters. Fitted on each
    lineage's own set (no stats_path) they differ: the comparison would mix in the refit."""
    import torch
    from training_helpers import TINY_MODEL

    from dft2mlip.train import models
    from dft2mlip.train.settings import TrainingSettings
    from dft2mlip.train.trainer import Trainer, TrainingData

    base, extra = emt_frames(6, seed=1), emt_frames(4, seed=5, max_strain=0.06, rattle=0.15)
    ase.io.write(tmp_path / "g0.xyz", base)
    ase.io.write(tmp_path / "al.xyz", base + extra[:2])
    ase.io.write(tmp_path / "rand.xyz", base + extra[2:])
    ase.io.write(tmp_path / "val.xyz", emt_frames(2, seed=2))
    settings = TrainingSettings.from_config({"dtype": "float64", "batch_size": 2})
    run_cfg = {"scheme": "fixed", "weights": {"energy": 1.0, "forces": 1.0, "stress": 1.0}}

    def start(lineage, stats):
        data = TrainingData.from_files(tmp_path / f"{lineage}.xyz", tmp_path / "val.xyz",
                                       TINY_MODEL, "float64", 2, stats_path=stats)  # fmt: skip
        trainer = Trainer(data, tmp_path / lineage, run_name="c", model_cfg=TINY_MODEL,
                          run_cfg=run_cfg, settings=settings, seed=7)  # fmt: skip
        return data, trainer.model.state_dict()

    with models.default_dtype("float64"):
        (a, pa), (r, pr) = (start(x, tmp_path / "g0.xyz") for x in ("al", "rand"))
        own_a, own_r = (TrainingData.from_files(tmp_path / f"{x}.xyz", tmp_path / "val.xyz",
                        TINY_MODEL, "float64", 2) for x in ("al", "rand"))  # fmt: skip
    assert a.e0s == r.e0s and a.stats == r.stats and a.scales == r.scales
    assert pa.keys() == pr.keys() and all(torch.equal(pa[k], pr[k]) for k in pa)
    assert own_a.stats != own_r.stats and own_a.scales != own_r.scales


def test_al_compare_pairs_lineages_by_seed_with_a_t_interval():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "al_compare", Path(__file__).parents[1] / "bench" / "al_compare.py"
    )
    al_compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(al_compare)
    rows = [("adaptive", k, "start", 0, 0.4) for k in range(3)]
    rows += [("adaptive__al1", k, "al", 1, v) for k, v in enumerate([0.30, 0.20, 0.25])]
    rows += [("adaptive__rand1", k, "rand", 1, 0.20) for k in range(3)]
    m = "stress_mae_GPa"
    per_seed = pd.DataFrame(rows, columns=["run", "seed", "lineage", "generation", m])
    table = al_compare.run_table("x", per_seed, m)
    # differences +0.10, 0, +0.05: mean 0.05, sd 0.05, se 0.05/sqrt(3), t(0.975, 2) = 4.303
    half = 4.303 * 0.05 / np.sqrt(3)
    assert table[-1] == (f"| 1 | 0.250 ± 0.050 | 0.200 ± 0.000 | +0.100, +0.000, +0.050 | "
                         f"+0.050 [{0.05 - half:+.3f}, {0.05 + half:+.3f}] |")  # fmt: skip
    other = per_seed.assign(**{m: per_seed[m] + np.where(per_seed["lineage"] == "al", 0.01, 0.0)})
    between = al_compare.between_runs({"a": other, "b": per_seed}, m)
    assert "| a − b | al | 1 | +0.010, +0.010, +0.010 |" in between[3]
    assert "| a − b | rand | 1 | +0.000, +0.000, +0.000 |" in between[4]
    # per path: a frame off by +0.6 GPa in σ_xx and -0.3 in σ_xy, 0 elsewhere: 0.15 over 6
    frame = {f"stress_{w}_{c}_GPa": 0.0 for w in ("ref", "pred") for c in
             ("xx", "yy", "zz", "yz", "xz", "xy")}  # fmt: skip
    frame.update(stress_pred_xx_GPa=0.6, stress_pred_xy_GPa=-0.3, path="t", generation=1,
                 lineage="al")  # fmt: skip
    row = al_compare.per_path_table(pd.DataFrame([frame]))[-1]
    assert row == "| t | 1 | al | 0.150 | 0.600 | 0.300 |"
