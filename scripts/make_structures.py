"""Snakemake script: write the training and elastic candidate structures (one set file each),
all made from the DFT-relaxed reference cell when there is one (material.relax)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.dft.relax import working_reference
from dft2mlip.structures import elastic_structures, training_structures, write_structure_set

p = snakemake.params
# the DFT-relaxed cell (material.relax; refuses a missing or failed relaxation), else configured
reference = working_reference(snakemake.input, relax=p.relax)
sets = {
    "train": training_structures(p.material, p.spec, p.seed, reference),
    "elastic": elastic_structures(p.material, p.elastic_strain, reference),
}
for group, structures in sets.items():
    if list(structures) != p.ids[group]:
        raise RuntimeError(f"{group} structure ids of the DAG and of the generator disagree")
    write_structure_set(snakemake.output[group], list(structures.values()))
    log.info("%d %s structures written to %s", len(structures), group, snakemake.output[group])
