"""Snakemake script: one dataset.import source -> a multi-label extxyz (same checks as our
own labels)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from collections import Counter

from dft2mlip.data import write_labels
from dft2mlip.dft.importing import import_source

labels = import_source(snakemake.params.source)
write_labels(labels, snakemake.output.labels)
log.info(
    "%s: %d labels, status %s",
    snakemake.wildcards.source,
    len(labels),
    dict(Counter(label.status for label in labels)),
)
for label in labels:
    if label.status != "ok":
        log.warning("%s: %s (%s)", label.structure_id, label.status, label.message)
