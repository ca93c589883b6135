# Helper functions, id lists and wildcard constraints. No rules here.
from pathlib import Path

from dft2mlip import active
from dft2mlip.config import check_config
from dft2mlip.dft.engines import get_engine
from dft2mlip.dft.magnetism import configured_order, material_with_order
from dft2mlip.structures import (
    SECTIONS,
    SUPERCELL_SECTIONS,
    elastic_structure_ids,
    training_structure_ids,
    with_default_widths,
)
from dft2mlip.study import (
    grid_run_names,
    resolve_run_config,
    seed_values,
    study_paths,
    tuned_runs,
)
from dft2mlip.validate.deform import heldout_ids as heldout_structure_ids

# Semantic checks (pseudopotentials, fractions, weights, MD settings) before any job is scheduled.
check_config(config)

RESULTS = config["results_dir"]
LOGS = "logs"
BENCH = "benchmarks"


#: a tuned run's grid point (`<run>__gNN`, study.GRID_SEP) and any other model name, as {run}
#: patterns followed by "/" (the grid points get test metrics only: rule test_metrics)
GRID_POINT = "[A-Za-z0-9][A-Za-z0-9_-]*__g[0-9]+"
NOT_GRID_POINT = "(?![A-Za-z0-9_-]*__g[0-9]+/)[A-Za-z0-9][A-Za-z0-9_-]*"


wildcard_constraints:
    group="train|elastic|md|al|heldout",
    sid="[A-Za-z0-9][A-Za-z0-9_.-]*",
    run="[A-Za-z0-9][A-Za-z0-9_-]*",
    seed="[0-9]+",


def material_config():
    """config["material"] without the keys left at null (no structure file, ideal c/a): rule
    params stay as they were before those keys existed; with dft.magnetic_order, the per-site
    moments every structure made from the cell inherits (structures.ORDER_KEY)."""
    material = {k: v for k, v in config["material"].items() if v is not None}
    return material_with_order(material, config["dft"])  # dft.magnetic_order: moments, cell


def structures_spec():
    """config["structures"], each supercell section without repeat or min_width_A sized by the
    model cutoff (structures.with_default_widths)."""
    return with_default_widths(config["structures"], config["model"]["r_max_A"])


def material_physics():
    """The material keys that define structures (not its display name): a param change reruns."""
    return {k: v for k, v in material_config().items() if k != "name"}


def material_structure_file():
    """[material.structure] when the material's cell comes from a file, else []."""
    path = config["material"].get("structure")
    return [path] if path else []


def training_ids():
    """Ids of the training-candidate structures (known from the config alone)."""
    return training_structure_ids(config["structures"])


def elastic_ids():
    """Ids of the ± strained primitive cells used for elastic constants."""
    return elastic_structure_ids()


def training_shared():
    """Training settings shared by all runs (not the study's keys: runs, seeds, reference run):
    editing one run retrains only that run, adding a seed trains only the new models."""
    study_keys = ("runs", "seeds", "reference_run")  # train.settings.STUDY_LEVEL_KEYS
    return {k: v for k, v in config["training"].items() if k not in study_keys}


def training_runs():
    """Names of the training runs (one model per seed each)."""
    return list(config["training"]["runs"])


def seed_indices():
    """Indices of the training seeds (training.seeds of them; the same seeds for every run)."""
    return list(range(config["training"]["seeds"]))


def seed_value(wildcards):
    """The training seed of model {run}/seed{seed}: config seed + seed index."""
    return seed_values(config["seed"], config["training"]["seeds"])[int(wildcards.seed)]


def grid_runs():
    """Grid-point runs of the tuned fixed runs (`<run>__gNN`), trained with the first seed."""
    return list(grid_run_names(config["training"]["runs"]))


def model_dir(run, seed):
    """Folder of one trained model: results/train/<run>/seed<k>."""
    return f"{RESULTS}/train/{run}/seed{seed}"


def study_models():
    """(run, seed index) of every model the study compares: each run with each seed."""
    return [(run, k) for run in training_runs() for k in seed_indices()]


def per_model(pattern):
    """`pattern` (with {run} and {seed}) for every model of the study, run-major."""
    return [pattern.format(run=run, seed=k) for run, k in study_models()]


def per_grid_point(pattern):
    """`pattern` (with {run}) for every grid point of the tuned runs (first seed)."""
    return [pattern.format(run=g, seed=0) for g in grid_runs()]


def tuning_path(run):
    return f"{RESULTS}/train/{run}/tuning.json"


def tuning_input(wildcards):
    """[the tuned run's chosen grid point] for a tuned run, else []."""
    run = al_base_of(wildcards.run)
    if run in tuned_runs(config["training"]["runs"]):
        return [tuning_path(run)]
    return []


def tuned_run_entry(wildcards):
    """{run: its config entry} of tuned run {run} alone: editing another run does not redo the
    tuning (nor retrain the tuned run)."""
    return {wildcards.run: config["training"]["runs"][wildcards.run]}


def tuning_histories(wildcards):
    """History of each grid point of tuned run {run}, in grid order (first seed)."""
    names = [g for g, (base, _) in grid_run_names(config["training"]["runs"]).items()
             if base == wildcards.run]  # fmt: skip
    return [f"{model_dir(g, 0)}/history.csv" for g in names]


def all_snapshot_label_paths():
    """DFT labels of the snapshots of every run's MD path: every model is checked on all of them
    (the same frames for every run and seed)."""
    if not new_dft():
        return []
    return [label_path("md", s) for run in training_runs() for s in md_snapshot_ids(run)]


def md_snapshot_ids(run):
    """Structure ids of the DFT single points along one run's deformation MD path."""
    n = config["validation"]["md"]["snapshots"]
    return [f"{run}__snap{k:02d}" for k in range(n)]


def train_priority(wildcards):
    """The longest chain first: a tuned run's grid points (grid -> tuning -> its model -> MD ->
    snapshot DFT), then every run's first seed, whose MD path and snapshot DFT then overlap the
    other seeds' training instead of waiting at the end."""
    if int(wildcards.seed) != 0:
        return 0
    tuned = tuned_runs(config["training"]["runs"])
    return 2 if wildcards.run in grid_runs() or wildcards.run in tuned else 1


def dft_priority(wildcards):
    """Longest DFT jobs first, so that none is left alone on the cores at the end of a stage:
    MD snapshots (on the critical path, see train_priority), the supercells and vacancy cells."""
    if wildcards.group in ("md", "heldout"):
        return 2
    big = tuple(SECTIONS[name][0] + "-" for name in SUPERCELL_SECTIONS)
    return 1 if wildcards.sid.startswith(big) else 0


def structure_set_path(group, run=None):
    """The multi-frame extxyz holding one set of structures: results/structures/train.extxyz,
    elastic.extxyz, or md/<run>.extxyz (one file per set keeps the DAG linear in structures)."""
    if group == "md":
        return f"{RESULTS}/structures/md/{run}.extxyz"
    if group == "al":  # one set per active-learning generation (`run` is the generation)
        return f"{RESULTS}/structures/al/g{run}.extxyz"
    if group == "heldout":  # the held-out benchmark's frames (validation.heldout)
        return f"{RESULTS}/structures/heldout.extxyz"
    return f"{RESULTS}/structures/{group}.extxyz"


def md_run_of(sid):
    """The training run whose MD path gave snapshot `sid` (`<run>__snapNN`)."""
    return sid.rsplit("__snap", 1)[0]


def structure_set_of(wildcards):
    """The structure set that holds {group}/{sid}."""
    run = md_run_of(wildcards.sid) if wildcards.group == "md" else None
    if wildcards.group == "heldout":
        return structure_set_path("heldout")
    if wildcards.group == "al":
        run = active.generation_of(wildcards.sid)
    return structure_set_path(wildcards.group, run)


def label_path(group, sid):
    return f"{RESULTS}/dft/{group}/{sid}/label.extxyz"


def structure_files():
    """Output of the `structures` job (training candidates, elastic cells), by set name."""
    return {"train": structure_set_path("train"), "elastic": structure_set_path("elastic")}


def dataset_files():
    """Output of the `dataset` job (extxyz splits, label table and its summary), by name.
    (Plain paths, not rules.dataset.output: in a rule whose input also lists every label, such a
    reference makes Snakemake's DAG building quadratic in the number of labels.)"""
    d = f"{RESULTS}/dataset"
    return {
        "train": f"{d}/train.extxyz",
        "val": f"{d}/val.extxyz",
        "test": f"{d}/test.extxyz",
        "table": f"{d}/labels.parquet",
        "summary": f"{d}/summary.json",
    }


def dft_label_paths():
    """Labels of the training candidates (input of the dataset)."""
    return [label_path("train", s) for s in training_ids()]


def elastic_label_paths():
    """Labels of the ± strained cells ([] without new DFT)."""
    return [label_path("elastic", s) for s in elastic_ids()] if new_dft() else []


def dft_elastic_outputs():
    """[the DFT clamped-ion elastic tensor], [] without new DFT."""
    return [f"{RESULTS}/validate/dft/elastic.json"] if new_dft() else []


def elastic_relaxed_label_paths():
    """Labels of the relaxations in the fixed ± strained cells (relaxed-ion elastic)."""
    return [f"{RESULTS}/validate/dft/relax/{s}/label.extxyz" for s in elastic_ids()]


def dft_relaxed_elastic_outputs():
    """[the DFT relaxed-ion elastic tensor] for an engine with a fixed-cell relaxation (QE, VASP);
    [] otherwise or without new DFT (the report then says it is not provided)."""
    if not new_dft() or not get_engine(dft_engine()).fixed_cell_relaxation:
        return []
    return [f"{RESULTS}/validate/dft/elastic_relaxed.json"]


def run_config(wildcards):
    """The entry the trainer gets for {run} (a configured run or a grid point; a tuned run's
    weights are read from its tuning.json by the script)."""
    return resolve_run_config(al_base_of(wildcards.run), config["training"]["runs"])


def dft_physics_config():
    """The engine's config without its executable: rule params whose change means new labels.
    How runs are launched (dft.labels.execution_settings) is read from the config in the scripts."""
    launch_only = ("executable", "allow_low_cutoff")  # how it runs / a permission, not physics
    cfg = {k: v for k, v in dft_engine_config().items() if k not in launch_only}
    if not new_dft():  # dft.engine none: no labels of our own
        return cfg
    engine = get_engine(dft_engine())
    order = configured_order(config["material"], config["dft"])  # file or dft.magnetic_order
    return engine.physics_config({**config["dft"], engine.name: cfg}, order)  # spin, U


def per_run(pattern):
    """`pattern` (with {run}) expanded over every training run."""
    return expand(pattern, run=training_runs())


def first_seed(pattern):
    """`pattern` (with {run}, {seed}) for the first seed of every run: the detailed sections of
    the report show that model; the study section shows every seed."""
    return [pattern.format(run=run, seed=0) for run in training_runs()]


def study_inputs():
    """Every model's test metrics, elastic tensor and MD-snapshot stress check, the grid points'
    test metrics and the tuning choices: what the study aggregates."""
    return {
        "metrics": per_model(f"{RESULTS}/validate/{{run}}/seed{{seed}}/metrics.json"),
        "elastic": per_model(f"{RESULTS}/validate/{{run}}/seed{{seed}}/elastic_relaxed.json"),
        "md_stress": per_model(f"{RESULTS}/validate/{{run}}/seed{{seed}}/md_stress.json")
        if new_dft()
        else [],
        "dft_elastic": dft_elastic_outputs(),
        "dft_elastic_relaxed": dft_relaxed_elastic_outputs(),
        "grid_metrics": per_grid_point(f"{RESULTS}/validate/{{run}}/seed{{seed}}/metrics.json"),
        "tuning": [tuning_path(run) for run in tuned_runs(config["training"]["runs"])],
    }


def study_files():
    """Output of the `study` job, by name."""
    return {name: str(path) for name, path in study_paths(f"{RESULTS}/study").items()}


def report_inputs():
    """Everything the report puts side by side (first seed of each run in detail, every seed in
    the study section)."""
    return {
        "labels": f"{RESULTS}/dataset/labels.parquet",
        "dft_elastic": dft_elastic_outputs(),
        "metrics": first_seed(f"{RESULTS}/validate/{{run}}/seed{{seed}}/metrics.json"),
        "parity": first_seed(f"{RESULTS}/validate/{{run}}/seed{{seed}}/parity.png"),
        "history": first_seed(f"{RESULTS}/train/{{run}}/seed{{seed}}/history.csv"),
        "elastic": first_seed(f"{RESULTS}/validate/{{run}}/seed{{seed}}/elastic.json"),
        "dft_elastic_relaxed": dft_relaxed_elastic_outputs(),
        "convergence": convergence_outputs(),
        "elastic_relaxed": first_seed(
            f"{RESULTS}/validate/{{run}}/seed{{seed}}/elastic_relaxed.json"
        ),
        "md": per_run(f"{RESULTS}/md/{{run}}/stress_strain.csv"),
        "stress_validation": first_seed(f"{RESULTS}/validate/{{run}}/seed{{seed}}/md_stress.csv")
        if new_dft()
        else [],
        "study": list(study_files().values()),
        "losses": first_seed(f"{RESULTS}/train/{{run}}/seed{{seed}}/model.loss.json"),
        "active_learning": al_outputs(),
        "reference_summary": reference_inputs()["reference_summary"],
        # the first screen: every model's held-out MD-condition stress error beside its test error
        "all_metrics": per_model(f"{RESULTS}/validate/{{run}}/seed{{seed}}/metrics.json"),
        "heldout": per_model(f"{RESULTS}/validate/{{run}}/seed{{seed}}/heldout.json"),
    }


def final_outputs():
    return [f"{RESULTS}/report/summary.md", f"{RESULTS}/provenance.json"]


# ---- DFT engine, convergence study and imported data (dft.smk, convergence.smk, dataset.smk)


def dft_engine():
    """`qe`, `vasp`, or `none` (no new DFT: labels from dataset.import only)."""
    return config["dft"]["engine"]


def new_dft():
    """Whether this run computes DFT (false for dft.engine none: nothing is checked against new
    DFT; the report says so)."""
    return dft_engine() != "none"


def dft_engine_config():
    """The engine's config section (dft.qe or dft.vasp) before the convergence study's choice."""
    return config["dft"].get(dft_engine(), {})


def dft_input_name():
    """The input file a dft_input job declares: pw.in (QE) or INCAR (VASP; POSCAR beside it)."""
    return get_engine(dft_engine()).input_name if new_dft() else "input"


def dft_output_name():
    """The output a dft_run job declares: pw.out (QE) or vasprun.xml (VASP; OUTCAR beside it)."""
    return get_engine(dft_engine()).output_name if new_dft() else "output"


def convergence_enabled():
    return bool(config["dft"]["convergence"]["enabled"])


def convergence_chosen_settings():
    """[the study's chosen-settings file] when the study is on, else []: every DFT input uses it."""
    if not convergence_enabled():
        return []
    return [f"{RESULTS}/convergence/chosen_settings.json"]


def convergence_point_ids():
    """Ids of the study's grid points (cutoff x k-spacing), known from the config alone."""
    from dft2mlip.dft.convergence import ConvergenceSpec

    return [p for p, _, _ in ConvergenceSpec.from_config(config["dft"]["convergence"]).points()]


def convergence_point_results():
    return [f"{RESULTS}/convergence/points/{p}/result.json" for p in convergence_point_ids()]


def import_names():
    """Names of the dataset.import sources."""
    return [source["name"] for source in config["dataset"]["import"]]


def import_source(wildcards):
    """The dataset.import entry named {source}."""
    return next(s for s in config["dataset"]["import"] if s["name"] == wildcards.source)


def import_source_files(wildcards):
    """The existing files an import source reads (resolved when the DAG is built)."""
    from dft2mlip.dft.importing import source_files

    return source_files(import_source(wildcards))


def import_source_splits():
    """Import source name -> its own split (train/val/test) for sources that keep one."""
    return {s["name"]: s["split"] for s in config["dataset"]["import"] if s["split"] != "auto"}


def import_label_paths():
    return [f"{RESULTS}/import/{name}.extxyz" for name in import_names()]


# ---- provenance and DFT-input rendering (provenance.smk)


def all_dft_label_paths():
    """Every DFT label of the run: training candidates, elastic set, MD snapshots of every run."""
    return (
        dft_label_paths()
        + elastic_label_paths()
        + all_snapshot_label_paths()
        + heldout_label_paths()
        + al_label_paths()
    )


def provenance_inputs():
    """The files whose SHA-256 results/provenance.json records (labels first: their provenance
    gives the DFT code version and pseudopotential hashes)."""
    return {
        "labels": all_dft_label_paths(),
        "dataset": list(dataset_files().values()),
        "models": per_model(f"{RESULTS}/train/{{run}}/seed{{seed}}/model.pt"),
        "history": per_model(f"{RESULTS}/train/{{run}}/seed{{seed}}/history.csv"),
        "metrics": per_model(f"{RESULTS}/validate/{{run}}/seed{{seed}}/metrics.json"),
        "study": list(study_files().values()),
        "report": f"{RESULTS}/report/summary.md",
        **reference_inputs(),  # the DFT-relaxed reference cell and its summary, if relaxed
    }


def dft_input_targets():
    """Every file rule dft_input writes for the training candidates and the elastic strain set
    (MD-snapshot inputs need a trained model, so they are not known before training). With the
    convergence study on, every label input depends on its outcome: then only the study's own
    inputs (rule convergence_inputs), so that `make inputs` never runs DFT. Likewise with the
    reference relaxation on (material.relax): only its input (rule relax_input)."""
    if convergence_enabled():
        return [rules.convergence_inputs.output.inputs]
    if not new_dft():
        return []
    if relax_enabled():  # every label's cell comes from the relaxation: only its input
        return list(rules.relax_input.output)
    pairs = [("train", s) for s in training_ids()] + [("elastic", s) for s in elastic_ids()]
    return [str(p).format(group=g, sid=s) for g, s in pairs for p in rules.dft_input.output]


def convergence_outputs():
    """The study's evidence (CSV, plot, chosen settings) when it is on, else []: for the report."""
    if not convergence_enabled():
        return []
    return [
        f"{RESULTS}/convergence/convergence.csv",
        f"{RESULTS}/convergence/convergence_study.png",
        f"{RESULTS}/convergence/chosen_settings.json",
    ]


# ---- active learning (active_learning.smk): lineages "al" and "rand" of the committee run;
# model <run>__al<g> / <run>__rand<g> (generation 0 = <run>), labels al/g<g>-pick<iii>, -rand<iii>


def al_generations():
    """Generations 1..active_learning.generations ([] when off)."""
    return list(range(1, int(config["active_learning"]["generations"]) + 1))


def al_base():
    """The committee's training run."""
    return active.committee_run(config)


def al_base_of(run):
    """The configured run an active-learning model retrains (the run itself otherwise)."""
    parsed = active.parse_model_name(run)
    return parsed[0] if parsed else run


def al_lineages():
    return active.lineages(config["active_learning"]["baseline"])


def al_model(lineage, generation):
    return active.model_name(al_base(), lineage, int(generation))


def al_paths():
    """Names of the exploration MD paths."""
    return list(config["active_learning"]["exploration"])


def al_k():
    return int(config["active_learning"]["frames_per_generation"])


def al_label_paths(lineages=None, upto=None):
    """DFT labels picked by the given lineages (default all) in generations 1..upto."""
    gens = [g for g in al_generations() if upto is None or g <= upto]
    return [label_path("al", sid) for g in gens for lin in (lineages or al_lineages())
            for sid in active.label_ids(g, lin, al_k())]  # fmt: skip


def al_generation_labels(wildcards):
    """Every label of generation {gen} (picks and random frames)."""
    g = int(wildcards.gen)
    ids = [sid for lin in al_lineages() for sid in active.label_ids(g, lin, al_k())]
    return [label_path("al", sid) for sid in ids]


def al_explore_md(wildcards):
    return active.exploration_md(
        config["validation"]["md"], config["active_learning"]["exploration"][wildcards.path]
    )


def al_explore_seed(wildcards):
    """MD seed of one exploration path of one generation (differs between paths and gens)."""
    return int(config["seed"]) + 1000 * int(wildcards.gen) + al_paths().index(wildcards.path)


def al_explore_name(wildcards):
    return f"g{wildcards.gen} {wildcards.path}"


def al_explore_model(wildcards):
    """Seed-0 model of the previous generation of the active lineage."""
    return f"{model_dir(al_model('al', int(wildcards.gen) - 1), 0)}/model.pt"


def al_committee(wildcards):
    """Every seed of the previous generation of the active lineage: the committee."""
    prev = al_model("al", int(wildcards.gen) - 1)
    return [f"{model_dir(prev, k)}/model.pt" for k in seed_indices()]


def al_trajectories(wildcards):
    return [f"{RESULTS}/al/explore/g{wildcards.gen}/{p}/trajectory.extxyz" for p in al_paths()]


def training_split(wildcards):
    """The train split a model is trained on: the dataset's, or an active-learning lineage's
    (dataset train split + its ok picks so far)."""
    if active.parse_model_name(wildcards.run):
        return f"{RESULTS}/al/{wildcards.run}/train.extxyz"
    return dataset_files()["train"]


def statistics_input(wildcards):
    """[generation 0's training set] for an active-learning model (its E0s, scale/shift,
    neighbour count and score scales are fitted there, so both lineages of a seed start from
    the same statistics and, with the same seed, the same parameters), else []."""
    if active.parse_model_name(wildcards.run):
        return [dataset_files()["train"]]
    return []


def al_dataset_labels(wildcards):
    _, lineage, g = active.parse_model_name(wildcards.run)
    return al_label_paths([lineage], g)


def al_models():
    """(model name, seed) of every model of the comparison: generation 0 and every lineage's
    generations."""
    names = [al_base()] + [al_model(lin, g) for g in al_generations() for lin in al_lineages()]
    return [(name, k) for name in names for k in seed_indices()]


def al_per_model(pattern):
    return [pattern.format(run=run, seed=k) for run, k in al_models()]


def al_summary_inputs():
    validate_dir = f"{RESULTS}/validate/{{run}}/seed{{seed}}"
    return {
        "metrics": al_per_model(f"{validate_dir}/metrics.json"),
        "elastic": al_per_model(f"{validate_dir}/elastic_relaxed.json"),
        "md_stress": al_per_model(f"{validate_dir}/md_stress.json"),
        "heldout": al_per_model(f"{validate_dir}/heldout.json"),
        "dft_elastic": dft_elastic_outputs(),
        "dft_elastic_relaxed": dft_relaxed_elastic_outputs(),
        "calibration": [f"{RESULTS}/al/g{g}/calibration.csv" for g in al_generations()],
        "selection": [f"{RESULTS}/al/g{g}/selection.json" for g in al_generations()],
        "labels": [f"{RESULTS}/al/{al_model(lin, g)}/labels.csv"
                   for g in al_generations() for lin in al_lineages()],  # fmt: skip
    }


def al_files():
    d = f"{RESULTS}/al"
    return {"summary": f"{d}/summary.md", "per_seed": f"{d}/per_seed.csv",
            "record": f"{d}/summary.json", "generations": f"{d}/al_generations.png",
            "calibration": f"{d}/al_calibration.png"}  # fmt: skip


def al_outputs():
    """The active-learning summary when generations > 0, else []."""
    return [al_files()["summary"]] if al_generations() else []


# ---- the held-out stress benchmark (validation.heldout; md.smk, validate.smk)


def heldout_config():
    return config["validation"]["heldout"]


def heldout_paths():
    """Names of the held-out benchmark's MD paths ([] when off or without new DFT)."""
    return list(heldout_config()["paths"]) if new_dft() else []


def heldout_ids():
    """Structure ids of the held-out frames (known from the config)."""
    return heldout_structure_ids(heldout_paths(), heldout_config()["frames_per_path"])


def heldout_label_paths():
    """DFT labels of the held-out frames: every model is scored on all of them."""
    return [label_path("heldout", s) for s in heldout_ids()]


def heldout_model():
    """First-seed generation-0 model of the run that drives the held-out paths."""
    run = heldout_config().get("run") or config["training"]["reference_run"]
    return f"{model_dir(run, 0)}/model.pt"


def heldout_md(wildcards):
    """MD settings of one held-out path: validation.md overridden by its entry."""
    entry = heldout_config()["paths"][wildcards.path]
    return active.exploration_md(config["validation"]["md"], entry)


def heldout_seed(wildcards):
    """MD seed of one held-out path (apart from every exploration seed, seed + 1000 g + i)."""
    return int(config["seed"]) + 500_000 + heldout_paths().index(wildcards.path)


def heldout_name(wildcards):
    return f"held-out {wildcards.path}"


def heldout_trajectories():
    return [f"{RESULTS}/heldout/md/{p}/trajectory.extxyz" for p in heldout_paths()]


# ---- the DFT-relaxed reference cell (structures.smk)


def relax_enabled():
    """Whether the material's cell is relaxed with DFT first (material.relax, and new DFT)."""
    return bool(config["material"].get("relax", True)) and new_dft()


def reference_files():
    """Output of the `relax_reference` job, by name."""
    d = f"{RESULTS}/dft/reference"
    return {"structure": f"{d}/relaxed.extxyz", "summary": f"{d}/relax.json"}


def reference_inputs():
    """Inputs of every job that builds cells (structures, deformation and exploration MD,
    snapshots, held-out frames) and of the report: the relaxed reference and its summary, both
    [] when the cell is not relaxed. Their scripts get params relax=relax_enabled() and call
    dft.relax.working_reference, which raises when relax is on and these are missing."""
    if not relax_enabled():
        return {"reference": [], "reference_summary": []}
    files = reference_files()
    return {"reference": [files["structure"]], "reference_summary": [files["summary"]]}
