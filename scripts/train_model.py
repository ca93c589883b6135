"""Snakemake script: train one model with the run's loss-weighting scheme (resumes last.pt)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

import json
from pathlib import Path

from dft2mlip.study import unit_sum
from dft2mlip.train.settings import TrainingSettings
from dft2mlip.train.trainer import train_run

run_cfg = dict(snakemake.params.run_cfg)
if snakemake.input.tuning:  # a tuned fixed run: the weights chosen on the validation set
    chosen = json.loads(Path(snakemake.input.tuning[0]).read_text())
    run_cfg["weights"] = unit_sum(chosen["weights"])
    log.info("tuned weights (grid point %s): %s", chosen["chosen"], run_cfg["weights"])
log.info(
    "torch threads: %d (the rule's threads; a profile sets them with set-threads)",
    snakemake.threads,
)
summary = train_run(
    snakemake.input.train,
    snakemake.input.val,
    Path(snakemake.output.model).parent,
    run_name=snakemake.wildcards.run,
    model_cfg=snakemake.params.model_cfg,
    run_cfg=run_cfg,
    seed=snakemake.params.seed,
    settings=TrainingSettings.from_config(snakemake.params.training),
    threads=snakemake.threads,
    # an active-learning lineage: E0s, scale/shift, neighbour count and score scales of
    # generation 0's training set, the same for both lineages of a seed (paired comparison)
    stats_path=(snakemake.input.statistics or [None])[0],
)
if Path(summary["mace_model_path"]) != Path(snakemake.output.mace_model):
    raise RuntimeError(f"trainer wrote {summary['mace_model_path']}, rule expects another path")
log.info("training summary: %s", summary)
