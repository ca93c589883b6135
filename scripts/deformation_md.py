"""Snakemake script: deformation MD with one trained model; stress–strain CSV, trajectory, plot."""

from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0])

from dft2mlip.calculator import MLIPCalculator
from dft2mlip.structures import conventional_cell
from dft2mlip.validate.deform import (
    DeformationSpec,
    plot_stress_strain,
    run_deformation_md,
)

spec = DeformationSpec.from_config(snakemake.params.md)
atoms = conventional_cell(snakemake.params.material, spec.repeat)
frames = run_deformation_md(
    atoms,
    MLIPCalculator(snakemake.input.model),
    spec,
    seed=snakemake.params.seed,
    traj_path=snakemake.output.trajectory,
    csv_path=snakemake.output.csv,
)
plot_stress_strain(snakemake.output.csv, snakemake.output.plot, dft_points=None)
log.info(
    "%s: %d MD records, final strain %.4f",
    snakemake.wildcards.run,
    len(frames),
    frames["strain"].iloc[-1],
)
