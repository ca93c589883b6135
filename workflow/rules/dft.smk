rule dft_input:
    """pw.x input for one structure; identical settings for every label (settings hash)."""
    input:
        structure=dft_structure_input,
    output:
        pw_in=f"{RESULTS}/dft/{{group}}/{{sid}}/pw.in",
        settings=f"{RESULTS}/dft/{{group}}/{{sid}}/settings.json",
    log:
        f"{LOGS}/dft_input/{{group}}/{{sid}}.log",
    benchmark:
        f"{BENCH}/dft_input/{{group}}/{{sid}}.tsv",
    params:
        qe=config["dft"]["qe"],
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/write_dft_input.py"


rule dft_run:
    """One DFT single point (pw.x, MPI over the rule's threads). A failed run is kept for parsing."""
    input:
        pw_in=rules.dft_input.output.pw_in,
    output:
        pw_out=f"{RESULTS}/dft/{{group}}/{{sid}}/pw.out",
        run_info=f"{RESULTS}/dft/{{group}}/{{sid}}/run.json",
    log:
        f"{LOGS}/dft_run/{{group}}/{{sid}}.log",
    benchmark:
        f"{BENCH}/dft_run/{{group}}/{{sid}}.tsv"
    params:
        executable=config["dft"]["qe"]["executable"],
        mpi_launcher=mpi_launcher,
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/run_dft.py"


rule dft_parse:
    """Energy, forces, stress in the project's units and signs; a status for every label."""
    input:
        pw_out=rules.dft_run.output.pw_out,
        structure=dft_structure_input,
        settings=rules.dft_input.output.settings,
        run_info=rules.dft_run.output.run_info,
    output:
        label=f"{RESULTS}/dft/{{group}}/{{sid}}/label.extxyz",
    log:
        f"{LOGS}/dft_parse/{{group}}/{{sid}}.log",
    benchmark:
        f"{BENCH}/dft_parse/{{group}}/{{sid}}.tsv",
    params:
        qe=config["dft"]["qe"],
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/parse_dft.py"
