"""Snakemake script: choose a tuned fixed run's weights on the validation set (grid, first seed)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.io import write_json
from dft2mlip.study import select_tuned

choice = select_tuned(snakemake.wildcards.run, snakemake.params.runs, snakemake.input.histories)
write_json(choice, snakemake.output.tuning)
log.info("%s: chose %s, weights %s", choice["run"], choice["chosen"], choice["weights"])
