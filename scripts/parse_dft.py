"""Snakemake script: parse one pw.x output into a label file (units/signs of the project)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

import json

from ase.io import read

from dft2mlip.data import write_label
from dft2mlip.dft.qe import parse_pw_output
from dft2mlip.dft.settings import QESettings

with open(snakemake.input.settings) as fh:
    settings_hash = json.load(fh)["settings_hash"]
with open(snakemake.input.run_info) as fh:
    run_info = json.load(fh)
structure = read(snakemake.input.structure)
# with the settings, the cutoffs and pseudopotential md5 sums pw.x reports are checked too
settings = QESettings.from_config(snakemake.params.qe)
if settings.settings_hash() != settings_hash:
    raise RuntimeError(
        f"{snakemake.input.settings} was written with other DFT settings than the config's "
        f"({settings_hash} vs {settings.settings_hash()}); rerun with --rerun-triggers params"
    )
label = parse_pw_output(snakemake.input.pw_out, structure, settings_hash, settings=settings)
label.provenance["run"] = run_info
write_label(label, snakemake.output.label)
log.info("%s: status %s %s", label.structure_id, label.status, label.message)
