rule train:
    """One MACE model per training run (loss-weighting scheme from the config)."""
    input:
        train=rules.dataset.output.train,
        val=rules.dataset.output.val,
    output:
        model=f"{RESULTS}/train/{{run}}/model.pt",
        history=f"{RESULTS}/train/{{run}}/history.csv",
    log:
        f"{LOGS}/train/{{run}}.log",
    benchmark:
        f"{BENCH}/train/{{run}}.tsv"
    params:
        run_cfg=run_config,
        model_cfg=config["model"],
        training=config["training"],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train_model.py"
