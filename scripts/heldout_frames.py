"""Snakemake script: the held-out benchmark's frames (validation.heldout), evenly spaced in
strain along each path, as one structure set for DFT."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.structures import write_structure_set
from dft2mlip.validate.deform import heldout_frames

p = snakemake.params
frames = heldout_frames(dict(zip(p.paths, snakemake.input.trajectories, strict=True)), p.n)
if [f.info["structure_id"] for f in frames] != p.ids:
    raise RuntimeError("held-out structure ids of the DAG and of the frames disagree")
for atoms in frames:
    log.info("%s: strain %.4f", atoms.info["structure_id"], atoms.info["md_strain"])
write_structure_set(snakemake.output.structures, frames)
