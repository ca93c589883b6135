"""The DFT labels of the training candidates, the elastic strain set and the MD snapshots, and
the DFT elastic tensors made from them, and the cross-family consistency check's labels."""

from __future__ import annotations

from collections.abc import Mapping

from dft2mlip.dag import paths
from dft2mlip.dag.engine import fixed_cell_relaxation, new_dft
from dft2mlip.dag.structures import (
    elastic_ids,
    material_physics,
    md_snapshot_ids,
    snapshot_runs,
    training_ids,
)


def dft_label_paths(config: Mapping) -> list[str]:
    """Labels of the training candidates (input of the dataset)."""
    return [paths.label_path(config["results_dir"], "train", s) for s in training_ids(config)]


def elastic_label_paths(config: Mapping) -> list[str]:
    """Labels of the ± strained cells ([] without new DFT)."""
    if not new_dft(config):
        return []
    return [paths.label_path(config["results_dir"], "elastic", s) for s in elastic_ids()]


def all_snapshot_label_paths(config: Mapping) -> list[str]:
    """DFT labels of the snapshots of the validated MD paths (``validation.snapshot_runs``):
    every model is checked on all of them (the same frames for every run and seed)."""
    if not new_dft(config):
        return []
    results = config["results_dir"]
    return [paths.label_path(results, "md", s) for run in snapshot_runs(config)
            for s in md_snapshot_ids(config, run)]  # fmt: skip


def elastic_relaxed_label_paths(config: Mapping) -> list[str]:
    """Labels of the relaxations in the fixed ± strained cells (relaxed-ion elastic)."""
    return [paths.elastic_relaxed_label_path(config["results_dir"], s) for s in elastic_ids()]


def dft_elastic_outputs(config: Mapping) -> list[str]:
    """[the DFT clamped-ion elastic tensor], [] without new DFT."""
    return [paths.dft_elastic_path(config["results_dir"])] if new_dft(config) else []


def dft_relaxed_elastic_outputs(config: Mapping) -> list[str]:
    """[the DFT relaxed-ion elastic tensor] for an engine with a fixed-cell relaxation (QE, VASP);
    [] otherwise or without new DFT (the report then says it is not provided)."""
    if not fixed_cell_relaxation(config):
        return []
    return [paths.dft_relaxed_elastic_path(config["results_dir"])]


def dft_input_pairs(config: Mapping) -> list[tuple[str, str]]:
    """(group, sid) of every DFT input known before training: the training candidates and the
    elastic strain set (target dft_inputs, without convergence study or reference relaxation)."""
    return [("train", s) for s in training_ids(config)] + [("elastic", s) for s in elastic_ids()]


def family_ids(config: Mapping) -> list[str]:
    """Structure ids of the cross-family check (the perfect crystal in the primitive and the
    conventional cell); none without new DFT or when both cells are one."""
    from dft2mlip.validate.families import family_structure_ids

    return family_structure_ids(material_physics(config)) if new_dft(config) else []


def family_label_paths(config: Mapping) -> list[str]:
    """The labels of the cross-family check."""
    return [paths.label_path(config["results_dir"], "families", s) for s in family_ids(config)]


def family_offsets_outputs(config: Mapping) -> list[str]:
    """[the check's JSON] when it runs, else []."""
    return [paths.family_offsets_path(config["results_dir"])] if family_ids(config) else []
