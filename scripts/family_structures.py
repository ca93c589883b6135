"""Snakemake script: the cross-family check's structures (the perfect crystal in the primitive
and the conventional cell), made from the DFT-relaxed reference when there is one."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.dft.relax import working_reference
from dft2mlip.structures import write_structure_set
from dft2mlip.validate.families import family_cells

p = snakemake.params
cells = family_cells(p.material, working_reference(snakemake.input, relax=p.relax))
if [a.info["structure_id"] for a in cells] != p.ids:
    raise RuntimeError("family structure ids of the DAG and of the generator disagree")
write_structure_set(snakemake.output.structures, cells)
log.info("%s written to %s", ", ".join(p.ids), snakemake.output.structures)
