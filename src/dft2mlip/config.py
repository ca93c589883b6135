"""Configuration: schema validation with defaults, and the checks a schema cannot express.

Both run before any job starts (the Snakefile calls them while building the DAG), so a bad config is
reported in seconds, naming the key and how to fix it, and nothing already computed is touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dft2mlip.study import GRID_SEP, STUDY_KEYS, grid_points

#: the schema that ships with the workflow (description and default for every key)
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and the fix."""


def _key_path(path: Any) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _with_defaults(validator_class: type) -> type:
    """A jsonschema validator class that fills ``default`` values into the instance as it goes."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = yaml.safe_load(yaml.safe_dump(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def load_schema(schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Read the workflow's JSON schema (YAML)."""
    with open(schema_path) as fh:
        return yaml.safe_load(fh)


def validate_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Validate ``config`` in place against the schema and fill in defaults.

    Raises
    ------
    ConfigError
        Naming the first offending key, e.g. ``config key 'training.epochs': 'ten' is not of type
        'integer'``.
    """
    schema = load_schema(schema_path)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            where = _key_path(err.absolute_path)
            if err.validator == "additionalProperties":
                allowed = sorted(err.schema.get("properties", {}))
                hint = f" (allowed keys: {', '.join(allowed)})" if allowed else ""
                lines.append(f"config key '{where}': {err.message}{hint}")
            else:
                lines.append(f"config key '{where}': {err.message}")
        raise ConfigError(
            "invalid configuration:\n  "
            + "\n  ".join(lines)
            + "\nSee config/README.md for every key, its meaning and its default."
        )
    return config


def _check_fractions(fractions: Mapping[str, float]) -> None:
    total = sum(fractions.values())
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ConfigError(
            f"config key 'dataset.fractions': train + val + test = {total:g}, must be 1 "
            "(e.g. {train: 0.7, val: 0.15, test: 0.15})"
        )


#: run names that would share output paths with the DFT reference (results/validate/dft/...)
RESERVED_RUN_NAMES = ("dft",)


def _check_runs(runs: Mapping[str, Mapping]) -> None:
    lowered = [name.lower() for name in runs]
    for name in runs:
        if name.lower() in RESERVED_RUN_NAMES:
            raise ConfigError(
                f"config key 'training.runs.{name}': the name '{name}' is reserved for the DFT "
                "reference outputs; rename the run"
            )
        if lowered.count(name.lower()) > 1:
            raise ConfigError(
                f"config key 'training.runs.{name}': run names differ only in case, which collides "
                "on case-insensitive file systems; rename one"
            )
    for name, run in runs.items():
        key = f"training.runs.{name}"
        if "__" in name:
            raise ConfigError(
                f"config key 'training.runs.{name}': '__' is reserved for grid points "
                f"(<run>{GRID_SEP}NN) and MD snapshots; rename the run"
            )
        _check_tune(key, name, run)
        if run["scheme"] == "fixed" and not run.get("tune"):
            weights = run.get("weights")
            if not weights:
                raise ConfigError(
                    f"config key '{key}.weights' is missing: a fixed scheme needs "
                    "{energy: ..., forces: ..., stress: ...} (or a grid in tune:)"
                )
            for comp, value in weights.items():
                if not math.isfinite(value) or value < 0:
                    raise ConfigError(
                        f"config key '{key}.weights.{comp}' = {value}: weights must be finite "
                        "and >= 0"
                    )
            if all(v == 0 for v in weights.values()):
                raise ConfigError(f"config key '{key}.weights': all weights are zero")
        if run["scheme"] == "softadapt" and not run.get("beta", 1.0) > 0:
            raise ConfigError(f"config key '{key}.beta' = {run['beta']}: β must be > 0")
        _check_weighting(name, run)


def _check_tune(key: str, name: str, run: Mapping) -> None:
    """A weight grid (``tune``) only on a fixed run, never together with ``weights``."""
    if not run.get("tune"):
        return
    if run["scheme"] != "fixed":
        raise ConfigError(f"config key '{key}.tune': a weight grid needs scheme: fixed")
    if run.get("weights"):
        raise ConfigError(
            f"config key '{key}': give either weights (constant) or tune (a grid), not both"
        )
    try:
        grid_points(name, run)
    except ValueError as err:
        raise ConfigError(f"config key {err}") from None


def _check_weighting(name: str, run: Mapping) -> None:
    """Build the run's weighting scheme once (the trainer's own checks: ranges per scheme)."""
    from dft2mlip.train.weighting import make_weighting, normalise_mode, update_interval

    if run.get("tune"):  # check the scheme with the grid's first point
        run = {**run, "weights": grid_points(name, run)[0]}
    run = {k: v for k, v in run.items() if k not in STUDY_KEYS}
    try:
        make_weighting(name, run)
        normalise_mode(name, run)
        update_interval(name, run)
    except ValueError as err:
        raise ConfigError(f"config key {err}") from None


def _check_training_settings(training: Mapping) -> None:
    """The shared ``training:`` keys, through the trainer's own settings object."""
    from dft2mlip.train.settings import TrainingSettings

    try:
        TrainingSettings.from_config(training)
    except ValueError as err:
        raise ConfigError(f"config key {err}") from None


def _check_reference_run(training: Mapping) -> None:
    ref = training.get("reference_run", "adaptive")
    if ref not in training["runs"]:
        raise ConfigError(
            f"config key 'training.reference_run' = {ref!r} is not a run in training.runs "
            f"({', '.join(training['runs'])}); name the run the verdict compares the others with"
        )


def _check_training_structures(structures: Mapping) -> None:
    from dft2mlip.structures import training_structure_ids

    n = len(training_structure_ids(structures))
    if n < 3:
        raise ConfigError(
            f"config key 'structures': only {n} training structures; at least 3 are needed "
            "for a train/val/test split (raise structures.strained.count, for example)"
        )


def check_config(config: dict) -> None:
    """Semantic checks run before any work: pseudopotentials, fractions, runs, MD settings.

    ``config`` must already have passed :func:`validate_config` (or Snakemake's ``validate``).
    """
    from dft2mlip.checks import check_inputs
    from dft2mlip.dft.settings import QESettings, check_pseudopotentials

    try:  # elements, overlapping atoms, absurd DFT settings, executable, results_dir, files
        check_inputs(config)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    elements = config["material"]["elements"]
    if config["dft"]["engine"] == "qe":
        try:
            settings = QESettings.from_config(config["dft"]["qe"])
            check_pseudopotentials(settings, elements)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    _check_dft(config)
    _check_fractions(config["dataset"]["fractions"])
    _check_training_settings(config["training"])
    _check_runs(config["training"]["runs"])
    _check_reference_run(config["training"])
    _check_training_structures(config["structures"])
    _check_validation(config)


def _check_dft(config: dict) -> None:
    """dft.vasp (settings), dft.convergence (grid, tolerances) and dataset.import (sources)."""
    from dft2mlip.dft.convergence import ConvergenceSpec
    from dft2mlip.dft.importing import check_import_sources
    from dft2mlip.dft.vasp import VaspSettings

    dft = config["dft"]
    try:
        if dft["engine"] == "vasp":
            VaspSettings.from_config(dft.get("vasp", {}))
        ConvergenceSpec.from_config(dft.get("convergence", {}))
        check_import_sources(config["dataset"].get("import", []))
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _check_validation(config: dict) -> None:
    """validation.md settings and the MD supercell against the model cutoff (before any work)."""
    from dft2mlip.structures import conventional_cell
    from dft2mlip.validate.deform import DeformationSpec

    try:
        spec = DeformationSpec.from_config(config["validation"]["md"])
        cell = conventional_cell(config["material"], spec.repeat).cell.array
        spec.check_supercell(cell, float(config["model"]["r_max_A"]), r_max_key="model.r_max_A")
    except ValueError as err:
        raise ConfigError(str(err)) from None


def load_config(path: str | Path, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Read, validate (with defaults) and check a config file; returns the completed config."""
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    validate_config(config, schema_path)
    check_config(config)
    return config
