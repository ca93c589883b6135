"""Snakemake script: active learning vs random frames per generation, calibration, labels."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.active import write_summary

# params: models, base, generations, settings, n_seeds (write_summary's keywords)
record = write_summary(snakemake.input, snakemake.output, **dict(snakemake.params.items()))
log.info("active-learning verdicts: %s", record["verdicts"])
