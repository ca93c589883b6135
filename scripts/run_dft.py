"""Snakemake script: run one DFT single point under custodian. A failed run is recorded
(run.json, with every correction applied), not raised: the parse step gives the label its
status, so nothing is silently dropped."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

import json
from pathlib import Path

from dft2mlip.dft.labels import execution_settings, run_input

record = run_input(
    snakemake.params.engine,
    Path(snakemake.input.inp).parent,
    nprocs=snakemake.threads,
    **execution_settings(snakemake.config["dft"]),
)
with open(snakemake.output.run_info, "w") as fh:
    json.dump(record, fh, indent=2, default=str)
log.info(
    "%s: %.1f s, %d correction(s), custodian: %s",
    snakemake.wildcards.sid,
    record["wall_time_s"],
    record["n_corrections"],
    record["custodian_error"] or "finished",
)
