"""Snakemake script: write the training and elastic candidate structures."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

from pathlib import Path

from ase.io import write

from dft2mlip.structures import elastic_structures, training_structures

p = snakemake.params
groups = {
    "train": training_structures(p.material, p.spec, p.seed),
    "elastic": elastic_structures(p.material, p.elastic_strain),
}
# output files are results/structures/<group>/<structure id>.extxyz
outputs = {(Path(f).parent.name, Path(f).stem): f for f in snakemake.output}
for group, structures in groups.items():
    for sid, atoms in structures.items():
        write(outputs[group, sid], atoms, format="extxyz")
    log.info("%d %s structures written", len(structures), group)
if len(outputs) != sum(len(s) for s in groups.values()):
    raise RuntimeError("structure ids of the DAG and of the generator disagree")
