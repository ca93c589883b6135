rule relax_input:
    """Input of the DFT relaxation of the material's cell (cell and ions, the dataset's exact
    settings), written without running it (part of `snakemake dft_inputs`)."""
    input:
        structure_file=material_structure_file(),
        chosen=convergence_chosen_settings(),
    output:
        inp=f"{RESULTS}/dft/reference/{dft_input_name()}",
        record=f"{RESULTS}/dft/reference/relax_input.json",
    log:
        f"{LOGS}/relax_input.log",
    params:
        material=material_physics(),
        engine=dft_engine(),
        engine_cfg=dft_physics_config(),
        thresholds=config["dft"]["relax"],
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/relax_input.py"


rule relax_reference:
    """The material's cell relaxed with DFT under custodian (restarts, SCF recovery): every
    strained, elastic and MD cell is made from it (material.relax). A failed relaxation is
    recorded with its cause, and the structures job refuses to go on."""
    input:
        inp=rules.relax_input.output.inp,
        record=rules.relax_input.output.record,
    output:
        **reference_files(),
    log:
        f"{LOGS}/relax_reference.log",
    benchmark:
        f"{BENCH}/relax_reference.tsv"
    params:
        material=material_physics(),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=120,
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/relax_reference.py"


rule structures:
    """Candidate structures (training + elastic strain set), deterministic from the config: one
    multi-frame extxyz per set, frames in the order of the DAG's structure ids, all made from the
    DFT-relaxed reference cell when material.relax is on."""
    input:
        structure_file=material_structure_file(),
        **reference_inputs(),
    output:
        **structure_files(),
    log:
        f"{LOGS}/structures.log",
    benchmark:
        f"{BENCH}/structures.tsv"
    params:
        material=material_physics(),
        relax=relax_enabled(),
        spec=structures_spec(),
        elastic_strain=config["validation"]["elastic"]["strain_magnitude"],
        seed=config["seed"],
        ids={"train": training_ids(), "elastic": elastic_ids()},
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/make_structures.py"
