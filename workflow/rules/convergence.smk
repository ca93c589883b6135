rule convergence_point:
    """One cutoff x k-spacing point of the convergence study (strained+rattled and unstrained cell)."""
    output:
        result=f"{RESULTS}/convergence/points/{{point}}/result.json",
    log:
        f"{LOGS}/convergence_point/{{point}}.log",
    benchmark:
        f"{BENCH}/convergence_point/{{point}}.tsv"
    wildcard_constraints:
        point="c[0-9.]+_k[0-9.]+",
    params:
        engine=dft_engine(),
        engine_cfg=dft_physics_config(),
        spec=config["dft"]["convergence"],
        material=material_config(),
        seed=config["seed"],
    threads: 1  # ranks of pw.x; see rule dft_run
    resources:
        mem_mb=2000,
        runtime=120,
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/convergence_point.py"


rule convergence_select:
    """Errors against the tightest point; the cheapest point within tolerance feeds every DFT input."""
    input:
        results=convergence_point_results(),
    output:
        csv=f"{RESULTS}/convergence/convergence.csv",
        plot=f"{RESULTS}/convergence/convergence_study.png",
        chosen=f"{RESULTS}/convergence/chosen_settings.json",
    log:
        f"{LOGS}/convergence_select.log",
    benchmark:
        f"{BENCH}/convergence_select.tsv"
    params:
        engine=dft_engine(),
        spec=config["dft"]["convergence"],
        point_ids=convergence_point_ids(),
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/convergence_select.py"


rule convergence_inputs:
    """The study's DFT inputs, written without running DFT: what `make inputs` (target
    dft_inputs) writes when the study is on, since every label input depends on its outcome."""
    output:
        inputs=directory(f"{RESULTS}/convergence/inputs"),
    log:
        f"{LOGS}/convergence_inputs.log",
    params:
        engine=dft_engine(),
        engine_cfg=dft_physics_config(),
        spec=config["dft"]["convergence"],
        material=material_config(),
        seed=config["seed"],
        input_name=dft_input_name(),
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/write_convergence_inputs.py"
