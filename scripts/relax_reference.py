"""Snakemake script: relax the material's cell (cell and ions) with the dataset's DFT settings
under custodian; write the relaxed cell and its summary (lattice parameters before/after,
residual stress and pressure, steps, status). A failed relaxation is recorded, not raised: the
structures job refuses to build on it, with this job's cause."""

from dft2mlip.checks import check_executable
from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)
check_executable(snakemake.config["dft"], snakemake.threads)  # fail fast, one line

from dft2mlip.dft.labels import execution_settings
from dft2mlip.dft.relax import relax_reference

p = snakemake.params
summary = relax_reference(
    p.engine,
    p.engine_cfg,
    p.material,
    snakemake.output.structure,
    snakemake.output.summary,
    chosen_path=(snakemake.input.chosen or [None])[0],
    nprocs=snakemake.threads,
    run=execution_settings(snakemake.config["dft"]),  # how it is launched: not a param
)
if summary["status"] == "ok":
    log.info("reference relaxed: %s", summary["message"])
else:  # the job succeeds (the record is kept); the structures job refuses to go on
    log.warning("reference relaxation %s: %s", summary["status"], summary["message"])
