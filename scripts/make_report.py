"""Snakemake script: the side-by-side report of every training run."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from pathlib import Path

from dft2mlip.dft.relax import reference_record
from dft2mlip.report.artifacts import RunArtifacts
from dft2mlip.report.sections.trust import trust_table
from dft2mlip.report.settings import describe_run, report_settings
from dft2mlip.report.write import write_report
from dft2mlip.validate.deform import DeformationSpec

inp = snakemake.input
cfg = snakemake.params.config
spec = DeformationSpec.from_config(cfg["validation"]["md"])
runs_cfg = snakemake.params.runs
runs = {
    run: RunArtifacts(
        metrics_json=inp.metrics[i],
        history_csv=inp.history[i],
        elastic_json=inp.elastic[i],
        elastic_relaxed_json=inp.elastic_relaxed[i],
        md_csv=inp.md[i],
        # None without new DFT (dft.engine none): the report says the MD was not checked
        stress_validation_csv=(list(inp.stress_validation) or [None] * len(runs_cfg))[i],
        parity_png=inp.parity[i],
        loss_json=inp.losses[i],
    )
    for i, run in enumerate(snakemake.params.runs)
}
summary = write_report(
    Path(snakemake.output.summary).parent,
    dataset_table=inp.labels,
    runs=runs,
    dft_elastic_json=(list(inp.dft_elastic) or [None])[0],
    dft_elastic_relaxed_json=(list(inp.dft_elastic_relaxed) or [None])[0],
    md_component=spec.component,
    md_strain_label=spec.strain_label,
    # the study's folder when it ran (its files are inputs), else None: "no study was run"
    convergence_dir=Path(inp.convergence[0]).parent if inp.convergence else None,
    title=f"dft2mlip report: {cfg['material']['name']}",
    run_descriptions={run: describe_run(cfg["training"]["runs"][run]) for run in runs},
    settings=report_settings(cfg),
    study_dir=Path(inp.study[0]).parent,
    # active learning's folder when it ran (generations > 0), else None: no section
    active_learning_dir=Path(inp.active_learning[0]).parent if inp.active_learning else None,
    reference=reference_record(
        (list(inp.reference_summary) or [None])[0],
        relax=bool(cfg["material"].get("relax", True)),
        new_dft=cfg["dft"]["engine"] != "none",
    ),
    # the cross-family check's JSON when it ran, else None: no section
    families=inp.families[0] if inp.families else None,
    trust=trust_table(snakemake.params.models, inp.all_metrics, inp.heldout,
                      cfg["validation"]["heldout"]["stress_tol_GPa"]),
)
log.info("report written: %s", summary)
