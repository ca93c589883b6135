"""Snakemake script: the DFT elastic tensor from the labels of the ± strained cells (clamped ion:
single points; relaxed ion: pw.x relaxations). Models use the same cells and the same fit
(dft2mlip.validate.model_checks, rule validate_model)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.data import read_label
from dft2mlip.validate.elastic import elastic_from_structures, write_elastic_json

p = snakemake.params
protocol = p.get("protocol", "clamped_ion")
labels = [read_label(path) for path in snakemake.input.labels]
failed = [
    f"{lab.structure_id} ({lab.status}: {lab.message})" for lab in labels if lab.status != "ok"
]
if failed:
    raise RuntimeError(
        f"{protocol} elastic constants need every strained DFT label; these failed: {failed}. "
        "Inspect the pw.out beside each label, fix the cause, delete the label and rerun."
    )
C = elastic_from_structures([lab.atoms for lab in labels])
extra = {"relax_fmax_eV_per_A": p.fmax} if protocol == "relaxed_ion" else {}
write_elastic_json(
    C,
    snakemake.output.elastic,
    label="dft",
    protocol=protocol,
    strain_magnitude=p.strain_magnitude,
    **extra,
)
log.info("dft %s elastic tensor (GPa):\n%s", protocol, C.round(1))
