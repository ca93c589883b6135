rule dft_input:
    """DFT input of one structure (pw.in, or INCAR/POSCAR/POTCAR); identical settings for every label."""
    input:
        structure=dft_structure_input,
        chosen=convergence_chosen_settings(),
    output:
        inp=f"{RESULTS}/dft/{{group}}/{{sid}}/{dft_input_name()}",
        settings=f"{RESULTS}/dft/{{group}}/{{sid}}/settings.json",
    log:
        f"{LOGS}/dft_input/{{group}}/{{sid}}.log",
    benchmark:
        f"{BENCH}/dft_input/{{group}}/{{sid}}.tsv"
    params:
        engine=dft_engine(),
        engine_cfg=dft_physics_config(),
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/write_dft_input.py"


rule dft_run:
    """One DFT single point under custodian (restarts, SCF recovery; never a physics change).
    A failed run is kept for parsing."""
    input:
        inp=rules.dft_input.output.inp,
    output:
        out=f"{RESULTS}/dft/{{group}}/{{sid}}/{dft_output_name()}",
        run_info=f"{RESULTS}/dft/{{group}}/{{sid}}/run.json",
    log:
        f"{LOGS}/dft_run/{{group}}/{{sid}}.log",
    benchmark:
        f"{BENCH}/dft_run/{{group}}/{{sid}}.tsv"
    params:
        engine=dft_engine(),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/run_dft.py"


rule dft_parse:
    """Energy, forces, stress in the project's units and signs; a status and provenance for every label."""
    input:
        out=rules.dft_run.output.out,
        structure=dft_structure_input,
        settings=rules.dft_input.output.settings,
        run_info=rules.dft_run.output.run_info,
        chosen=convergence_chosen_settings(),
    output:
        label=f"{RESULTS}/dft/{{group}}/{{sid}}/label.extxyz",
    log:
        f"{LOGS}/dft_parse/{{group}}/{{sid}}.log",
    benchmark:
        f"{BENCH}/dft_parse/{{group}}/{{sid}}.tsv"
    params:
        engine=dft_engine(),
        engine_cfg=dft_physics_config(),
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/parse_dft.py"
