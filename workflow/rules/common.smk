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


def training_ids():
    """Ids of the training-candidate structures (known from the config alone)."""
    return training_structure_ids(config["structures"])


def elastic_ids():
    """Ids of the ± strained primitive cells used for elastic constants."""
    return elastic_structure_ids()


def training_runs():
    """Names of the training runs (one model each)."""
    return list(config["training"]["runs"])


def md_snapshot_ids(run):
    """Structure ids of the DFT single points along one run's deformation MD path."""
    n = config["validation"]["md"]["snapshots"]
    return [f"{run}__snap{k:02d}" for k in range(n)]


def structure_path(group, sid):
    return f"{RESULTS}/structures/{group}/{sid}.extxyz"


def label_path(group, sid):
    return f"{RESULTS}/dft/{group}/{sid}/label.extxyz"


def structure_files():
    """Every structure file the `structures` rule writes (training + elastic)."""
    return [structure_path("train", s) for s in training_ids()] + [
        structure_path("elastic", s) for s in elastic_ids()
    ]


def dft_label_paths():
    """Labels of the training candidates (input of the dataset)."""
    return [label_path("train", s) for s in training_ids()]


def elastic_label_paths():
    return [label_path("elastic", s) for s in elastic_ids()]


def elastic_structure_paths():
    return [structure_path("elastic", s) for s in elastic_ids()]


def md_snapshot_structure_paths(wildcards):
    return [structure_path("md", s) for s in md_snapshot_ids(wildcards.run)]


def md_snapshot_label_paths(wildcards):
    return [label_path("md", s) for s in md_snapshot_ids(wildcards.run)]


def dft_structure_input(wildcards):
    return structure_path(wildcards.group, wildcards.sid)


def run_config(wildcards):
    """The training-run entry of the config for {run}."""
    return config["training"]["runs"][wildcards.run]


def mpi_launcher(wildcards):
    """The MPI launch prefix; a function so that its {nprocs} is not read as a wildcard."""
    return config["dft"]["mpi_launcher"]


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
        "md": per_run(f"{RESULTS}/md/{{run}}/stress_strain.csv"),
        "stress_validation": per_run(f"{RESULTS}/validate/{{run}}/md_stress.csv"),
    }


def final_outputs():
    return [f"{RESULTS}/report/summary.md"]
