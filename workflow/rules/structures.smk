rule structures:
    """Candidate structures (training + elastic strain set), deterministic from the config: one
    multi-frame extxyz per set, frames in the order of the DAG's structure ids."""
    input:
        structure_file=material_structure_file(),
    output:
        **structure_files(),
    log:
        f"{LOGS}/structures.log",
    benchmark:
        f"{BENCH}/structures.tsv",
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
