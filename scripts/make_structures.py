"""Snakemake script: write the training and elastic candidate structures."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

from pathlib import Path

from ase.io import write

from dft2mlip.structures import elastic_structures, training_structures

p = snakemake.params
groups = {
    "train": training_structures(p.material, p.spec, p.seed),
    "elastic": elastic_structures(p.material, p.elastic["strain_magnitude"]),
}
for group, structures in groups.items():
    for sid, atoms in structures.items():
        path = Path(p.outdir) / group / f"{sid}.extxyz"
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, atoms, format="extxyz")
    log.info("%d %s structures written", len(structures), group)
