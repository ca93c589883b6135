"""What the aggregating jobs gather: the study, the report, the provenance record and `rule all`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dft2mlip.dag import paths
from dft2mlip.dag.active_learning import al_label_paths, al_outputs
from dft2mlip.dag.engine import (
    convergence_enabled,
    convergence_outputs,
    new_dft,
    reference_inputs,
    relax_enabled,
)
from dft2mlip.dag.heldout import heldout_label_paths
from dft2mlip.dag.labels import (
    all_snapshot_label_paths,
    dft_elastic_outputs,
    dft_input_pairs,
    dft_label_paths,
    dft_relaxed_elastic_outputs,
    elastic_label_paths,
    family_label_paths,
    family_offsets_outputs,
)
from dft2mlip.dag.training import first_seed, per_grid_point, per_model, per_run, tuning_paths


def study_inputs(config: Mapping) -> dict[str, list[str]]:
    """Every model's test metrics, elastic tensor and MD-snapshot stress check, the grid points'
    test metrics and the tuning choices: what the study aggregates."""
    validate_dir = f"{config['results_dir']}/validate/{{run}}/seed{{seed}}"
    return {
        "metrics": per_model(config, f"{validate_dir}/metrics.json"),
        "elastic": per_model(config, f"{validate_dir}/elastic_relaxed.json"),
        "md_stress": per_model(config, f"{validate_dir}/md_stress.json") if new_dft(config) else [],
        "dft_elastic": dft_elastic_outputs(config),
        "dft_elastic_relaxed": dft_relaxed_elastic_outputs(config),
        "grid_metrics": per_grid_point(config, f"{validate_dir}/metrics.json"),
        "tuning": tuning_paths(config),
    }


def report_inputs(config: Mapping) -> dict:
    """Everything the report puts side by side (first seed of each run in detail, every seed in
    the study section)."""
    results = config["results_dir"]
    validate_dir = f"{results}/validate/{{run}}/seed{{seed}}"
    train_dir = f"{results}/train/{{run}}/seed{{seed}}"
    return {
        "labels": paths.dataset_files(results)["table"],
        "dft_elastic": dft_elastic_outputs(config),
        "metrics": first_seed(config, f"{validate_dir}/metrics.json"),
        "parity": first_seed(config, f"{validate_dir}/parity.png"),
        "history": first_seed(config, f"{train_dir}/history.csv"),
        "elastic": first_seed(config, f"{validate_dir}/elastic.json"),
        "dft_elastic_relaxed": dft_relaxed_elastic_outputs(config),
        "convergence": convergence_outputs(config),
        "elastic_relaxed": first_seed(config, f"{validate_dir}/elastic_relaxed.json"),
        "md": per_run(config, f"{results}/md/{{run}}/stress_strain.csv"),
        "stress_validation": first_seed(config, f"{validate_dir}/md_stress.csv")
        if new_dft(config)
        else [],
        "study": list(paths.study_files(results).values()),
        "losses": first_seed(config, f"{train_dir}/model.loss.json"),
        "active_learning": al_outputs(config),
        "reference_summary": reference_inputs(config)["reference_summary"],
        "families": family_offsets_outputs(config),  # are the cell families' labels consistent?
        # the first screen: every model's held-out MD-condition stress error beside its test error
        "all_metrics": per_model(config, f"{validate_dir}/metrics.json"),
        "heldout": per_model(config, f"{validate_dir}/heldout.json"),
    }


def final_outputs(config: Mapping) -> list[str]:
    """The targets of `rule all`: the report's summary and the provenance record."""
    results = config["results_dir"]
    return [f"{results}/report/summary.md", f"{results}/provenance.json"]


def all_dft_label_paths(config: Mapping) -> list[str]:
    """Every DFT label of the run: training candidates, elastic set, MD snapshots of every run,
    held-out frames, active-learning picks, the cross-family check."""
    return (
        dft_label_paths(config)
        + family_label_paths(config)
        + elastic_label_paths(config)
        + all_snapshot_label_paths(config)
        + heldout_label_paths(config)
        + al_label_paths(config)
    )


def provenance_inputs(config: Mapping) -> dict:
    """The files whose SHA-256 results/provenance.json records (labels first: their provenance
    gives the DFT code version and pseudopotential hashes)."""
    results = config["results_dir"]
    return {
        "labels": all_dft_label_paths(config),
        "dataset": list(paths.dataset_files(results).values()),
        "models": per_model(config, f"{results}/train/{{run}}/seed{{seed}}/model.pt"),
        "history": per_model(config, f"{results}/train/{{run}}/seed{{seed}}/history.csv"),
        "metrics": per_model(config, f"{results}/validate/{{run}}/seed{{seed}}/metrics.json"),
        "study": list(paths.study_files(results).values()),
        "report": f"{results}/report/summary.md",
        **reference_inputs(config),  # the DFT-relaxed reference cell and its summary, if relaxed
    }


def dft_input_targets(
    config: Mapping, convergence_inputs, relax_inputs: Sequence, dft_input_outputs: Sequence
) -> list:
    """Every file rule dft_input writes for the training candidates and the elastic strain set
    (MD-snapshot inputs need a trained model, so they are not known before training). With the
    convergence study on, every label input depends on its outcome: then only the study's own
    inputs (`convergence_inputs`, rule convergence_inputs' output), so that `make inputs` never
    runs DFT. Likewise with the reference relaxation on (material.relax): only its input
    (`relax_inputs`, rule relax_input's output). `dft_input_outputs`: rule dft_input's output
    patterns (with {group} and {sid})."""
    if convergence_enabled(config):
        return [convergence_inputs]
    if not new_dft(config):
        return []
    if relax_enabled(config):  # every label's cell comes from the relaxation: only its input
        return list(relax_inputs)
    pairs = dft_input_pairs(config)
    return [str(p).format(group=g, sid=s) for g, s in pairs for p in dft_input_outputs]
