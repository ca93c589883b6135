"""The dataset.import sources: existing labels brought in through the same checks."""

from __future__ import annotations

from collections.abc import Mapping

from dft2mlip.dag import paths


def import_names(config: Mapping) -> list[str]:
    """Names of the dataset.import sources."""
    return [source["name"] for source in config["dataset"]["import"]]


def import_source(config: Mapping, name: str) -> dict:
    """The dataset.import entry named `name`."""
    return next(s for s in config["dataset"]["import"] if s["name"] == name)


def import_source_files(config: Mapping, name: str) -> list:
    """The existing files an import source reads (resolved when the DAG is built)."""
    from dft2mlip.dft.importing import source_files

    return source_files(import_source(config, name))


def import_source_splits(config: Mapping) -> dict[str, str]:
    """Import source name -> its own split (train/val/test) for sources that keep one."""
    return {s["name"]: s["split"] for s in config["dataset"]["import"] if s["split"] != "auto"}


def import_label_paths(config: Mapping) -> list[str]:
    """The labels of every import source."""
    return [paths.import_label_path(config["results_dir"], name) for name in import_names(config)]
