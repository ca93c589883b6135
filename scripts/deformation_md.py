"""Snakemake script: deformation MD with one trained model; stress–strain CSV, trajectory, plot."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)

from dft2mlip.calculator import MLIPCalculator
from dft2mlip.dft.relax import working_reference
from dft2mlip.structures import conventional_cell
from dft2mlip.validate.deform import (
    DeformationSpec,
    plot_stress_strain,
    run_deformation_md,
)

name = snakemake.params.get("name") or snakemake.wildcards.run  # exploration paths: a name
spec = DeformationSpec.from_config(snakemake.params.md)
# the DFT-relaxed cell (material.relax; refuses a missing or failed relaxation), else configured
reference = working_reference(snakemake.input, relax=snakemake.params.relax)
base = conventional_cell(snakemake.params.material, [1, 1, 1], reference)
calc = MLIPCalculator(snakemake.input.model)
# repeat, min_width_A, or neither: sized from the checkpoint's own cutoff along the path
spec = spec.sized(base.cell.array, calc.r_max)
atoms = base.repeat(spec.repeat)
# the config check used model.r_max_A; the checkpoint's own cutoff is the one that counts
spec.check_supercell(
    atoms.cell.array, calc.r_max, r_max_key=f"the r_max of {snakemake.input.model}"
)
frames = run_deformation_md(
    atoms,
    calc,
    spec,
    seed=snakemake.params.seed,
    traj_path=snakemake.output.trajectory,
    csv_path=snakemake.output.csv,
)
plot_stress_strain(
    snakemake.output.csv,
    snakemake.output.plot,
    dft_points=None,
    component=spec.component,
    title=f"{name}: {spec.mode} {spec.direction}, lateral {spec.lateral}",
    strain_label=spec.strain_label,
)
log.info(
    "%s: %d MD records, final strain %.4f",
    name,
    len(frames),
    frames["strain"].iloc[-1],
)
