"""Snakemake script: are the labels of different cell families consistent (same crystal,
primitive vs conventional cell, each with its family's k-point mesh)?"""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.validate.families import write_family_offsets

p = snakemake.params
write_family_offsets(list(snakemake.input.labels), p.energy_tol, p.stress_tol,
                     snakemake.output.offsets)  # fmt: skip
