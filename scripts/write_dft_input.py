"""Snakemake script: write the pw.x input of one structure and the settings (with their hash)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

import json

from ase.io import read

from dft2mlip.dft.qe import write_pw_input
from dft2mlip.dft.settings import QESettings

settings = QESettings.from_config(snakemake.params.qe)
atoms = read(snakemake.input.structure)
write_pw_input(atoms, settings, snakemake.output.pw_in)
record = {"settings_hash": settings.settings_hash(), "physics": settings.physics_dict()}
with open(snakemake.output.settings, "w") as fh:
    json.dump(record, fh, indent=2, sort_keys=True)
log.info("%s: settings hash %s", snakemake.wildcards.sid, record["settings_hash"])
