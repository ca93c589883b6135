rule train:
    """One MACE model per training run (loss-weighting scheme from the config).

    The trainer also keeps results/train/{run}/last.pt, the full training state after the latest
    epoch. It is deliberately not an output: Snakemake deletes the outputs of a failed or killed
    job, but leaves last.pt alone, so the next attempt (profiles/default sets rerun-incomplete)
    resumes from it and finishes exactly as an uninterrupted run would. A last.pt written with
    other data or settings is ignored and replaced.
    """
    input:
        train=rules.dataset.output.train,
        val=rules.dataset.output.val,
    output:
        model=f"{RESULTS}/train/{{run}}/model.pt",
        mace_model=f"{RESULTS}/train/{{run}}/model.model",
        history=f"{RESULTS}/train/{{run}}/history.csv",
    log:
        f"{LOGS}/train/{{run}}.log",
    benchmark:
        f"{BENCH}/train/{{run}}.tsv"
    params:
        run_cfg=run_config,
        model_cfg=config["model"],
        training=training_shared(),
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train_model.py"
