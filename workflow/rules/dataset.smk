rule import_data:
    """Existing data (extxyz, finished VASP/QE runs) as labels, through the same checks."""
    input:
        import_source_files,
    output:
        labels=f"{RESULTS}/import/{{source}}.extxyz",
    log:
        f"{LOGS}/import/{{source}}.log",
    benchmark:
        f"{BENCH}/import/{{source}}.tsv"
    wildcard_constraints:
        source="[A-Za-z0-9][A-Za-z0-9_-]*",
    params:
        source=import_source,
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/import_data.py"


rule dataset:
    """extxyz splits (REF_energy/REF_forces/REF_stress) + a parquet table with every label's status."""
    input:
        labels=dft_label_paths(),
        imported=import_label_paths(),
    output:
        **dataset_files(),
    log:
        f"{LOGS}/dataset.log",
    benchmark:
        f"{BENCH}/dataset.tsv"
    params:
        fractions=config["dataset"]["fractions"],
        seed=config["seed"],
        source_splits=import_source_splits(),
        allow_mixed_settings=config["dataset"]["allow_mixed_settings"],
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/build_dataset.py"
