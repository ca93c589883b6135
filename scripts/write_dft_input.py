"""Snakemake script: write the DFT input of one structure and the settings (with their hash)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

from pathlib import Path

from ase.io import read

from dft2mlip.dft.labels import write_input

atoms = read(snakemake.input.structure)
record = write_input(
    snakemake.params.engine,
    snakemake.params.engine_cfg,
    atoms,
    Path(snakemake.output.inp).parent,
    snakemake.output.settings,
    chosen_path=(snakemake.input.chosen or [None])[0],
)
log.info("%s: settings hash %s", snakemake.wildcards.sid, record["settings_hash"])
