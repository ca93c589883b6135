"""Active learning, generation by generation: lineages "al" and "rand" of the committee run;
model <run>__al<g> / <run>__rand<g> (generation 0 = <run>), labels al/g<g>-pick<iii>, -rand<iii>."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dft2mlip import active
from dft2mlip.dag import paths
from dft2mlip.dag.labels import dft_elastic_outputs, dft_relaxed_elastic_outputs
from dft2mlip.dag.training import seed_indices


def al_generations(config: Mapping) -> list[int]:
    """Generations 1..active_learning.generations ([] when off)."""
    return list(range(1, int(config["active_learning"]["generations"]) + 1))


def al_base(config: Mapping) -> str:
    """The committee's training run."""
    return active.committee_run(config)


def al_lineages(config: Mapping) -> list[str]:
    """The lineages compared: "al", and "rand" with the random baseline."""
    return active.lineages(config["active_learning"]["baseline"])


def al_model(config: Mapping, lineage: str, generation: int | str) -> str:
    """Model name of one lineage's generation."""
    return active.model_name(al_base(config), lineage, int(generation))


def al_paths(config: Mapping) -> list[str]:
    """Names of the exploration MD paths."""
    return list(config["active_learning"]["exploration"])


def al_k(config: Mapping) -> int:
    """Frames picked per generation and lineage."""
    return int(config["active_learning"]["frames_per_generation"])


def al_label_paths(
    config: Mapping, lineages: Sequence[str] | None = None, upto: int | None = None
) -> list[str]:
    """DFT labels picked by the given lineages (default all) in generations 1..upto."""
    results = config["results_dir"]
    gens = [g for g in al_generations(config) if upto is None or g <= upto]
    return [paths.label_path(results, "al", sid) for g in gens
            for lin in (lineages or al_lineages(config))
            for sid in active.label_ids(g, lin, al_k(config))]  # fmt: skip


def al_generation_labels(config: Mapping, gen: int | str) -> list[str]:
    """Every label of generation `gen` (picks and random frames)."""
    g = int(gen)
    ids = [sid for lin in al_lineages(config) for sid in active.label_ids(g, lin, al_k(config))]
    return [paths.label_path(config["results_dir"], "al", sid) for sid in ids]


def al_explore_md(config: Mapping, path: str) -> dict:
    """MD settings of exploration path `path`: validation.md overridden by its entry."""
    return active.exploration_md(
        config["validation"]["md"], config["active_learning"]["exploration"][path]
    )


def al_explore_seed(config: Mapping, gen: int | str, path: str) -> int:
    """MD seed of one exploration path of one generation (differs between paths and gens)."""
    return int(config["seed"]) + 1000 * int(gen) + al_paths(config).index(path)


def al_explore_name(gen: int | str, path: str) -> str:
    """The name the MD script gives one exploration path of one generation."""
    return f"g{gen} {path}"


def al_explore_model(config: Mapping, gen: int | str) -> str:
    """Seed-0 model of the previous generation of the active lineage."""
    prev = al_model(config, "al", int(gen) - 1)
    return f"{paths.model_dir(config['results_dir'], prev, 0)}/model.pt"


def al_committee(config: Mapping, gen: int | str) -> list[str]:
    """Every seed of the previous generation of the active lineage: the committee."""
    prev = al_model(config, "al", int(gen) - 1)
    results = config["results_dir"]
    return [f"{paths.model_dir(results, prev, k)}/model.pt" for k in seed_indices(config)]


def al_trajectories(config: Mapping, gen: int | str) -> list[str]:
    """The exploration trajectories of generation `gen` (its candidate pool)."""
    results = config["results_dir"]
    return [f"{results}/al/explore/g{gen}/{p}/trajectory.extxyz" for p in al_paths(config)]


def training_split(config: Mapping, run: str) -> str:
    """The train split a model is trained on: the dataset's, or an active-learning lineage's
    (dataset train split + its ok picks so far)."""
    if active.parse_model_name(run):
        return f"{config['results_dir']}/al/{run}/train.extxyz"
    return paths.dataset_files(config["results_dir"])["train"]


def statistics_input(config: Mapping, run: str) -> list[str]:
    """[generation 0's training set] for an active-learning model (its E0s, scale/shift,
    neighbour count and score scales are fitted there, so both lineages of a seed start from
    the same statistics and, with the same seed, the same parameters), else []."""
    if active.parse_model_name(run):
        return [paths.dataset_files(config["results_dir"])["train"]]
    return []


def al_dataset_labels(config: Mapping, run: str) -> list[str]:
    """The picks active-learning model `run` is trained on (its lineage, generations 1..g)."""
    _, lineage, g = active.parse_model_name(run)
    return al_label_paths(config, [lineage], g)


def al_models(config: Mapping) -> list[tuple[str, int]]:
    """(model name, seed) of every model of the comparison: generation 0 and every lineage's
    generations."""
    names = [al_base(config)] + [
        al_model(config, lin, g) for g in al_generations(config) for lin in al_lineages(config)
    ]
    return [(name, k) for name in names for k in seed_indices(config)]


def al_per_model(config: Mapping, pattern: str) -> list[str]:
    """`pattern` (with {run} and {seed}) for every model of the comparison."""
    return [pattern.format(run=run, seed=k) for run, k in al_models(config)]


def al_summary_inputs(config: Mapping) -> dict[str, list[str]]:
    """Inputs of the `al_summary` job, by name."""
    results = config["results_dir"]
    validate_dir = f"{results}/validate/{{run}}/seed{{seed}}"
    gens, lins = al_generations(config), al_lineages(config)
    return {
        "metrics": al_per_model(config, f"{validate_dir}/metrics.json"),
        "elastic": al_per_model(config, f"{validate_dir}/elastic_relaxed.json"),
        "md_stress": al_per_model(config, f"{validate_dir}/md_stress.json"),
        "heldout": al_per_model(config, f"{validate_dir}/heldout.json"),
        "dft_elastic": dft_elastic_outputs(config),
        "dft_elastic_relaxed": dft_relaxed_elastic_outputs(config),
        "calibration": [f"{results}/al/g{g}/calibration.csv" for g in gens],
        "selection": [f"{results}/al/g{g}/selection.json" for g in gens],
        "labels": [
            f"{results}/al/{al_model(config, lin, g)}/labels.csv" for g in gens for lin in lins
        ],  # fmt: skip
    }


def al_outputs(config: Mapping) -> list[str]:
    """The active-learning summary when generations > 0, else []."""
    return [paths.al_files(config["results_dir"])["summary"]] if al_generations(config) else []
