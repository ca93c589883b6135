rule test_metrics:
    """Test-set MAE/RMSE per component (meV/atom, meV/Å, GPa) and parity plots."""
    input:
        model=rules.train.output.model,
        test=rules.dataset.output.test,
    output:
        metrics=f"{RESULTS}/validate/{{run}}/metrics.json",
        predictions=f"{RESULTS}/validate/{{run}}/test_predictions.csv",
        parity=report(
            f"{RESULTS}/validate/{{run}}/parity.png",
            caption="../report/parity.rst",
            category="Test-set accuracy",
            labels={"run": "{run}"},
        ),
    log:
        f"{LOGS}/test_metrics/{{run}}.log",
    benchmark:
        f"{BENCH}/test_metrics/{{run}}.tsv",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/test_metrics.py"


rule elastic_dft:
    """Elastic tensor from the DFT stresses of the ± strained cells."""
    input:
        labels=elastic_label_paths(),
    output:
        elastic=f"{RESULTS}/validate/dft/elastic.json",
    log:
        f"{LOGS}/elastic/dft.log",
    benchmark:
        f"{BENCH}/elastic/dft.tsv",
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/elastic.py"


rule elastic_model:
    """Elastic tensor from the model's stresses on exactly the same strained cells."""
    input:
        model=rules.train.output.model,
        structures=elastic_structure_paths(),
    output:
        elastic=f"{RESULTS}/validate/{{run}}/elastic.json",
    log:
        f"{LOGS}/elastic/{{run}}.log",
    benchmark:
        f"{BENCH}/elastic/{{run}}.tsv",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/elastic.py"


rule stress_validation:
    """Model static stress vs DFT stress on the snapshots the deformation MD visited."""
    input:
        model=rules.train.output.model,
        labels=md_snapshot_label_paths,
        md=f"{RESULTS}/md/{{run}}/stress_strain.csv",
    output:
        table=f"{RESULTS}/validate/{{run}}/md_stress.csv",
        summary=f"{RESULTS}/validate/{{run}}/md_stress.json",
        plot=report(
            f"{RESULTS}/validate/{{run}}/md_stress.png",
            caption="../report/md_stress.rst",
            category="Stress validation",
            labels={"run": "{run}"},
        ),
    log:
        f"{LOGS}/stress_validation/{{run}}.log",
    benchmark:
        f"{BENCH}/stress_validation/{{run}}.tsv",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/stress_validation.py"
