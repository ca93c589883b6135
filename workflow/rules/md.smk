rule deformation_md:
    """Deformation MD with the run's first-seed model (Langevin NVT + strain ramp): the
    stress–strain curve, and the path whose snapshots get DFT single points."""
    input:
        model=f"{RESULTS}/train/{{run}}/seed0/model.pt",
        **reference_inputs(),
    output:
        trajectory=f"{RESULTS}/md/{{run}}/trajectory.extxyz",
        csv=f"{RESULTS}/md/{{run}}/stress_strain.csv",
        plot=report(
            f"{RESULTS}/md/{{run}}/stress_strain.png",
            caption="../report/stress_strain.rst",
            category="Deformation MD",
            labels={"run": "{run}"},
        ),
    log:
        f"{LOGS}/md/{{run}}.log",
    benchmark:
        f"{BENCH}/md/{{run}}.tsv"
    params:
        material=material_config(),
        relax=relax_enabled(),
        md=config["validation"]["md"],
        seed=config["seed"],
    threads: 1
    priority: 2  # the MD path's DFT then overlaps the other runs' training (see train_priority)
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/deformation_md.py"


rule md_snapshots:
    """Snapshots evenly spaced in strain along the MD path, for DFT single points (one set file)."""
    input:
        trajectory=rules.deformation_md.output.trajectory,
        **reference_inputs(),  # the path's cell was built from it: a new reference, new snapshots
    output:
        snapshots=structure_set_path("md", "{run}"),
    log:
        f"{LOGS}/md_snapshots/{{run}}.log",
    benchmark:
        f"{BENCH}/md_snapshots/{{run}}.tsv",
    params:
        n=config["validation"]["md"]["snapshots"],
    priority: 2
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/md_snapshots.py"


rule heldout_md:
    """One path of the held-out stress benchmark (validation.heldout.paths over validation.md):
    deformation MD with the first-seed generation-0 model of validation.heldout.run."""
    input:
        model=heldout_model(),
        **reference_inputs(),
    output:
        trajectory=f"{RESULTS}/heldout/md/{{path}}/trajectory.extxyz",
        csv=f"{RESULTS}/heldout/md/{{path}}/stress_strain.csv",
        plot=f"{RESULTS}/heldout/md/{{path}}/stress_strain.png",
    log:
        f"{LOGS}/heldout_md/{{path}}.log",
    benchmark:
        f"{BENCH}/heldout_md/{{path}}.tsv"
    wildcard_constraints:
        path="[A-Za-z0-9][A-Za-z0-9_]*",
    params:
        material=material_config(),
        relax=relax_enabled(),
        md=heldout_md,
        seed=heldout_seed,
        name=heldout_name,
    threads: 1
    priority: 2
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/deformation_md.py"


rule heldout_frames:
    """The held-out frames, evenly spaced in strain up to each path's maximum: one structure set
    for DFT, labelled once and never trained on."""
    input:
        trajectories=heldout_trajectories(),
        **reference_inputs(),
    output:
        structures=structure_set_path("heldout"),
    log:
        f"{LOGS}/heldout_frames.log",
    benchmark:
        f"{BENCH}/heldout_frames.tsv"
    params:
        paths=heldout_paths(),
        n=heldout_config()["frames_per_path"],
        ids=heldout_ids(),
    priority: 2
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/heldout_frames.py"
