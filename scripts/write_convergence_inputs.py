"""Snakemake script: the convergence study's DFT inputs, written without running DFT (`make
inputs` with dft.convergence.enabled: every label input depends on the study's outcome, so those
are what can be inspected before anything runs)."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from pathlib import Path

from ase.io import write

from dft2mlip.dft.convergence import ConvergenceSpec, reference_structures, settings_at
from dft2mlip.dft.labels import write_input
from dft2mlip.io import atomic_write

p = snakemake.params
spec = ConvergenceSpec.from_config(p.spec)
structures = reference_structures(p.material, p.seed, spec.strain, spec.rattle_A)
root = Path(snakemake.output.inputs)
for point, cutoff, spacing in spec.points():
    for name, atoms in structures.items():
        directory = root / point / name
        directory.mkdir(parents=True, exist_ok=True)
        cfg = settings_at(p.engine, p.engine_cfg, cutoff, spacing)
        write_input(p.engine, cfg, atoms, directory, directory / "settings.json")
        with atomic_write(directory / "structure.extxyz") as tmp:
            write(tmp, atoms, format="extxyz")
log.warning(
    "dft.convergence.enabled: wrote only the study's inputs (%d points x %d structures) to %s; "
    "every label input depends on the study's outcome. Run the study (DFT) with `snakemake "
    "--cores N convergence_select`; then a label's input is a target, e.g. `snakemake --cores N "
    "%s/dft/train/<id>/%s`",
    len(spec.points()),
    len(structures),
    root,
    root.parents[1],
    p.input_name,
)
