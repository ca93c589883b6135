"""Snakemake script: train one model with the run's loss-weighting scheme."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

from pathlib import Path

from dft2mlip.train.trainer import train_run

t = snakemake.params.training
summary = train_run(
    snakemake.input.train,
    snakemake.input.val,
    Path(snakemake.output.model).parent,
    run_name=snakemake.wildcards.run,
    model_cfg=snakemake.params.model_cfg,
    run_cfg=snakemake.params.run_cfg,
    epochs=t["epochs"],
    batch_size=t["batch_size"],
    lr=t["lr"],
    dtype=t["dtype"],
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)
log.info("training summary: %s", summary)
