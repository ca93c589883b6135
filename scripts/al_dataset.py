"""Snakemake script: one lineage's training set of one generation (train split + ok picks)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.active import training_set

table = training_set(snakemake.input.base, snakemake.input.labels, snakemake.output.train)
table.to_csv(snakemake.output.labels, index=False)
for _, row in table[~table["included"]].iterrows():
    log.warning("%s not trained on: %s", row["structure_id"], row["reason"])
log.info("%s: %d of %d picks trained on", snakemake.wildcards.run, int(table["included"].sum()),
         len(table))  # fmt: skip
