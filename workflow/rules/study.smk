rule study:
    """The study: every run x seed on the test set, the elastic tensor and the MD snapshots;
    mean and spread per run, the Pareto plot with the fixed-weight grid, and the verdict."""
    input:
        **study_inputs(),
    output:
        **study_files(),
    log:
        f"{LOGS}/study.log",
    benchmark:
        f"{BENCH}/study.tsv"
    params:
        models=study_models(),
        grid=grid_runs(),
        reference=config["training"]["reference_run"],
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/study.py"
