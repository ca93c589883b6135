# Input functions, id lists and wildcard constraints. No rules here. Each function is a thin
# call into dft2mlip.dag (the ids, paths and per-stage selections, unit-tested in
# tests/test_dag.py): it passes the config and unpacks wildcards, nothing more.
from dft2mlip.config import check_config
from dft2mlip.dag import active_learning as dag_al
from dft2mlip.dag import engine as dag_engine
from dft2mlip.dag import heldout as dag_heldout
from dft2mlip.dag import imports as dag_imports
from dft2mlip.dag import labels as dag_labels
from dft2mlip.dag import paths as dag_paths
from dft2mlip.dag import structures as dag_structures
from dft2mlip.dag import targets as dag_targets
from dft2mlip.dag import training as dag_training

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
    group="train|elastic|md|al|heldout|families",
    sid="[A-Za-z0-9][A-Za-z0-9_.-]*",
    run="[A-Za-z0-9][A-Za-z0-9_-]*",
    seed="[0-9]+",


def material_config():
    return dag_structures.material_config(config)


def structures_spec():
    return dag_structures.structures_spec(config)


def material_physics():
    return dag_structures.material_physics(config)


def material_structure_file():
    return dag_structures.material_structure_file(config)


def training_ids():
    return dag_structures.training_ids(config)


def elastic_ids():
    return dag_structures.elastic_ids()


def training_shared():
    return dag_training.training_shared(config)


def training_runs():
    return dag_training.training_runs(config)


def seed_indices():
    return dag_training.seed_indices(config)


def seed_value(wildcards):
    return dag_training.seed_value(config, wildcards.seed)


def grid_runs():
    return dag_training.grid_runs(config)


def model_dir(run, seed):
    return dag_paths.model_dir(RESULTS, run, seed)


def study_models():
    return dag_training.study_models(config)


def per_model(pattern):
    return dag_training.per_model(config, pattern)


def per_grid_point(pattern):
    return dag_training.per_grid_point(config, pattern)


def tuning_path(run):
    return dag_paths.tuning_path(RESULTS, run)


def tuning_input(wildcards):
    return dag_training.tuning_input(config, wildcards.run)


def tuned_run_entry(wildcards):
    return dag_training.tuned_run_entry(config, wildcards.run)


def tuning_histories(wildcards):
    return dag_training.tuning_histories(config, wildcards.run)


def all_snapshot_label_paths():
    return dag_labels.all_snapshot_label_paths(config)


def md_snapshot_ids(run):
    return dag_structures.md_snapshot_ids(config, run)


def train_priority(wildcards):
    return dag_training.train_priority(config, wildcards.run, wildcards.seed)


def dft_priority(wildcards):
    return dag_engine.dft_priority(wildcards.group, wildcards.sid)


def structure_set_path(group, run=None):
    return dag_paths.structure_set_path(RESULTS, group, run)


def md_run_of(sid):
    return dag_structures.md_run_of(sid)


def structure_set_of(wildcards):
    return dag_structures.structure_set_of(RESULTS, wildcards.group, wildcards.sid)


def label_path(group, sid):
    return dag_paths.label_path(RESULTS, group, sid)


def structure_files():
    return dag_paths.structure_files(RESULTS)


def dataset_files():
    return dag_paths.dataset_files(RESULTS)


def dft_label_paths():
    return dag_labels.dft_label_paths(config)


def elastic_label_paths():
    return dag_labels.elastic_label_paths(config)


def dft_elastic_outputs():
    return dag_labels.dft_elastic_outputs(config)


def elastic_relaxed_label_paths():
    return dag_labels.elastic_relaxed_label_paths(config)


def dft_relaxed_elastic_outputs():
    return dag_labels.dft_relaxed_elastic_outputs(config)


def run_config(wildcards):
    return dag_training.run_config(config, wildcards.run)


def dft_physics_config():
    return dag_engine.dft_physics_config(config)


def per_run(pattern):
    return dag_training.per_run(config, pattern)


def first_seed(pattern):
    return dag_training.first_seed(config, pattern)


def study_inputs():
    return dag_targets.study_inputs(config)


def study_files():
    return dag_paths.study_files(RESULTS)


def report_inputs():
    return dag_targets.report_inputs(config)


def final_outputs():
    return dag_targets.final_outputs(config)


# ---- DFT engine, convergence study and imported data (dft.smk, convergence.smk, dataset.smk)


def dft_engine():
    return dag_engine.dft_engine(config)


def new_dft():
    return dag_engine.new_dft(config)


def dft_engine_config():
    return dag_engine.dft_engine_config(config)


def dft_input_name():
    return dag_engine.dft_input_name(config)


def dft_output_name():
    return dag_engine.dft_output_name(config)


def convergence_enabled():
    return dag_engine.convergence_enabled(config)


def convergence_chosen_settings():
    return dag_engine.convergence_chosen_settings(config)


def convergence_point_ids():
    return dag_engine.convergence_point_ids(config)


def convergence_point_results():
    return dag_engine.convergence_point_results(config)


def import_names():
    return dag_imports.import_names(config)


def import_source(wildcards):
    return dag_imports.import_source(config, wildcards.source)


def import_source_files(wildcards):
    return dag_imports.import_source_files(config, wildcards.source)


def import_source_splits():
    return dag_imports.import_source_splits(config)


def import_label_paths():
    return dag_imports.import_label_paths(config)


# ---- provenance and DFT-input rendering (provenance.smk)


def all_dft_label_paths():
    return dag_targets.all_dft_label_paths(config)


def provenance_inputs():
    return dag_targets.provenance_inputs(config)


def dft_input_targets():
    """The rules' outputs are Snakemake objects: passed in, the choice is dag_targets'."""
    return dag_targets.dft_input_targets(
        config,
        rules.convergence_inputs.output.inputs,
        rules.relax_input.output,
        rules.dft_input.output,
    )


def convergence_outputs():
    return dag_engine.convergence_outputs(config)


# ---- active learning (active_learning.smk): dft2mlip.dag.active_learning


def al_generations():
    return dag_al.al_generations(config)


def al_base():
    return dag_al.al_base(config)


def al_base_of(run):
    return dag_training.al_base_of(run)


def al_lineages():
    return dag_al.al_lineages(config)


def al_model(lineage, generation):
    return dag_al.al_model(config, lineage, generation)


def al_paths():
    return dag_al.al_paths(config)


def al_k():
    return dag_al.al_k(config)


def al_label_paths(lineages=None, upto=None):
    return dag_al.al_label_paths(config, lineages, upto)


def al_generation_labels(wildcards):
    return dag_al.al_generation_labels(config, wildcards.gen)


def al_explore_md(wildcards):
    return dag_al.al_explore_md(config, wildcards.path)


def al_explore_seed(wildcards):
    return dag_al.al_explore_seed(config, wildcards.gen, wildcards.path)


def al_explore_name(wildcards):
    return dag_al.al_explore_name(wildcards.gen, wildcards.path)


def al_explore_model(wildcards):
    return dag_al.al_explore_model(config, wildcards.gen)


def al_committee(wildcards):
    return dag_al.al_committee(config, wildcards.gen)


def al_trajectories(wildcards):
    return dag_al.al_trajectories(config, wildcards.gen)


def training_split(wildcards):
    return dag_al.training_split(config, wildcards.run)


def statistics_input(wildcards):
    return dag_al.statistics_input(config, wildcards.run)


def al_dataset_labels(wildcards):
    return dag_al.al_dataset_labels(config, wildcards.run)


def al_models():
    return dag_al.al_models(config)


def al_per_model(pattern):
    return dag_al.al_per_model(config, pattern)


def al_summary_inputs():
    return dag_al.al_summary_inputs(config)


def al_files():
    return dag_paths.al_files(RESULTS)


def al_outputs():
    return dag_al.al_outputs(config)


# ---- the held-out stress benchmark (validation.heldout; md.smk, validate.smk)


def heldout_config():
    return dag_heldout.heldout_config(config)


def heldout_paths():
    return dag_heldout.heldout_paths(config)


def heldout_ids():
    return dag_heldout.heldout_ids(config)


def heldout_label_paths():
    return dag_heldout.heldout_label_paths(config)


def heldout_model():
    return dag_heldout.heldout_model(config)


def heldout_md(wildcards):
    return dag_heldout.heldout_md(config, wildcards.path)


def heldout_seed(wildcards):
    return dag_heldout.heldout_seed(config, wildcards.path)


def heldout_name(wildcards):
    return dag_heldout.heldout_name(wildcards.path)


def heldout_trajectories():
    return dag_heldout.heldout_trajectories(config)


# ---- the DFT-relaxed reference cell (structures.smk)


def relax_enabled():
    return dag_engine.relax_enabled(config)


def reference_files():
    return dag_paths.reference_files(RESULTS)


def reference_inputs():
    return dag_engine.reference_inputs(config)


def family_ids():
    return dag_labels.family_ids(config)


def family_label_paths():
    return dag_labels.family_label_paths(config)


def family_offsets_path():
    return dag_paths.family_offsets_path(RESULTS)
