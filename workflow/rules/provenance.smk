rule provenance:
    """What ran and what it made: versions, git commit, DFT code, pseudopotential hashes, config
    hash and the SHA-256 of every label, dataset file, model, metric and the report."""
    input:
        **provenance_inputs(),
    output:
        manifest=f"{RESULTS}/provenance.json",
    log:
        f"{LOGS}/provenance.log",
    benchmark:
        f"{BENCH}/provenance.tsv",
    params:
        config=config,
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/provenance.py"


rule dft_inputs:
    """Target: write every DFT input that is known before training (training candidates and the
    elastic strain set) without running DFT: `snakemake dft_inputs --cores N`, then inspect them.
    With the convergence study on, only the study's inputs (the labels' depend on its outcome);
    with the reference relaxation on (material.relax), only the relaxation's input."""
    input:
        dft_input_targets(),
