"""Snakemake script: pick snapshots evenly spaced in strain from one MD path for DFT."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.structures import write_structure_set
from dft2mlip.validate.deform import select_snapshots

run = snakemake.wildcards.run
snapshots = select_snapshots(snakemake.input.trajectory, snakemake.params.n)
for k, atoms in enumerate(snapshots):
    atoms.info["structure_id"] = f"{run}__snap{k:02d}"
    atoms.info["config_type"] = "md_snapshot"
    log.info("%s: strain %.4f", atoms.info["structure_id"], atoms.info["md_strain"])
write_structure_set(snakemake.output.snapshots, snapshots)
