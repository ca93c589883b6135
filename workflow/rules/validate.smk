rule validate_model:
    """Every check of one trained model in one job (loading torch and mace-torch takes ~5 s, more
    than the checks): test-set MAE/RMSE per component (meV/atom, meV/Å, GPa) and parity plot;
    clamped- and relaxed-ion elastic tensors on exactly the DFT's strained cells; static stress
    vs DFT on the snapshots of the validated MD paths (validation.snapshot_runs; the same frames
    for every model; the plot shows its own run's path and any snapshots of it); errors on the
    held-out benchmark's frames."""
    input:
        model=rules.train.output.model,
        test=rules.dataset.output.test,
        elastic_structures=structure_set_path("elastic"),
        labels=all_snapshot_label_paths(),
        md=f"{RESULTS}/md/{{run}}/stress_strain.csv",
        heldout=heldout_label_paths(),
    output:
        metrics=f"{RESULTS}/validate/{{run}}/seed{{seed}}/metrics.json",
        predictions=f"{RESULTS}/validate/{{run}}/seed{{seed}}/test_predictions.csv",
        parity=report(
            f"{RESULTS}/validate/{{run}}/seed{{seed}}/parity.png",
            caption="../report/parity.rst",
            category="Test-set accuracy",
            labels={"run": "{run}", "seed": "{seed}"},
        ),
        elastic=f"{RESULTS}/validate/{{run}}/seed{{seed}}/elastic.json",
        relaxed=f"{RESULTS}/validate/{{run}}/seed{{seed}}/elastic_relaxed.json",
        table=f"{RESULTS}/validate/{{run}}/seed{{seed}}/md_stress.csv",
        summary=f"{RESULTS}/validate/{{run}}/seed{{seed}}/md_stress.json",
        heldout=f"{RESULTS}/validate/{{run}}/seed{{seed}}/heldout.json",
        heldout_table=f"{RESULTS}/validate/{{run}}/seed{{seed}}/heldout.csv",
        plot=report(
            f"{RESULTS}/validate/{{run}}/seed{{seed}}/md_stress.png",
            caption="../report/md_stress.rst",
            category="Stress validation",
            labels={"run": "{run}", "seed": "{seed}"},
        ),
    wildcard_constraints:
        run=NOT_GRID_POINT,
    log:
        f"{LOGS}/validate_model/{{run}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/validate_model/{{run}}/seed{{seed}}.tsv"
    params:
        strain_magnitude=config["validation"]["elastic"]["strain_magnitude"],
        fmax=config["validation"]["elastic"]["relax_fmax_eV_per_A"],
        max_steps=config["validation"]["elastic"]["relax_max_steps"],
        md=config["validation"]["md"],
        strain_bins=heldout_config()["strain_bins"],
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/validate_model.py"


rule test_metrics:
    """Test-set metrics and parity plot of a tuned run's grid point (its Pareto point; the grid
    is chosen on the validation set, never on these numbers)."""
    input:
        model=rules.train.output.model,
        test=rules.dataset.output.test,
    output:
        metrics=f"{RESULTS}/validate/{{run}}/seed{{seed}}/metrics.json",
        predictions=f"{RESULTS}/validate/{{run}}/seed{{seed}}/test_predictions.csv",
        parity=f"{RESULTS}/validate/{{run}}/seed{{seed}}/parity.png",
    wildcard_constraints:
        run=GRID_POINT,
    log:
        f"{LOGS}/test_metrics/{{run}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/test_metrics/{{run}}/seed{{seed}}.tsv",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/test_metrics.py"


rule elastic_dft:
    """Clamped-ion elastic tensor from the DFT stresses of the ± strained cells."""
    input:
        labels=elastic_label_paths(),
    output:
        elastic=f"{RESULTS}/validate/dft/elastic.json",
    log:
        f"{LOGS}/elastic/dft.log",
    benchmark:
        f"{BENCH}/elastic/dft.tsv",
    params:
        strain_magnitude=config["validation"]["elastic"]["strain_magnitude"],
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/elastic.py"


rule elastic_dft_relax:
    """Ionic relaxation in one fixed ± strained cell, dataset settings (relaxed ion; pw.x relax or
    VASP ISIF 2); skipped when the clamped-ion label's forces are already below the threshold
    (e.g. normal strains of diamond, where symmetry keeps every atom in place)."""
    input:
        structure=f"{RESULTS}/dft/elastic/{{sid}}/structure.extxyz",
        clamped=f"{RESULTS}/dft/elastic/{{sid}}/label.extxyz",
        chosen=convergence_chosen_settings(),
    output:
        inp=f"{RESULTS}/validate/dft/relax/{{sid}}/{dft_input_name()}",
        label=f"{RESULTS}/validate/dft/relax/{{sid}}/label.extxyz",
    log:
        f"{LOGS}/elastic_dft_relax/{{sid}}.log",
    benchmark:
        f"{BENCH}/elastic_dft_relax/{{sid}}.tsv"
    params:
        engine=dft_engine(),
        engine_cfg=dft_physics_config(),
        fmax=config["validation"]["elastic"]["relax_fmax_eV_per_A"],
        max_steps=config["validation"]["elastic"]["relax_max_steps"],
    threads: 1  # ranks of pw.x; see rule dft_run
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/elastic_dft_relax.py"


rule elastic_dft_relaxed:
    """Relaxed-ion elastic tensor from the DFT stresses of the relaxed strained cells."""
    input:
        labels=elastic_relaxed_label_paths(),
    output:
        elastic=f"{RESULTS}/validate/dft/elastic_relaxed.json",
    log:
        f"{LOGS}/elastic/dft_relaxed.log",
    benchmark:
        f"{BENCH}/elastic/dft_relaxed.tsv",
    params:
        strain_magnitude=config["validation"]["elastic"]["strain_magnitude"],
        protocol="relaxed_ion",
        fmax=config["validation"]["elastic"]["relax_fmax_eV_per_A"],
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/elastic.py"


rule family_structures:
    """The perfect crystal in the primitive and in the conventional cell, from the working
    reference: one DFT label each, with the mesh the pipeline gives each family."""
    input:
        **reference_inputs(),
    output:
        structures=structure_set_path("families"),
    log:
        f"{LOGS}/family_structures.log",
    params:
        material=material_physics(),
        relax=relax_enabled(),
        ids=family_ids(),
    conda:
        "../../envs/qe.yaml"
    script:
        "../../scripts/family_structures.py"


rule family_offsets:
    """Are the labels of different cell families consistent? Energy per atom and stress of the
    same crystal in both cells against dft.convergence's tolerances (a console warning when
    not; the report shows it)."""
    input:
        labels=family_label_paths(),
    output:
        offsets=family_offsets_path(),
    log:
        f"{LOGS}/family_offsets.log",
    params:
        energy_tol=config["dft"]["convergence"]["energy_tol_meV_per_atom"],
        stress_tol=config["dft"]["convergence"]["stress_tol_GPa"],
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/family_offsets.py"
