"""Snakemake script: test-set metrics (MAE/RMSE per component) and a parity plot for one model
(a tuned run's grid point; every other model gets all its checks from validate_model.py)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.calculator import MLIPCalculator
from dft2mlip.validate.model_checks import write_test_metrics

run, seed = snakemake.wildcards.run, int(snakemake.wildcards.seed)
write_test_metrics(
    MLIPCalculator(snakemake.input.model), snakemake.input.test, snakemake.output, run, seed
)
