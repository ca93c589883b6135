"""Snakemake script: train one model with the run's loss-weighting scheme (resumes last.pt)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

import json
from pathlib import Path

from dft2mlip.study import unit_sum
from dft2mlip.train.trainer import train_run

t = snakemake.params.training
run_cfg = dict(snakemake.params.run_cfg)
if snakemake.input.tuning:  # a tuned fixed run: the weights chosen on the validation set
    chosen = json.loads(Path(snakemake.input.tuning[0]).read_text())
    run_cfg["weights"] = unit_sum(chosen["weights"])
    log.info("tuned weights (grid point %s): %s", chosen["chosen"], run_cfg["weights"])
out_dir = Path(snakemake.output.model).parent
log.info(
    "torch threads: %d (the rule's threads; a profile sets them with set-threads)",
    snakemake.threads,
)
summary = train_run(
    snakemake.input.train,
    snakemake.input.val,
    out_dir,
    run_name=snakemake.wildcards.run,
    model_cfg=snakemake.params.model_cfg,
    run_cfg=run_cfg,
    epochs=t["epochs"],
    batch_size=t["batch_size"],
    lr=t["lr"],
    dtype=t["dtype"],
    seed=snakemake.params.seed,
    threads=snakemake.threads,
    lr_scheduler=t["lr_scheduler"],
    lr_factor=t["lr_factor"],
    lr_patience=t["lr_patience"],
    min_lr=t["min_lr"],
    ema_decay=t["ema_decay"],
    early_stopping_patience=t["early_stopping_patience"],
    clip_grad_norm=t["clip_grad_norm"],
    device=t["device"],
)
if Path(summary["mace_model_path"]) != Path(snakemake.output.mace_model):
    raise RuntimeError(f"trainer wrote {summary['mace_model_path']}, rule expects another path")
log.info("training summary: %s", summary)
