"""Snakemake script: test-set metrics (MAE/RMSE per component) and a parity plot for one model."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

import json

from ase.io import read

from dft2mlip.calculator import MLIPCalculator
from dft2mlip.validate.metrics import component_metrics, plot_parity, predict

run, seed = snakemake.wildcards.run, int(snakemake.wildcards.seed)
predictions = predict(MLIPCalculator(snakemake.input.model), read(snakemake.input.test, ":"))
metrics = component_metrics(predictions)
with open(snakemake.output.metrics, "w") as fh:
    json.dump({"run": run, "seed": seed, **metrics}, fh, indent=2)
predictions.per_structure.to_csv(snakemake.output.predictions, index=False)
plot_parity(predictions, snakemake.output.parity, title=f"{run} seed {seed}: test set")
log.info("%s test metrics: %s", run, metrics)
