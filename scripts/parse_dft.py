"""Snakemake script: parse one DFT run into a label file (units and signs of the project,
provenance)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

import json
from pathlib import Path

from ase.io import read

from dft2mlip.data import write_label
from dft2mlip.dft.labels import parse_run

with open(snakemake.input.run_info) as fh:
    run_info = json.load(fh)
label = parse_run(
    snakemake.params.engine,
    snakemake.params.engine_cfg,
    Path(snakemake.input.out).parent,
    read(snakemake.input.structure),
    snakemake.input.settings,
    run_info,
    chosen_path=(snakemake.input.chosen or [None])[0],
)
write_label(label, snakemake.output.label)
log.info("%s: status %s %s", label.structure_id, label.status, label.message)
