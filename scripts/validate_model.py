"""Snakemake script: every check of one trained model with the model loaded once: test-set
metrics and parity, elastic tensors on the DFT cells, static stress vs DFT on the MD snapshots,
errors on the held-out benchmark's frames."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.calculator import MLIPCalculator
from dft2mlip.validate.model_checks import (
    write_heldout_scores,
    write_model_elastic,
    write_stress_validation,
    write_test_metrics,
)

inp, out, p = snakemake.input, snakemake.output, snakemake.params
run, seed = snakemake.wildcards.run, int(snakemake.wildcards.seed)
calc = MLIPCalculator(inp.model)
write_test_metrics(calc, inp.test, out, run, seed)
write_model_elastic(
    calc,
    inp.elastic_structures,
    out,
    f"{run} seed {seed}",
    strain_magnitude=p.strain_magnitude,
    fmax=p.fmax,
    max_steps=p.max_steps,
)
write_stress_validation(calc, inp.labels, inp.md, out, p.md, run, seed)
write_heldout_scores(calc, inp.heldout, out, run, seed, p.strain_bins)
