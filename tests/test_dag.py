"""The DAG's ids, paths and per-stage selections (dft2mlip.dag), without Snakemake.

Over the default config and every config/examples/*.yaml (schema defaults filled in as Snakemake's
``validate`` does). Expectations come from outside the code under test: counts worked out here from
the config's own keys, and the job counts of ``snakemake -n`` recorded before the helpers moved out
of workflow/rules/common.smk (:data:`DRY_RUN`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from dft2mlip.config import validate_config
from dft2mlip.dag import active_learning as al
from dft2mlip.dag import engine, heldout, imports, labels, paths, structures, targets, training
from dft2mlip.structures import conventional_cell, primitive_cell

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"default": ROOT / "config" / "config.yaml"} | {
    p.stem: p for p in sorted((ROOT / "config" / "examples").glob("*.yaml"))
}

#: jobs per rule of `snakemake -n --configfile <config>` (Snakemake 9.27), recorded on main (last
#: with DFT snapshots on the reference run's MD path only, validation.snapshot_runs: null):
#: total (with `all`), dft_run, train, validate_model, test_metrics, deformation_md, heldout_md,
#: al_explore, import_data, convergence_point, elastic_dft_relax
DRY_RUN = {
    "default": (196, 70, 12, 12, 0, 4, 2, 0, 0, 0, 12),
    "active_learning": (295, 98, 21, 21, 0, 7, 2, 9, 0, 0, 12),
    "active_learning_sic": (253, 77, 21, 21, 0, 7, 2, 9, 0, 0, 12),
    "cu_fcc": (225, 73, 24, 15, 9, 5, 0, 0, 0, 0, 12),
    "fe_bcc": (225, 73, 24, 15, 9, 5, 0, 0, 0, 0, 12),
    "import_only": (30, 0, 9, 9, 0, 3, 0, 0, 3, 0, 0),
    "mg_hcp": (285, 103, 24, 15, 9, 5, 0, 0, 0, 0, 12),
    "nio_qe": (247, 85, 24, 15, 9, 5, 0, 0, 0, 0, 12),
    "nio_vasp": (247, 85, 24, 15, 9, 5, 0, 0, 0, 0, 12),
    "sic_3c": (305, 113, 24, 15, 9, 5, 0, 0, 0, 0, 12),
    "tio2_cif": (271, 97, 24, 15, 9, 5, 0, 0, 0, 0, 12),
    "vasp_slurm": (381, 152, 9, 9, 0, 3, 0, 0, 0, 30, 12),
    "weight_grid": (222, 70, 24, 15, 9, 5, 2, 0, 0, 0, 12),
}
N_ELASTIC = 12  # ± strain along each of the six Voigt directions


def load(name: str) -> dict:
    with open(CONFIGS[name]) as fh:
        return validate_config(yaml.safe_load(fh))


@pytest.fixture(params=sorted(CONFIGS), scope="module")
def named_config(request) -> tuple[str, dict]:
    return request.param, load(request.param)


def test_every_config_has_its_recorded_dry_run():
    assert set(DRY_RUN) == set(CONFIGS), "record `snakemake -n` job counts for a new example"


def _n_training(cfg: dict) -> int:
    s = cfg["structures"]
    return len(s["hydrostatic"]["strains"]) + sum(
        s.get(k, {}).get("count", 0) for k in ("strained", "rattled", "supercell", "vacancy")
    )


def _n_grid(cfg: dict) -> int:
    """Grid points of the tuned runs: every combination of the tune lists."""
    tuned = [r["tune"] for r in cfg["training"]["runs"].values() if r.get("tune")]
    return sum(math.prod(len(t.get(c, [0])) for c in ("energy", "forces", "stress")) for t in tuned)


def test_counts_from_the_config(named_config):
    name, cfg = named_config
    new = cfg["dft"]["engine"] != "none"
    seeds = cfg["training"]["seeds"]
    train_ids = structures.training_ids(cfg)
    assert len(train_ids) == len(set(train_ids)) == _n_training(cfg)
    assert len(labels.dft_label_paths(cfg)) == len(train_ids)
    assert len(labels.elastic_label_paths(cfg)) == (N_ELASTIC if new else 0)
    # DFT snapshots on the paths of validation.snapshot_runs (null: the reference run only)
    snap_runs = cfg["validation"]["snapshot_runs"] or [cfg["training"]["reference_run"]]
    n_snap = len(snap_runs) * cfg["validation"]["md"]["snapshots"] if new else 0
    assert len(labels.all_snapshot_label_paths(cfg)) == n_snap
    held = cfg["validation"]["heldout"]
    n_held = len(held["paths"]) * held["frames_per_path"] if new else 0
    assert len(heldout.heldout_label_paths(cfg)) == n_held
    a = cfg["active_learning"]
    n_lineages = 2 if a["baseline"] == "random" else 1
    n_al = a["generations"] * n_lineages * a["frames_per_generation"]
    assert len(al.al_label_paths(cfg)) == n_al
    assert training.study_models(cfg) == [
        (r, k) for r in cfg["training"]["runs"] for k in range(seeds)
    ]
    assert len(training.grid_runs(cfg)) == _n_grid(cfg)
    assert len(imports.import_label_paths(cfg)) == len(cfg["dataset"]["import"])
    conv = cfg["dft"]["convergence"]
    n_points = len(conv["cutoffs"]) * len(conv["kspacings_per_A"]) if conv["enabled"] else 0
    if conv["enabled"]:
        assert len(engine.convergence_point_results(cfg)) == n_points
    # the cross-family check: the crystal in the primitive and the conventional cell, when the
    # two cells differ (fcc: 1 and 4 atoms) and DFT runs
    material = structures.material_physics(cfg)
    two_cells = len(primitive_cell(material)) != len(conventional_cell(material, (1, 1, 1)))
    n_fam = 2 if new and two_cells else 0
    assert len(labels.family_label_paths(cfg)) == n_fam
    every = targets.all_dft_label_paths(cfg)
    assert (
        len(every)
        == len(set(every))
        == len(train_ids) + (N_ELASTIC if new else 0) + n_snap + n_held + n_al + n_fam
    )


def test_job_counts_of_the_recorded_dry_run(named_config):
    name, cfg = named_config
    _, n_dft, n_train, n_validate, n_test, n_md, n_held_md, n_explore, n_import, n_conv, n_relax = (
        DRY_RUN[name]
    )
    al_names = (
        {m for m, _ in al.al_models(cfg)} - {al.al_base(cfg)} if al.al_generations(cfg) else set()
    )
    assert len(targets.all_dft_label_paths(cfg)) == n_dft
    assert len(targets.provenance_inputs(cfg)["labels"]) == n_dft
    n_al_models = len(al_names) * cfg["training"]["seeds"]
    assert len(training.study_models(cfg)) + len(training.grid_runs(cfg)) + n_al_models == n_train
    assert len(training.per_model(cfg, "{run}/{seed}")) + n_al_models == n_validate
    assert len(training.grid_runs(cfg)) == n_test
    assert len(training.training_runs(cfg)) + len(al_names) == n_md
    assert len(heldout.heldout_paths(cfg)) == n_held_md
    assert len(al.al_generations(cfg)) * len(al.al_paths(cfg)) == n_explore
    assert len(imports.import_names(cfg)) == n_import
    n_points = len(engine.convergence_point_ids(cfg)) if engine.convergence_enabled(cfg) else 0
    assert n_points == n_conv
    relaxed = (
        labels.elastic_relaxed_label_paths(cfg) if labels.dft_relaxed_elastic_outputs(cfg) else []
    )
    assert len(relaxed) == n_relax


def test_every_path_lies_in_the_results_dir(named_config):
    _, cfg = named_config
    cfg = {**cfg, "results_dir": "elsewhere/out"}
    gathered = {
        **targets.report_inputs(cfg),
        **{f"study_{k}": v for k, v in targets.study_inputs(cfg).items()},
        **{f"prov_{k}": v for k, v in targets.provenance_inputs(cfg).items()},
        **{f"al_{k}": v for k, v in al.al_summary_inputs(cfg).items()},
        "final": targets.final_outputs(cfg),
    }
    files = [f for v in gathered.values() for f in ([v] if isinstance(v, str) else v)]
    assert files and all(f.startswith("elsewhere/out/") for f in files)


def test_default_config_ids_and_paths():
    cfg = load("default")
    assert labels.dft_label_paths(cfg)[0] == "results/dft/train/hydro-000/label.extxyz"
    assert labels.all_snapshot_label_paths(cfg)[0] == "results/dft/md/adaptive__snap00/label.extxyz"
    assert training.seed_value(cfg, "2") == 20241203 + 2
    assert paths.model_dir("results", "mace-like", 1) == "results/train/mace-like/seed1"
    assert engine.dft_input_name(cfg) == "pw.in" and engine.dft_output_name(cfg) == "pw.out"
    physics = engine.dft_physics_config(cfg)
    assert "executable" not in physics and "allow_low_cutoff" not in physics
    assert physics["ecutwfc_Ry"] == 30.0
    assert engine.reference_inputs(cfg) == {
        "reference": ["results/dft/reference/relaxed.extxyz"],
        "reference_summary": ["results/dft/reference/relax.json"],
    }
    assert engine.convergence_chosen_settings(cfg) == []
    assert labels.dft_relaxed_elastic_outputs(cfg) == ["results/validate/dft/elastic_relaxed.json"]


def test_snapshot_runs_pick_the_validated_md_paths():
    """null: the reference run's path only (4 points, a curve, in the default); a list: those
    runs' paths, each with validation.md.snapshots points; a name that is not a run is refused
    at `snakemake -n`, naming the key."""
    from dft2mlip.config import ConfigError, check_config

    cfg = load("default")
    ids = [Path(p).parent.name for p in labels.all_snapshot_label_paths(cfg)]
    assert ids == [f"adaptive__snap{k:02d}" for k in range(4)]
    cfg["validation"]["snapshot_runs"] = ["no-stress", "adaptive"]
    ids = [Path(p).parent.name for p in labels.all_snapshot_label_paths(cfg)]
    assert ids == [f"{r}__snap{k:02d}" for r in ("no-stress", "adaptive") for k in range(4)]
    cfg["validation"]["snapshot_runs"] = ["adaptive", "tuned"]
    with pytest.raises(ConfigError, match=r"'validation.snapshot_runs' names 'tuned', not a run"):
        check_config(cfg)


def test_engines_name_their_files():
    vasp, none = load("vasp_slurm"), load("import_only")
    assert (engine.dft_input_name(vasp), engine.dft_output_name(vasp)) == ("INCAR", "vasprun.xml")
    assert (engine.dft_input_name(none), engine.dft_output_name(none)) == ("input", "output")
    assert engine.convergence_chosen_settings(vasp) == ["results/convergence/chosen_settings.json"]
    assert engine.reference_inputs(none) == {"reference": [], "reference_summary": []}
    assert labels.dft_elastic_outputs(none) == labels.dft_relaxed_elastic_outputs(none) == []


def test_structure_set_of_each_group():
    def of(group, sid):
        return structures.structure_set_of("r", group, sid)

    assert of("md", "fixed-normalised__snap03") == "r/structures/md/fixed-normalised.extxyz"
    assert of("al", "g2-pick000") == "r/structures/al/g2.extxyz"
    assert of("heldout", "heldout-tension_x-01") == "r/structures/heldout.extxyz"
    assert of("train", "hydro-000") == "r/structures/train.extxyz"
    assert of("elastic", "anything") == "r/structures/elastic.extxyz"


def test_priorities():
    cfg = load("weight_grid")
    grid_point = training.grid_runs(cfg)[0]
    tuned = grid_point.split("__g")[0]
    plain = next(r for r in cfg["training"]["runs"] if not cfg["training"]["runs"][r].get("tune"))
    assert training.train_priority(cfg, grid_point, "0") == 2
    assert training.train_priority(cfg, tuned, "0") == 2
    assert training.train_priority(cfg, plain, "0") == 1
    assert training.train_priority(cfg, plain, "1") == 0
    assert engine.dft_priority("md", "adaptive__snap00") == 2
    assert engine.dft_priority("heldout", "heldout-x-00") == 2
    assert engine.dft_priority("train", "super-000") == engine.dft_priority("train", "vac-001") == 1
    assert engine.dft_priority("train", "hydro-000") == 0


def test_tuning_wiring():
    cfg = load("weight_grid")
    (tuned,) = [r for r, e in cfg["training"]["runs"].items() if e.get("tune")]
    assert training.tuning_input(cfg, tuned) == [f"results/train/{tuned}/tuning.json"]
    assert training.tuning_input(cfg, "adaptive") == []
    histories = training.tuning_histories(cfg, tuned)
    assert len(histories) == _n_grid(cfg)
    assert all(
        re.fullmatch(rf"results/train/{tuned}__g\d+/seed0/history.csv", h) for h in histories
    )


def test_active_learning_wiring():
    cfg = load("active_learning")
    assert al.al_base(cfg) == "adaptive" and al.al_lineages(cfg) == ["al", "rand"]
    assert training.al_base_of("adaptive__rand2") == "adaptive"
    assert training.al_base_of("adaptive") == "adaptive"
    assert al.al_explore_model(cfg, "1") == "results/train/adaptive/seed0/model.pt"
    assert al.al_committee(cfg, 3) == [
        f"results/train/adaptive__al2/seed{k}/model.pt" for k in range(3)
    ]
    assert al.training_split(cfg, "adaptive__al2") == "results/al/adaptive__al2/train.extxyz"
    assert al.training_split(cfg, "adaptive") == "results/dataset/train.extxyz"
    assert al.statistics_input(cfg, "adaptive") == []
    # generation 2 of the random lineage trains on its random frames of generations 1 and 2
    picked = al.al_dataset_labels(cfg, "adaptive__rand2")
    assert len(picked) == 2 * cfg["active_learning"]["frames_per_generation"]
    assert all("/dft/al/g1-rand" in p or "/dft/al/g2-rand" in p for p in picked)
    # seed + 1000 g + i for exploration, seed + 500000 + i for the held-out paths: all distinct
    seeds = [
        al.al_explore_seed(cfg, g, p) for g in al.al_generations(cfg) for p in al.al_paths(cfg)
    ]
    seeds += [heldout.heldout_seed(cfg, p) for p in heldout.heldout_paths(cfg)]
    assert len(set(seeds)) == len(seeds)
    assert al.al_explore_seed(cfg, 2, al.al_paths(cfg)[1]) == cfg["seed"] + 2000 + 1


def test_dft_input_targets_follow_the_switches():
    outs = ["{group}/{sid}/in", "{group}/{sid}/s.json"]

    def chosen(cfg):
        return targets.dft_input_targets(cfg, "CONV", ["RELAX"], outs)

    cfg = load("default")
    assert chosen(cfg) == ["RELAX"]  # material.relax on: only the relaxation's input
    cfg["material"]["relax"] = False
    got = chosen(cfg)
    assert len(got) == 2 * (_n_training(cfg) + N_ELASTIC) and got[:2] == [
        "train/hydro-000/in",
        "train/hydro-000/s.json",
    ]
    assert chosen(load("vasp_slurm")) == ["CONV"]  # convergence study on
    assert chosen(load("import_only")) == []  # no new DFT


def test_import_sources(monkeypatch):
    monkeypatch.chdir(ROOT)  # the example's source paths are relative to the workflow
    cfg = load("import_only")
    names = [s["name"] for s in cfg["dataset"]["import"]]
    assert imports.import_names(cfg) == names
    for name in names:
        assert imports.import_source(cfg, name)["name"] == name
        assert imports.import_source_files(cfg, name)
    splits = imports.import_source_splits(cfg)
    assert set(splits) <= set(names) and "auto" not in splits.values()


def test_common_smk_stays_thin():
    """Every helper in common.smk is one call into dft2mlip.dag (the logic is tested here)."""
    text = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    bodies = re.findall(r"^def (\w+)\(.*?\):\n((?:    .*\n|\n)+)", text, flags=re.M)
    assert len(bodies) > 80
    for name, body in bodies:
        code = re.sub(r'    """.*?"""\n', "", body, flags=re.S).strip()
        assert code.startswith("return dag_"), (
            f"{name} in common.smk holds logic: move it to dft2mlip.dag"
        )
