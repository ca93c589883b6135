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
        html=report(
            f"{RESULTS}/report/report.html",
            caption="../report/summary_html.rst",
            category="Summary",
        ),
        dataset=report(
            f"{RESULTS}/report/dataset.png",
            caption="../report/dataset.rst",
            category="Dataset",
        ),
        convergence=report(
            f"{RESULTS}/report/convergence.png",
            caption="../report/convergence.rst",
            category="Dataset",
        ),
        loss_weights=report(
            f"{RESULTS}/report/loss_weights.png",
            caption="../report/loss_weights.rst",
            category="Training",
        ),
        test_errors=report(
            f"{RESULTS}/report/test_errors.png",
            caption="../report/test_errors.rst",
            category="Test-set accuracy",
        ),
        elastic=report(
            f"{RESULTS}/report/elastic.png",
            caption="../report/elastic.rst",
            category="Elastic constants",
        ),
        stress_strain=report(
            f"{RESULTS}/report/stress_strain.png",
            caption="../report/stress_strain_all.rst",
            category="Stress validation",
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
