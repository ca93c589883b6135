"""Snakemake script: one model's static stress vs DFT on the snapshots of every run's MD path
(the same frames for every model); the plot shows its own run's path and snapshots."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

import json

from dft2mlip.calculator import MLIPCalculator
from dft2mlip.data import read_label
from dft2mlip.validate.deform import (
    DeformationSpec,
    plot_stress_strain,
    stress_validation,
    stress_validation_summary,
)

spec = DeformationSpec.from_config(snakemake.params.md)
labels = [read_label(path) for path in snakemake.input.labels]
for lab in labels:
    lab.atoms.info["status"] = lab.status
table = stress_validation([lab.atoms for lab in labels], MLIPCalculator(snakemake.input.model))
table.to_csv(snakemake.output.table, index=False)
summary = stress_validation_summary(table)
run, seed = snakemake.wildcards.run, int(snakemake.wildcards.seed)
with open(snakemake.output.summary, "w") as fh:
    json.dump({"run": run, "seed": seed, "component": spec.component, **summary}, fh, indent=2)
own_path = table["structure_id"].str.startswith(f"{run}__snap")
plot_stress_strain(
    snakemake.input.md,
    snakemake.output.plot,
    dft_points=table[own_path],
    component=spec.component,
    title=f"{run} seed {seed}: MD stress vs DFT at its path's snapshots",
    strain_label=spec.strain_label,
)
log.info("%s stress validation: %s", snakemake.wildcards.run, summary)
