"""The held-out stress benchmark (validation.heldout): MD paths with a generation-0 model,
frames labelled once by DFT and never trained on."""

from __future__ import annotations

from collections.abc import Mapping

from dft2mlip import active
from dft2mlip.dag import paths
from dft2mlip.dag.engine import new_dft
from dft2mlip.validate.deform import heldout_ids as heldout_structure_ids


def heldout_config(config: Mapping) -> Mapping:
    """validation.heldout."""
    return config["validation"]["heldout"]


def heldout_paths(config: Mapping) -> list[str]:
    """Names of the held-out benchmark's MD paths ([] when off or without new DFT)."""
    return list(heldout_config(config)["paths"]) if new_dft(config) else []


def heldout_ids(config: Mapping) -> list[str]:
    """Structure ids of the held-out frames (known from the config)."""
    return heldout_structure_ids(heldout_paths(config), heldout_config(config)["frames_per_path"])


def heldout_label_paths(config: Mapping) -> list[str]:
    """DFT labels of the held-out frames: every model is scored on all of them."""
    return [paths.label_path(config["results_dir"], "heldout", s) for s in heldout_ids(config)]


def heldout_model(config: Mapping) -> str:
    """First-seed generation-0 model of the run that drives the held-out paths."""
    run = heldout_config(config).get("run") or config["training"]["reference_run"]
    return f"{paths.model_dir(config['results_dir'], run, 0)}/model.pt"


def heldout_md(config: Mapping, path: str) -> dict:
    """MD settings of held-out path `path`: validation.md overridden by its entry."""
    entry = heldout_config(config)["paths"][path]
    return active.exploration_md(config["validation"]["md"], entry)


def heldout_seed(config: Mapping, path: str) -> int:
    """MD seed of one held-out path (apart from every exploration seed, seed + 1000 g + i)."""
    return int(config["seed"]) + 500_000 + heldout_paths(config).index(path)


def heldout_name(path: str) -> str:
    """The name the MD script gives held-out path `path`."""
    return f"held-out {path}"


def heldout_trajectories(config: Mapping) -> list[str]:
    """The trajectory of every held-out MD path."""
    results = config["results_dir"]
    return [f"{results}/heldout/md/{p}/trajectory.extxyz" for p in heldout_paths(config)]
