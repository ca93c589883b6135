"""Snakemake script: labels (+ imported data) -> extxyz splits + parquet table (failed labels kept
with their status)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from pathlib import Path

from dft2mlip.data import build_dataset

table = build_dataset(
    snakemake.input.labels,
    snakemake.params.fractions,
    snakemake.params.seed,
    Path(snakemake.output.table).parent,
    imported_paths=snakemake.input.imported,
    source_splits=snakemake.params.source_splits,
    allow_mixed_settings=snakemake.params.allow_mixed_settings,
)
log.info(
    "dataset: %d labels, status counts %s", len(table), table["status"].value_counts().to_dict()
)
