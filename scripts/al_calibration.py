"""Snakemake script: committee disagreement vs true DFT error on one generation's labels."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.active import calibration_table

table = calibration_table(snakemake.input.labels, snakemake.input.committee)
table.to_csv(snakemake.output.table, index=False)
log.info("g%s calibration:\n%s", snakemake.wildcards.gen, table.to_string())
