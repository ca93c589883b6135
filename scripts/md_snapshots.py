"""Snakemake script: pick snapshots evenly spaced in strain from one MD path for DFT."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

from ase.io import write

from dft2mlip.validate.deform import select_snapshots

run = snakemake.wildcards.run
snapshots = select_snapshots(snakemake.input.trajectory, len(snakemake.output.snapshots))
for k, (atoms, path) in enumerate(zip(snapshots, snakemake.output.snapshots, strict=True)):
    atoms.info["structure_id"] = f"{run}__snap{k:02d}"
    atoms.info["config_type"] = "md_snapshot"
    write(path, atoms, format="extxyz")
    log.info("%s: strain %.4f", atoms.info["structure_id"], atoms.info["md_strain"])
