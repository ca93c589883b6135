"""Snakemake script: run one DFT single point under custodian and parse it into a label (units
and signs of the project, provenance). A failed run is not raised: run.json records it with
every correction applied, and the label carries its status, so nothing is silently dropped."""

from dft2mlip.checks import check_executable
from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)
check_executable(snakemake.config["dft"], snakemake.threads)  # fail fast, one line

import json
from pathlib import Path

from ase.io import read

from dft2mlip.data import write_label
from dft2mlip.dft.labels import execution_settings, parse_run, run_input
from dft2mlip.io import atomic_write_text

sid = snakemake.wildcards.sid
directory = Path(snakemake.input.inp).parent
record = run_input(
    snakemake.params.engine,
    directory,
    nprocs=snakemake.threads,
    **execution_settings(snakemake.config["dft"]),  # how it is launched: not a param
)
text = json.dumps(record, indent=2, default=str)
atomic_write_text(snakemake.output.run_info, text)
log.info(
    "%s: %.1f s, %d correction(s), custodian: %s",
    sid,
    record["wall_time_s"],
    record["n_corrections"],
    record["custodian_error"] or "finished",
)
label = parse_run(
    snakemake.params.engine,
    snakemake.params.engine_cfg,
    directory,
    read(snakemake.input.structure),
    snakemake.input.settings,
    json.loads(text),  # the run record exactly as run.json holds it
    chosen_path=(snakemake.input.chosen or [None])[0],
    allow_order_change=snakemake.config["dft"].get("allow_magnetic_order_change", False),
)
write_label(label, snakemake.output.label)
if label.status == "ok":
    log.info("%s: status ok %s", label.structure_id, label.message)
else:  # the job succeeds (the label is kept with its status): say it on the console
    log.warning(
        "label %s: status %s: %s (output and run record in %s)",
        label.structure_id,
        label.status,
        label.message,
        directory,
    )
