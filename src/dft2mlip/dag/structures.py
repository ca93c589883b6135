"""The material and the structure ids of every set (training candidates, elastic cells, MD
snapshots), known from the config alone, and the structure set that holds a given id."""

from __future__ import annotations

from collections.abc import Mapping

from dft2mlip import active
from dft2mlip.dag import paths
from dft2mlip.dft.magnetism import material_with_order
from dft2mlip.structures import elastic_structure_ids, training_structure_ids, with_default_widths


def material_config(config: Mapping) -> dict:
    """config["material"] without the keys left at null (no structure file, ideal c/a): rule
    params stay as they were before those keys existed; with dft.magnetic_order, the per-site
    moments every structure made from the cell inherits (structures.ORDER_KEY)."""
    material = {k: v for k, v in config["material"].items() if v is not None}
    return material_with_order(material, config["dft"])  # dft.magnetic_order: moments, cell


def material_physics(config: Mapping) -> dict:
    """The material keys that define structures (not its display name): a param change reruns."""
    return {k: v for k, v in material_config(config).items() if k != "name"}


def material_structure_file(config: Mapping) -> list[str]:
    """[material.structure] when the material's cell comes from a file, else []."""
    path = config["material"].get("structure")
    return [path] if path else []


def structures_spec(config: Mapping) -> dict:
    """config["structures"], each supercell section without repeat or min_width_A sized by the
    model cutoff (structures.with_default_widths)."""
    return with_default_widths(config["structures"], config["model"]["r_max_A"])


def training_ids(config: Mapping) -> list[str]:
    """Ids of the training-candidate structures (known from the config alone)."""
    return training_structure_ids(config["structures"])


def elastic_ids() -> list[str]:
    """Ids of the ± strained primitive cells used for elastic constants."""
    return elastic_structure_ids()


def snapshot_runs(config: Mapping) -> list[str]:
    """The runs whose MD path gets DFT snapshots (``validation.snapshot_runs``; null: the
    reference run)."""
    runs = config["validation"].get("snapshot_runs")
    return list(runs) if runs else [config["training"].get("reference_run", "adaptive")]


def md_snapshot_ids(config: Mapping, run: str) -> list[str]:
    """Structure ids of the DFT single points along one run's deformation MD path."""
    n = config["validation"]["md"]["snapshots"]
    return [f"{run}__snap{k:02d}" for k in range(n)]


def md_run_of(sid: str) -> str:
    """The training run whose MD path gave snapshot `sid` (`<run>__snapNN`)."""
    return sid.rsplit("__snap", 1)[0]


def structure_set_of(results: str, group: str, sid: str) -> str:
    """The structure set that holds `group`/`sid`."""
    run = md_run_of(sid) if group == "md" else None
    if group == "heldout":
        return paths.structure_set_path(results, "heldout")
    if group == "al":
        run = active.generation_of(sid)
    return paths.structure_set_path(results, group, run)
