"""Snakemake script: active learning vs random frames per generation, calibration, labels."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.active import write_summary

p, inp = snakemake.params, snakemake.input
record = write_summary(
    inp,
    snakemake.output,
    models=p.models,
    base=p.base,
    generations=p.generations,
    settings=p.settings,
    n_seeds=p.n_seeds,
)
log.info("active-learning verdicts: %s", record["verdicts"])
