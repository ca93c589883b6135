"""Snakemake script: run pw.x on one input. A failed run is recorded (run.json), not raised:
the parse step gives the label its status, so nothing is silently dropped."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

import dataclasses
import json

from dft2mlip.dft.run import run_pw

result = run_pw(
    snakemake.input.pw_in,
    snakemake.output.pw_out,
    executable=snakemake.params.executable,
    nprocs=snakemake.threads,
    mpi_launcher=snakemake.params.mpi_launcher,
)
with open(snakemake.output.run_info, "w") as fh:
    json.dump(dataclasses.asdict(result), fh, indent=2)
log.info(
    "%s: return code %s in %.1f s", snakemake.wildcards.sid, result.returncode, result.wall_time_s
)
