rule train:
    """One MACE model per training run and seed (loss-weighting scheme from the config; a tuned
    run's weights from its tuning.json; a grid point's from its grid).

    The trainer also keeps results/train/{run}/seed{seed}/last.pt, the full training state after the latest
    epoch. It is deliberately not an output: Snakemake deletes the outputs of a failed or killed
    job, but leaves last.pt alone, so the next attempt (profiles/default sets rerun-incomplete)
    resumes from it and finishes exactly as an uninterrupted run would. A last.pt written with
    other data or settings is ignored and replaced.
    """
    input:
        train=training_split,
        val=rules.dataset.output.val,
        tuning=tuning_input,
        statistics=statistics_input,
    output:
        model=f"{RESULTS}/train/{{run}}/seed{{seed}}/model.pt",
        mace_model=f"{RESULTS}/train/{{run}}/seed{{seed}}/model.model",
        history=f"{RESULTS}/train/{{run}}/seed{{seed}}/history.csv",
        loss=f"{RESULTS}/train/{{run}}/seed{{seed}}/model.loss.json",
    log:
        f"{LOGS}/train/{{run}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/{{run}}/seed{{seed}}.tsv"
    params:
        run_cfg=run_config,
        model_cfg=config["model"],
        training=training_shared(),
        seed=seed_value,
    threads: 1
    priority: train_priority
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train_model.py"


rule tune_fixed:
    """Choose a tuned fixed run's weights: the grid point with the lowest validation score
    (first seed; the test set is never looked at)."""
    input:
        histories=tuning_histories,
    output:
        tuning=f"{RESULTS}/train/{{run}}/tuning.json",
    log:
        f"{LOGS}/tune_fixed/{{run}}.log",
    benchmark:
        f"{BENCH}/tune_fixed/{{run}}.tsv"
    params:
        runs=tuned_run_entry,
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/tune_fixed.py"
