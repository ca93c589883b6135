"""Snakemake script: elastic tensor from DFT labels (no model input) or from a model, with the
same ± strained cells and the same fit."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

from ase.io import read

from dft2mlip.data import read_label
from dft2mlip.validate.elastic import elastic_from_structures, write_elastic_json

if "model" in snakemake.input.keys():
    from dft2mlip.calculator import MLIPCalculator

    name = snakemake.wildcards.run
    structures = [read(path) for path in snakemake.input.structures]
    C = elastic_from_structures(structures, calc=MLIPCalculator(snakemake.input.model))
else:
    name = "dft"
    labels = [read_label(path) for path in snakemake.input.labels]
    failed = [lab.structure_id for lab in labels if lab.status != "ok"]
    if failed:
        raise RuntimeError(
            f"elastic constants need every strained DFT label; these failed: {failed}. "
            "Inspect results/dft/elastic/<id>/pw.out, fix the cause, delete the label and rerun."
        )
    C = elastic_from_structures([lab.atoms for lab in labels])
write_elastic_json(C, snakemake.output.elastic, label=name)
log.info("%s elastic tensor (GPa):\n%s", name, C.round(1))
