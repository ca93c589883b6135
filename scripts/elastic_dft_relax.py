"""Snakemake script: ionic relaxation in one fixed strained cell (relaxed-ion elastic constants)
with the dataset's DFT settings (the convergence study's choice when there is one), through the
engine (pw.x ``relax``, VASP ``ISIF = 2``) and run under custodian like every DFT run; the final
frame becomes the label. When the clamped-ion label's forces are already below the threshold,
the relaxation would stop after its first SCF: that label is reused instead."""

from dft2mlip.checks import check_executable
from dft2mlip.logutil import log_to

log = log_to(snakemake.log[0], snakemake)
check_executable(snakemake.config["dft"], snakemake.threads)  # fail fast, one line

import shutil
from pathlib import Path

from ase.io import read

from dft2mlip.data import read_label, write_label
from dft2mlip.dft.engines import get_engine
from dft2mlip.dft.labels import engine_settings, execution_settings, run_input
from dft2mlip.validate.elastic_dft import relaxed_label_from_clamped

p = snakemake.params
engine = get_engine(p.engine)
if not engine.fixed_cell_relaxation:
    raise NotImplementedError(
        f"relaxed-ion DFT elastic constants are not implemented for dft.engine = {p.engine!r}"
    )
run = execution_settings(snakemake.config["dft"])  # how the code is launched: not a param
settings = engine_settings(p.engine, p.engine_cfg, (snakemake.input.chosen or [None])[0])
structure = read(snakemake.input.structure)
work = Path(snakemake.output.inp).parent
settings_hash = engine.write_fixed_cell_relax(
    structure, settings, work, fmax_eV_per_A=p.fmax, max_steps=p.max_steps
)
label = relaxed_label_from_clamped(
    read_label(snakemake.input.clamped), settings_hash, fmax_eV_per_A=p.fmax
)
if label is None:  # the relaxation, under custodian as every other DFT run
    record = run_input(p.engine, work, nprocs=snakemake.threads, **run)
    label = engine.parse_fixed_cell_relax(
        work, structure, settings_hash, settings=settings, fmax_eV_per_A=p.fmax,
        max_steps=p.max_steps,
    )  # fmt: skip
    label.provenance["run"] = record
    label.provenance["corrections"] = record.get("corrections", [])
    shutil.rmtree(work / "tmp", ignore_errors=True)  # pw.x scratch (outdir)
label.provenance["calculation"] = "relax"
write_label(label, snakemake.output.label)
log.info("%s: %s %s", label.structure_id, label.status, label.message)
