# Two jobs per DFT label: the input (inspectable before anything runs: `snakemake dft_inputs`),
# then the run and its parse. Every file of a label sits in results/dft/<group>/<sid>/.


rule dft_input:
    """DFT input of one structure (pw.in, or INCAR/POSCAR/POTCAR); identical settings for every
    label. The structure is copied beside it, so a label's directory holds all it was made from."""
    input:
        structures=structure_set_of,
        chosen=convergence_chosen_settings(),
    output:
        inp=f"{RESULTS}/dft/{{group}}/{{sid}}/{dft_input_name()}",
        settings=f"{RESULTS}/dft/{{group}}/{{sid}}/settings.json",
        structure=f"{RESULTS}/dft/{{group}}/{{sid}}/structure.extxyz",
    log:
        f"{LOGS}/dft_input/{{group}}/{{sid}}.log",
    benchmark:
        f"{BENCH}/dft_input/{{group}}/{{sid}}.tsv"
    params:
        engine=dft_engine(),
        engine_cfg=dft_physics_config(),
    priority: dft_priority
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/write_dft_input.py"


rule dft_run:
    """One DFT single point under custodian (restarts, SCF recovery; never a physics change),
    parsed into a label in the project's units and signs. A failed run still gives a label, with
    its status, provenance and every correction applied: nothing is silently dropped."""
    input:
        inp=f"{RESULTS}/dft/{{group}}/{{sid}}/{dft_input_name()}",
        settings=f"{RESULTS}/dft/{{group}}/{{sid}}/settings.json",
        structure=f"{RESULTS}/dft/{{group}}/{{sid}}/structure.extxyz",
        chosen=convergence_chosen_settings(),
    output:
        out=f"{RESULTS}/dft/{{group}}/{{sid}}/{dft_output_name()}",
        run_info=f"{RESULTS}/dft/{{group}}/{{sid}}/run.json",
        label=f"{RESULTS}/dft/{{group}}/{{sid}}/label.extxyz",
    log:
        f"{LOGS}/dft_run/{{group}}/{{sid}}.log",
    benchmark:
        f"{BENCH}/dft_run/{{group}}/{{sid}}.tsv"
    params:
        engine=dft_engine(),
        engine_cfg=dft_physics_config(),
    # 1 rank: a workstation's cores run that many labels at once (1.3-1.5x the throughput of one
    # label on all cores for the 2-atom cells: bench/results/dft_ranks.json); clusters set ranks
    # in their profile (profiles/slurm: set-threads + tasks)
    threads: 1
    priority: dft_priority
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/run_dft.py"
