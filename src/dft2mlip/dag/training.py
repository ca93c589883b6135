"""The models the DAG trains: training runs, seeds, the tuned runs' grid points, priorities."""

from __future__ import annotations

from collections.abc import Mapping

from dft2mlip import active
from dft2mlip.dag import paths
from dft2mlip.study import grid_run_names, resolve_run_config, seed_values, tuned_runs


def training_shared(config: Mapping) -> dict:
    """Training settings shared by all runs (not the study's keys: runs, seeds, reference run):
    editing one run retrains only that run, adding a seed trains only the new models."""
    study_keys = ("runs", "seeds", "reference_run")  # train.settings.STUDY_LEVEL_KEYS
    return {k: v for k, v in config["training"].items() if k not in study_keys}


def training_runs(config: Mapping) -> list[str]:
    """Names of the training runs (one model per seed each)."""
    return list(config["training"]["runs"])


def seed_indices(config: Mapping) -> list[int]:
    """Indices of the training seeds (training.seeds of them; the same seeds for every run)."""
    return list(range(config["training"]["seeds"]))


def seed_value(config: Mapping, seed_index: int | str) -> int:
    """The training seed of model <run>/seed<seed_index>: config seed + seed index."""
    return seed_values(config["seed"], config["training"]["seeds"])[int(seed_index)]


def grid_runs(config: Mapping) -> list[str]:
    """Grid-point runs of the tuned fixed runs (`<run>__gNN`), trained with the first seed."""
    return list(grid_run_names(config["training"]["runs"]))


def study_models(config: Mapping) -> list[tuple[str, int]]:
    """(run, seed index) of every model the study compares: each run with each seed."""
    return [(run, k) for run in training_runs(config) for k in seed_indices(config)]


def per_model(config: Mapping, pattern: str) -> list[str]:
    """`pattern` (with {run} and {seed}) for every model of the study, run-major."""
    return [pattern.format(run=run, seed=k) for run, k in study_models(config)]


def per_grid_point(config: Mapping, pattern: str) -> list[str]:
    """`pattern` (with {run}) for every grid point of the tuned runs (first seed)."""
    return [pattern.format(run=g, seed=0) for g in grid_runs(config)]


def per_run(config: Mapping, pattern: str) -> list[str]:
    """`pattern` (with {run}) expanded over every training run."""
    return [pattern.format(run=run) for run in training_runs(config)]


def first_seed(config: Mapping, pattern: str) -> list[str]:
    """`pattern` (with {run}, {seed}) for the first seed of every run: the detailed sections of
    the report show that model; the study section shows every seed."""
    return [pattern.format(run=run, seed=0) for run in training_runs(config)]


def al_base_of(run: str) -> str:
    """The configured run an active-learning model retrains (the run itself otherwise)."""
    parsed = active.parse_model_name(run)
    return parsed[0] if parsed else run


def tuning_input(config: Mapping, run: str) -> list[str]:
    """[the tuned run's chosen grid point] for a tuned run (or an active-learning model of
    one), else []."""
    base = al_base_of(run)
    if base in tuned_runs(config["training"]["runs"]):
        return [paths.tuning_path(config["results_dir"], base)]
    return []


def tuning_paths(config: Mapping) -> list[str]:
    """The chosen grid point of every tuned run."""
    results = config["results_dir"]
    return [paths.tuning_path(results, run) for run in tuned_runs(config["training"]["runs"])]


def tuned_run_entry(config: Mapping, run: str) -> dict:
    """{run: its config entry} of tuned run `run` alone: editing another run does not redo the
    tuning (nor retrain the tuned run)."""
    return {run: config["training"]["runs"][run]}


def tuning_histories(config: Mapping, run: str) -> list[str]:
    """History of each grid point of tuned run `run`, in grid order (first seed)."""
    names = [g for g, (base, _) in grid_run_names(config["training"]["runs"]).items()
             if base == run]  # fmt: skip
    return [f"{paths.model_dir(config['results_dir'], g, 0)}/history.csv" for g in names]


def run_config(config: Mapping, run: str) -> dict:
    """The entry the trainer gets for `run` (a configured run or a grid point; a tuned run's
    weights are read from its tuning.json by the script)."""
    return resolve_run_config(al_base_of(run), config["training"]["runs"])


def train_priority(config: Mapping, run: str, seed_index: int | str) -> int:
    """The longest chain first: a tuned run's grid points (grid -> tuning -> its model -> MD ->
    snapshot DFT), then every run's first seed, whose MD path and snapshot DFT then overlap the
    other seeds' training instead of waiting at the end."""
    if int(seed_index) != 0:
        return 0
    tuned = tuned_runs(config["training"]["runs"])
    return 2 if run in grid_runs(config) or run in tuned else 1
