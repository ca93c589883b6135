"""Snakemake script: run the relaxation of the material's cell (rule relax_input) under
custodian; write the relaxed cell and its summary (lattice parameters before/after, residual
stress and pressure, steps, status). A failed relaxation is recorded, not raised: the
structures job refuses to build on it, with this job's cause."""

from dft2mlip.checks import check_executable
from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)
check_executable(snakemake.config["dft"], snakemake.threads)  # fail fast, one line

from pathlib import Path

from dft2mlip.dft.labels import execution_settings
from dft2mlip.dft.relax import run_relaxation

summary = run_relaxation(
    snakemake.params.material,
    Path(snakemake.input.record).parent,
    snakemake.output.structure,
    snakemake.output.summary,
    nprocs=snakemake.threads,
    run=execution_settings(snakemake.config["dft"]),  # how it is launched: not a param
)
if summary["status"] == "ok":
    log.info("reference relaxed: %s", summary["message"])
else:  # the job succeeds (the record is kept); the structures job refuses to go on
    log.warning("reference relaxation %s: %s", summary["status"], summary["message"])
