"""Snakemake script: the study's table, plot and chosen settings (cheapest within tolerances)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

import json

from dft2mlip.dft.convergence import ConvergenceSpec, plot_study, select_settings

spec = ConvergenceSpec.from_config(snakemake.params.spec)
results = {}
for path in snakemake.input.results:
    with open(path) as fh:
        result = json.load(fh)
    results[result["point"]] = result
table, chosen = select_settings(results, spec, snakemake.params.engine)
table.to_csv(snakemake.output.csv, index=False)
plot_study(table, spec, snakemake.output.plot)
with open(snakemake.output.chosen, "w") as fh:
    json.dump(chosen, fh, indent=2)
log.info("chosen: %s", chosen)
