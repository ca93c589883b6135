# Active learning, generation by generation (active_learning.generations of them; ids from the
# config). Generation g: exploration MD with the active lineage's generation g-1 seed-0 model ->
# every frame scored by its committee (every seed) -> top-k diverse frames (and k random frames
# from the same pool) -> DFT labels al/g<g>-pick<iii> (al/g<g>-rand<iii>) through dft_input and
# dft_run -> each lineage's train set (dataset train split + its ok picks of generations 1..g)
# -> rule train retrains every seed as run <run>__al<g> (<run>__rand<g>) -> the usual
# validation rules (deformation_md, validate_model).


rule al_explore:
    """One exploration MD path of one generation (deformation MD, settings from the path entry
    over validation.md) with the previous generation's seed-0 model; every frame is a candidate."""
    input:
        model=al_explore_model,
        **reference_inputs(),
    output:
        trajectory=f"{RESULTS}/al/explore/g{{gen}}/{{path}}/trajectory.extxyz",
        csv=f"{RESULTS}/al/explore/g{{gen}}/{{path}}/stress_strain.csv",
        plot=f"{RESULTS}/al/explore/g{{gen}}/{{path}}/stress_strain.png",
    log:
        f"{LOGS}/al_explore/g{{gen}}/{{path}}.log",
    benchmark:
        f"{BENCH}/al_explore/g{{gen}}/{{path}}.tsv"
    wildcard_constraints:
        gen="[1-9][0-9]*",
        path="[A-Za-z0-9][A-Za-z0-9_-]*",
    params:
        material=material_config(),
        relax=relax_enabled(),
        md=al_explore_md,
        seed=al_explore_seed,
        name=al_explore_name,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/deformation_md.py"


rule al_select:
    """Score every frame of the generation's pool by committee disagreement (E per atom, F, S),
    pick the top k with the diversity rule, draw k random frames for the baseline: the
    generation's structure set for DFT."""
    input:
        trajectories=al_trajectories,
        committee=al_committee,
    output:
        scores=f"{RESULTS}/al/g{{gen}}/scores.csv",
        selection=f"{RESULTS}/al/g{{gen}}/selection.json",
        structures=structure_set_path("al", "{gen}"),
    log:
        f"{LOGS}/al_select/g{{gen}}.log",
    benchmark:
        f"{BENCH}/al_select/g{{gen}}.tsv"
    wildcard_constraints:
        gen="[1-9][0-9]*",
    params:
        paths=al_paths(),
        k=al_k(),
        score=config["active_learning"]["score"],
        min_gap=config["active_learning"]["min_frame_gap"],
        selection=config["active_learning"]["selection"],
        baseline=config["active_learning"]["baseline"],
        seed=config["seed"],
    threads: 1
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/al_select.py"


rule al_dataset:
    """A lineage's training set of one generation: the dataset's train split plus every ok pick
    of generations 1..g; every pick's status is listed (failed labels are never trained on)."""
    input:
        base=dataset_files()["train"],
        labels=al_dataset_labels,
    output:
        train=f"{RESULTS}/al/{{run}}/train.extxyz",
        labels=f"{RESULTS}/al/{{run}}/labels.csv",
    log:
        f"{LOGS}/al_dataset/{{run}}.log",
    benchmark:
        f"{BENCH}/al_dataset/{{run}}.tsv"
    wildcard_constraints:
        run="[A-Za-z0-9][A-Za-z0-9_-]*__(al|rand)[1-9][0-9]*",
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/al_dataset.py"


rule al_calibration:
    """Committee disagreement vs the committee mean's true DFT error on every label of one
    generation (picks and random frames)."""
    input:
        labels=al_generation_labels,
        committee=al_committee,
    output:
        table=f"{RESULTS}/al/g{{gen}}/calibration.csv",
    log:
        f"{LOGS}/al_calibration/g{{gen}}.log",
    benchmark:
        f"{BENCH}/al_calibration/g{{gen}}.tsv"
    wildcard_constraints:
        gen="[1-9][0-9]*",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/al_calibration.py"


rule al_summary:
    """Per generation and lineage: test errors, elastic error, MD-snapshot stress error (mean
    and spread over seeds), the verdict active vs random, calibration and label statuses."""
    input:
        **al_summary_inputs(),
    output:
        **al_files(),
    log:
        f"{LOGS}/al_summary.log",
    benchmark:
        f"{BENCH}/al_summary.tsv"
    params:
        models=al_models(),
        base=al_base(),
        generations=len(al_generations()),
        settings=config["active_learning"],
        n_seeds=config["training"]["seeds"],
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/al_summary.py"
