"""Snakemake script: elastic tensors with the same ± strained cells and the same fit for DFT and
models: from DFT labels (clamped ion: single points; relaxed ion: pw.x relaxations), or from a
model (both protocols, the relaxed one with the same force threshold as pw.x)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from ase.io import read

from dft2mlip.data import read_label
from dft2mlip.validate.elastic import (
    elastic_from_structures,
    write_elastic_failure,
    write_elastic_json,
)

p = snakemake.params
if "model" in snakemake.input.keys():
    from dft2mlip.calculator import MLIPCalculator

    name = f"{snakemake.wildcards.run} seed {snakemake.wildcards.seed}"
    calc = MLIPCalculator(snakemake.input.model)
    structures = read(snakemake.input.structures, index=":", format="extxyz")
    C = elastic_from_structures(structures, calc=calc)
    write_elastic_json(C, snakemake.output.elastic, label=name, strain_magnitude=p.strain_magnitude)
    log.info("%s clamped-ion elastic tensor (GPa):\n%s", name, C.round(1))
    try:
        C_rel = elastic_from_structures(
            structures, calc=calc, relax_fmax_eV_per_A=p.fmax, relax_max_steps=p.max_steps
        )
    except RuntimeError as err:  # a poor model whose relaxation does not converge: a result
        write_elastic_failure(
            snakemake.output.relaxed,
            name,
            protocol="relaxed_ion",
            message=str(err),
            relax_fmax_eV_per_A=p.fmax,
        )
        log.warning("%s relaxed-ion elastic tensor not computed: %s", name, err)
    else:
        write_elastic_json(
            C_rel,
            snakemake.output.relaxed,
            label=name,
            protocol="relaxed_ion",
            strain_magnitude=p.strain_magnitude,
            relax_fmax_eV_per_A=p.fmax,
        )
        log.info("%s relaxed-ion elastic tensor (GPa):\n%s", name, C_rel.round(1))
else:
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
