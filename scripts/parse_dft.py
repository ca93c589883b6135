"""Snakemake script: parse one pw.x output into a label file (units/signs of the project)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

import json

from ase.io import read

from dft2mlip.data import write_label
from dft2mlip.dft.qe import parse_pw_output

with open(snakemake.input.settings) as fh:
    settings_hash = json.load(fh)["settings_hash"]
with open(snakemake.input.run_info) as fh:
    run_info = json.load(fh)
structure = read(snakemake.input.structure)
label = parse_pw_output(snakemake.input.pw_out, structure, settings_hash)
label.provenance["run"] = run_info
write_label(label, snakemake.output.label)
log.info("%s: status %s %s", label.structure_id, label.status, label.message)
