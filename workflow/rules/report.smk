rule report:
    """All runs side by side: dataset, test errors, weights, elastic constants, stress validation."""
    input:
        **report_inputs(),
    output:
        summary=report(
            f"{RESULTS}/report/summary.md",
            caption="../report/summary.rst",
            category="Summary",
        ),
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{BENCH}/report.tsv",
    params:
        runs=training_runs(),
        config=config,
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/make_report.py"
