"""Snakemake script: the model's static stress vs DFT on the snapshots of its own MD path."""

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
with open(snakemake.output.summary, "w") as fh:
    json.dump(
        {"run": snakemake.wildcards.run, "component": spec.component, **summary}, fh, indent=2
    )
plot_stress_strain(
    snakemake.input.md,
    snakemake.output.plot,
    dft_points=table,
    component=spec.component,
    title=f"{snakemake.wildcards.run}: MD stress vs DFT at snapshots",
    strain_label=spec.strain_label,
)
log.info("%s stress validation: %s", snakemake.wildcards.run, summary)
