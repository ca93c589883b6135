"""Snakemake script: one point of the convergence study (two structures at one cutoff/k-spacing)."""

from dft2mlip.checks import check_executable
from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)
check_executable(snakemake.config["dft"], snakemake.threads)  # fail fast, one line

import json
from pathlib import Path

from dft2mlip.dft.convergence import ConvergenceSpec, reference_structures, run_point, settings_at
from dft2mlip.dft.labels import execution_settings

p = snakemake.params
run = execution_settings(snakemake.config["dft"])
executable = run.pop("executable")
spec = ConvergenceSpec.from_config(p.spec)
cutoff, spacing = next((c, k) for pid, c, k in spec.points() if pid == snakemake.wildcards.point)
result = run_point(
    p.engine,
    settings_at(p.engine, {**p.engine_cfg, "executable": executable}, cutoff, spacing),
    reference_structures(p.material, p.seed, spec.strain, spec.rattle_A),
    Path(snakemake.output.result).parent / "runs",
    run_kwargs={"nprocs": snakemake.threads, **run},
)
result.update(point=snakemake.wildcards.point, cutoff=cutoff, kspacing_per_A=spacing)
Path(snakemake.output.result).write_text(json.dumps(result, indent=1))
log.info(
    "%s: %s", snakemake.wildcards.point, {n: s["status"] for n, s in result["structures"].items()}
)
