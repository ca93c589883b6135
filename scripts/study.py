"""Snakemake script: aggregate every run x seed, the fixed-weight grid and the verdict."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

import json
from pathlib import Path

import pandas as pd

from dft2mlip.study import model_record, per_seed_table, write_study

inp = snakemake.input
per_seed = per_seed_table(
    snakemake.params.models,
    inp.metrics,
    inp.elastic,
    inp.md_stress,
    dft_elastic=inp.dft_elastic,
    dft_elastic_relaxed=inp.dft_elastic_relaxed,
)
grid = pd.DataFrame(
    [
        model_record(g, 0, json.loads(Path(m).read_text()))
        for g, m in zip(snakemake.params.grid, inp.grid_metrics, strict=True)
    ]  # fmt: skip
)
tuning = [json.loads(Path(p).read_text()) for p in inp.tuning]
record = write_study(per_seed, grid, tuning, snakemake.output, reference=snakemake.params.reference)
log.info("study verdict:\n%s", "\n".join(record["verdict"]))
