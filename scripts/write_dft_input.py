"""Snakemake script: write the DFT input of one structure, the settings (with their hash) and a
copy of the structure."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from pathlib import Path

from ase.io import write

from dft2mlip.dft.labels import write_input
from dft2mlip.io import atomic_write
from dft2mlip.structures import read_structure

sid = snakemake.wildcards.sid
atoms = read_structure(snakemake.input.structures, sid)
record = write_input(
    snakemake.params.engine,
    snakemake.params.engine_cfg,
    atoms,
    Path(snakemake.output.inp).parent,
    snakemake.output.settings,
    chosen_path=(snakemake.input.chosen or [None])[0],
)
with atomic_write(snakemake.output.structure) as tmp:
    write(tmp, atoms, format="extxyz")
log.info("%s: settings hash %s", sid, record["settings_hash"])
