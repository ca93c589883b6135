"""Snakemake script: aggregate every run x seed, the fixed-weight grid and the verdict."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

import json
import math
from pathlib import Path

import pandas as pd

from dft2mlip.study import model_record, write_study
from dft2mlip.validate.elastic import read_elastic_json

inp = snakemake.input
# the DFT reference: relaxed ion when DFT has it, else clamped ion; none without new DFT
dft_paths = list(inp.dft_elastic_relaxed) or list(inp.dft_elastic)
dft_c = read_elastic_json(dft_paths[0])[0] if dft_paths else None
relaxed = bool(inp.dft_elastic_relaxed)
md_stress = list(inp.md_stress) or [None] * len(snakemake.params.models)


def model_tensor(path):
    """The model's tensor of the reference's protocol; None when its relaxation failed or there
    is no DFT reference."""
    if dft_c is None:
        return None
    if not relaxed:
        path = path.replace("elastic_relaxed.json", "elastic.json")
    try:
        return read_elastic_json(path)[0]
    except ValueError as err:  # a failure record: the error stays NaN, the log says why
        log.warning("%s", err)
        return None


rows = []
for (run, seed), metrics, elastic, md in zip(
    snakemake.params.models, inp.metrics, inp.elastic, md_stress, strict=True
):
    rows.append(
        model_record(
            run,
            seed,
            json.loads(Path(metrics).read_text()),
            elastic_c=model_tensor(elastic),
            dft_elastic_c=dft_c,
            md_stress_mae_GPa=json.loads(Path(md).read_text())["mae_GPa"] if md else math.nan,
        )
    )
grid = pd.DataFrame(
    [
        model_record(g, 0, json.loads(Path(m).read_text()))
        for g, m in zip(snakemake.params.grid, inp.grid_metrics, strict=True)
    ]  # fmt: skip
)
tuning = [json.loads(Path(p).read_text()) for p in inp.tuning]
record = write_study(
    pd.DataFrame(rows), grid, tuning, snakemake.output, reference=snakemake.params.reference
)
log.info("study verdict:\n%s", "\n".join(record["verdict"]))
