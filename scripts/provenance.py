"""Snakemake script: results/provenance.json (versions, git commit, DFT code and pseudopotential
hashes from the labels, config hash, SHA-256 of every listed output)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.data import read_label
from dft2mlip.provenance import build_manifest, write_manifest

labels = [read_label(path) for path in snakemake.input.labels]
outputs = [
    path
    for name, paths in snakemake.input.items()
    for path in ([paths] if isinstance(paths, str) else paths)
]
manifest = build_manifest(
    snakemake.params.config,
    outputs,
    label_provenances=[label.provenance for label in labels],
    settings_hashes=[label.settings_hash for label in labels if label.settings_hash],
)
write_manifest(manifest, snakemake.output.manifest)
log.info(
    "provenance: %d output files hashed, config %s, dft2mlip %s (commit %s)",
    len(manifest["outputs"]),
    manifest["config_sha256"][:12],
    manifest["dft2mlip"]["version"],
    manifest["dft2mlip"]["commit"],
)
