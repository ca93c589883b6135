"""The DFT engine of the run, its physics config, and the switches that shape the DFT part of
the DAG: new DFT or not, the convergence study, the relaxation of the reference cell."""

from __future__ import annotations

from collections.abc import Mapping

from dft2mlip.dag import paths
from dft2mlip.dft.engines import get_engine
from dft2mlip.dft.magnetism import configured_order
from dft2mlip.structures import SECTIONS, SUPERCELL_SECTIONS


def dft_engine(config: Mapping) -> str:
    """`qe`, `vasp`, or `none` (no new DFT: labels from dataset.import only)."""
    return config["dft"]["engine"]


def new_dft(config: Mapping) -> bool:
    """Whether this run computes DFT (false for dft.engine none: nothing is checked against new
    DFT; the report says so)."""
    return dft_engine(config) != "none"


def dft_engine_config(config: Mapping) -> dict:
    """The engine's config section (dft.qe or dft.vasp) before the convergence study's choice."""
    return config["dft"].get(dft_engine(config), {})


def dft_physics_config(config: Mapping) -> dict:
    """The engine's config without its executable: rule params whose change means new labels.
    How runs are launched (dft.labels.execution_settings) is read from the config in the scripts."""
    launch_only = ("executable", "allow_low_cutoff")  # how it runs / a permission, not physics
    cfg = {k: v for k, v in dft_engine_config(config).items() if k not in launch_only}
    if not new_dft(config):  # dft.engine none: no labels of our own
        return cfg
    engine = get_engine(dft_engine(config))
    order = configured_order(config["material"], config["dft"])  # file or dft.magnetic_order
    return engine.physics_config({**config["dft"], engine.name: cfg}, order)  # spin, U


def dft_input_name(config: Mapping) -> str:
    """The input file a dft_input job declares: pw.in (QE) or INCAR (VASP; POSCAR beside it)."""
    return get_engine(dft_engine(config)).input_name if new_dft(config) else "input"


def dft_output_name(config: Mapping) -> str:
    """The output a dft_run job declares: pw.out (QE) or vasprun.xml (VASP; OUTCAR beside it)."""
    return get_engine(dft_engine(config)).output_name if new_dft(config) else "output"


def fixed_cell_relaxation(config: Mapping) -> bool:
    """Whether the run's engine relaxes ions in a fixed cell (relaxed-ion elastic constants);
    false without new DFT."""
    return new_dft(config) and bool(get_engine(dft_engine(config)).fixed_cell_relaxation)


def dft_priority(group: str, sid: str) -> int:
    """Longest DFT jobs first, so that none is left alone on the cores at the end of a stage:
    MD snapshots (on the critical path, see training.train_priority), the supercells and
    vacancy cells."""
    if group in ("md", "heldout"):
        return 2
    big = tuple(SECTIONS[name][0] + "-" for name in SUPERCELL_SECTIONS)
    return 1 if sid.startswith(big) else 0


def convergence_enabled(config: Mapping) -> bool:
    """Whether the convergence study runs (dft.convergence.enabled)."""
    return bool(config["dft"]["convergence"]["enabled"])


def convergence_chosen_settings(config: Mapping) -> list[str]:
    """[the study's chosen-settings file] when the study is on, else []: every DFT input uses it."""
    if not convergence_enabled(config):
        return []
    return [paths.convergence_chosen_path(config["results_dir"])]


def convergence_point_ids(config: Mapping) -> list[str]:
    """Ids of the study's grid points (cutoff x k-spacing), known from the config alone."""
    from dft2mlip.dft.convergence import ConvergenceSpec

    return [p for p, _, _ in ConvergenceSpec.from_config(config["dft"]["convergence"]).points()]


def convergence_point_results(config: Mapping) -> list[str]:
    """The result file of every grid point of the convergence study."""
    results = config["results_dir"]
    return [paths.convergence_point_result(results, p) for p in convergence_point_ids(config)]


def convergence_outputs(config: Mapping) -> list[str]:
    """The study's evidence (CSV, plot, chosen settings) when it is on, else []: for the report."""
    if not convergence_enabled(config):
        return []
    return paths.convergence_evidence(config["results_dir"])


def relax_enabled(config: Mapping) -> bool:
    """Whether the material's cell is relaxed with DFT first (material.relax, and new DFT)."""
    return bool(config["material"].get("relax", True)) and new_dft(config)


def reference_inputs(config: Mapping) -> dict[str, list[str]]:
    """Inputs of every job that builds cells (structures, deformation and exploration MD,
    snapshots, held-out frames) and of the report: the relaxed reference and its summary, both
    [] when the cell is not relaxed. Their scripts get params relax=relax_enabled() and call
    dft.relax.working_reference, which raises when relax is on and these are missing."""
    if not relax_enabled(config):
        return {"reference": [], "reference_summary": []}
    files = paths.reference_files(config["results_dir"])
    return {"reference": [files["structure"]], "reference_summary": [files["summary"]]}
