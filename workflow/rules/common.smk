# Helper functions, id lists and wildcard constraints. No rules here.
from pathlib import Path

from dft2mlip.config import check_config
from dft2mlip.structures import elastic_structure_ids, training_structure_ids

# Semantic checks (pseudopotentials, fractions, weights, MD settings) before any job is scheduled.
check_config(config)

RESULTS = config["results_dir"]
LOGS = "logs"
BENCH = "benchmarks"


wildcard_constraints:
    group="train|elastic|md",
    sid="[A-Za-z0-9][A-Za-z0-9_.-]*",
    run="[A-Za-z0-9][A-Za-z0-9_-]*",


def material_physics():
    """The material keys that define structures (not its display name): a param change reruns."""
    return {k: v for k, v in config["material"].items() if k != "name"}


def training_ids():
    """Ids of the training-candidate structures (known from the config alone)."""
    return training_structure_ids(config["structures"])


def elastic_ids():
    """Ids of the ± strained primitive cells used for elastic constants."""
    return elastic_structure_ids()


def training_shared():
    """Training settings shared by all runs (not `runs`): editing one run retrains only that run."""
    return {k: v for k, v in config["training"].items() if k != "runs"}


def training_runs():
    """Names of the training runs (one model each)."""
    return list(config["training"]["runs"])


def md_snapshot_ids(run):
    """Structure ids of the DFT single points along one run's deformation MD path."""
    n = config["validation"]["md"]["snapshots"]
    return [f"{run}__snap{k:02d}" for k in range(n)]


def structure_set_path(group, run=None):
    """The multi-frame extxyz holding one set of structures: results/structures/train.extxyz,
    elastic.extxyz, or md/<run>.extxyz (one file per set keeps the DAG linear in structures)."""
    if group == "md":
        return f"{RESULTS}/structures/md/{run}.extxyz"
    return f"{RESULTS}/structures/{group}.extxyz"


def md_run_of(sid):
    """The training run whose MD path gave snapshot `sid` (`<run>__snapNN`)."""
    return sid.rsplit("__snap", 1)[0]


def structure_set_of(wildcards):
    """The structure set that holds {group}/{sid}."""
    run = md_run_of(wildcards.sid) if wildcards.group == "md" else None
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
    return [label_path("elastic", s) for s in elastic_ids()]


def elastic_relaxed_label_paths():
    """Labels of the pw.x relaxations in the fixed ± strained cells (relaxed-ion elastic)."""
    return [f"{RESULTS}/validate/dft/relax/{s}/label.extxyz" for s in elastic_ids()]


def dft_relaxed_elastic_outputs():
    """[the DFT relaxed-ion elastic tensor] with Quantum ESPRESSO; [] for engines without the
    fixed-cell relaxation rule yet (the report then says it is not provided)."""
    if config["dft"]["engine"] != "qe":
        return []
    return [f"{RESULTS}/validate/dft/elastic_relaxed.json"]


def md_snapshot_label_paths(wildcards):
    return [label_path("md", s) for s in md_snapshot_ids(wildcards.run)]


def run_config(wildcards):
    """The training-run entry of the config for {run}."""
    return config["training"]["runs"][wildcards.run]


def dft_physics_config():
    """The engine's config without its executable: rule params whose change means new labels.
    How runs are launched (dft.labels.execution_settings) is read from the config in the scripts."""
    return {k: v for k, v in dft_engine_config().items() if k != "executable"}


def per_run(pattern):
    """`pattern` (with {run}) expanded over every training run."""
    return expand(pattern, run=training_runs())


def report_inputs():
    """Everything the report puts side by side."""
    return {
        "labels": f"{RESULTS}/dataset/labels.parquet",
        "dft_elastic": f"{RESULTS}/validate/dft/elastic.json",
        "metrics": per_run(f"{RESULTS}/validate/{{run}}/metrics.json"),
        "parity": per_run(f"{RESULTS}/validate/{{run}}/parity.png"),
        "history": per_run(f"{RESULTS}/train/{{run}}/history.csv"),
        "elastic": per_run(f"{RESULTS}/validate/{{run}}/elastic.json"),
        "dft_elastic_relaxed": dft_relaxed_elastic_outputs(),
        "convergence": convergence_outputs(),
        "elastic_relaxed": per_run(f"{RESULTS}/validate/{{run}}/elastic_relaxed.json"),
        "md": per_run(f"{RESULTS}/md/{{run}}/stress_strain.csv"),
        "stress_validation": per_run(f"{RESULTS}/validate/{{run}}/md_stress.csv"),
    }


def final_outputs():
    return [f"{RESULTS}/report/summary.md", f"{RESULTS}/provenance.json"]


# ---- DFT engine, convergence study and imported data (dft.smk, convergence.smk, dataset.smk)


def dft_engine():
    """`qe` or `vasp` (dft.engine)."""
    return config["dft"]["engine"]


def dft_engine_config():
    """The engine's config section (dft.qe or dft.vasp) before the convergence study's choice."""
    return config["dft"][dft_engine()]


def dft_input_name():
    """The input file a dft_input job declares: pw.in (QE) or INCAR (VASP; POSCAR beside it)."""
    return {"qe": "pw.in", "vasp": "INCAR"}[dft_engine()]


def dft_output_name():
    """The output a dft_run job declares: pw.out (QE) or vasprun.xml (VASP; OUTCAR beside it)."""
    return {"qe": "pw.out", "vasp": "vasprun.xml"}[dft_engine()]


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


def import_label_paths():
    return [f"{RESULTS}/import/{name}.extxyz" for name in import_names()]


# ---- provenance and DFT-input rendering (provenance.smk)


def all_dft_label_paths():
    """Every DFT label of the run: training candidates, elastic set, MD snapshots of every run."""
    md = [label_path("md", s) for run in training_runs() for s in md_snapshot_ids(run)]
    return dft_label_paths() + elastic_label_paths() + md


def provenance_inputs():
    """The files whose SHA-256 results/provenance.json records (labels first: their provenance
    gives the DFT code version and pseudopotential hashes)."""
    return {
        "labels": all_dft_label_paths(),
        "dataset": list(dataset_files().values()),
        "models": per_run(f"{RESULTS}/train/{{run}}/model.pt"),
        "history": per_run(f"{RESULTS}/train/{{run}}/history.csv"),
        "metrics": per_run(f"{RESULTS}/validate/{{run}}/metrics.json"),
        "report": f"{RESULTS}/report/summary.md",
    }


def dft_input_targets():
    """Every file rule dft_input writes for the training candidates and the elastic strain set
    (MD-snapshot inputs need a trained model, so they are not known before training). With the
    convergence study on, every label input depends on its outcome: then only the study's own
    inputs (rule convergence_inputs), so that `make inputs` never runs DFT."""
    if convergence_enabled():
        return [rules.convergence_inputs.output.inputs]
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
