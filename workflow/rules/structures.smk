rule relax_reference:
    """The material's cell relaxed with DFT (cell and ions, the dataset's exact settings) under
    custodian: every strained, elastic and MD cell is made from it (material.relax)."""
    input:
        structure_file=material_structure_file(),
        chosen=convergence_chosen_settings(),
    output:
        **reference_files(),
    log:
        f"{LOGS}/relax_reference.log",
    benchmark:
        f"{BENCH}/relax_reference.tsv"
    params:
        material=material_physics(),
        engine=dft_engine(),
        engine_cfg=dft_physics_config(),
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
        spec=config["structures"],
        elastic_strain=config["validation"]["elastic"]["strain_magnitude"],
        seed=config["seed"],
        ids={"train": training_ids(), "elastic": elastic_ids()},
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/make_structures.py"
