"""Snakemake script: write the DFT relaxation input of the material's cell (cell and ions, the
dataset's settings) without running it: inspectable with `snakemake dft_inputs`."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from pathlib import Path

from dft2mlip.dft.relax import RelaxThresholds, write_relax_files

p = snakemake.params
written = write_relax_files(
    p.engine,
    p.engine_cfg,
    p.material,
    Path(snakemake.output.record).parent,
    chosen_path=(snakemake.input.chosen or [None])[0],
    thresholds=RelaxThresholds.from_config(p.thresholds),
)
log.info("relaxation input written (k-point mesh %s)", written["kpoint_mesh"])
