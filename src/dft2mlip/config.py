"""Configuration: schema validation with defaults, and the checks a schema cannot express.

Both run before any job starts (the Snakefile calls them while building the DAG), so a bad config is
reported in seconds, naming the key and how to fix it, and nothing already computed is touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from dft2mlip.study import GRID_SEP, STUDY_KEYS, grid_points

if TYPE_CHECKING:
    from dft2mlip.validate.deform import DeformationSpec

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


def _check_snapshot_runs(config: Mapping) -> None:
    runs = config["validation"].get("snapshot_runs") or []
    unknown = [r for r in runs if r not in config["training"]["runs"]]
    if unknown:
        raise ConfigError(
            f"config key 'validation.snapshot_runs' names {', '.join(map(repr, unknown))}, not "
            f"a run in training.runs ({', '.join(config['training']['runs'])}); list the runs "
            "whose MD path gets DFT snapshots, or null for training.reference_run"
        )


def _check_reference_run(training: Mapping) -> None:
    ref = training.get("reference_run", "adaptive")
    if ref not in training["runs"]:
        raise ConfigError(
            f"config key 'training.reference_run' = {ref!r} is not a run in training.runs "
            f"({', '.join(training['runs'])}); name the run the verdict compares the others with"
        )


def _check_training_structures(config: Mapping) -> None:
    """At least 3 labels for a train/val/test split: the pipeline's structures plus the imported
    labels (counted from the sources' files: frames of an extxyz, run directories); rattled
    and vacancy cells that can carry force information."""
    from dft2mlip.structures import (
        check_rattled_cell,
        check_vacancy_cell,
        training_structure_ids,
        with_default_widths,
    )

    own = len(training_structure_ids(config["structures"]))
    if own:
        try:
            check_rattled_cell(config["material"], config["structures"])
            spec = with_default_widths(config["structures"], config["model"]["r_max_A"])
            check_vacancy_cell(config["material"], spec)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if config["dft"]["engine"] == "none" and own:
        raise ConfigError(
            f"config key 'structures': {own} structures would need new DFT labels but "
            "dft.engine is none (import only); set every structures count to 0 and "
            "hydrostatic.strains to [], or choose dft.engine qe or vasp"
        )
    imported = sum(count_import_labels(s) for s in config["dataset"].get("import", []))
    if own + imported < 3:
        raise ConfigError(
            f"config key 'structures': only {own} training structures and {imported} imported "
            "labels; at least 3 are needed for a train/val/test split (raise "
            "structures.strained.count, for example, or add dataset.import sources)"
        )


def count_import_labels(source: Mapping) -> int:
    """Labels an import source will give (extxyz: frames; run directories: one each; a
    relaxation imported with all its frames counts once: a lower bound is enough here)."""
    from dft2mlip.dft.engines import get_engine
    from dft2mlip.dft.importing import extxyz_frame_infos, source_files

    files = source_files(source)
    if source["format"] != "extxyz":
        return len({get_engine(source["format"]).import_run(Path(f))[0] for f in files})
    return sum(len(extxyz_frame_infos(path)) for path in files)


def _pipeline_settings_hash(config: Mapping) -> str | None:
    """The settings hash the pipeline's own labels will carry, where it is known before any work
    (QE without the convergence study); a placeholder otherwise; None without own labels."""
    from dft2mlip.structures import training_structure_ids

    if config["dft"]["engine"] == "none" or not training_structure_ids(config["structures"]):
        return None
    known = None
    if not config["dft"]["convergence"]["enabled"]:
        from dft2mlip.dft.engines import get_engine
        from dft2mlip.dft.magnetism import configured_order

        dft, engine = config["dft"], get_engine(config["dft"]["engine"])
        order = configured_order(config["material"], dft)
        known = engine.known_settings_hash(engine.physics_config(dft, order))  # as the labels
    return known or "<the pipeline's own settings (known after the convergence study or a run)>"


def _check_import_settings(config: Mapping) -> None:
    """Labels that would be trained together share one DFT settings hash (the pipeline's own
    labels and every import source whose ``on_settings_mismatch`` is ``error``), unless
    ``dataset.allow_mixed_settings`` is true. Reads only file headers (cheap at DAG time)."""
    from dft2mlip.dft.importing import import_settings_hashes

    sources = config["dataset"].get("import", [])
    if not sources or config["dataset"].get("allow_mixed_settings"):
        return
    where: dict[str, list[str]] = {}
    own = _pipeline_settings_hash(config)
    if own:
        where[own] = ["the pipeline's own labels"]
    for source in sources:
        if source.get("on_settings_mismatch", "error") != "error":
            continue
        for settings_hash in import_settings_hashes(source):
            where.setdefault(settings_hash, []).append(f"dataset.import {source['name']!r}")
    if len(where) > 1:
        groups = "; ".join(f"{h}: {', '.join(w)}" for h, w in where.items())
        raise ConfigError(
            "config key 'dataset.allow_mixed_settings': labels computed with different DFT "
            f"settings would be trained together ({groups}); if they are in fact the same, give "
            "the sources one dataset.import settings_id; else set it to true to allow that, or "
            "on_settings_mismatch: exclude (or warn) in the dataset.import entries concerned"
        )


def _check_no_dft(config: Mapping) -> None:
    """dft.engine none: labels come only from dataset.import; nothing may need new DFT."""
    if config["dft"]["engine"] != "none":
        return
    if not config["dataset"].get("import"):
        raise ConfigError(
            "config key 'dft.engine' = none (no new DFT) needs labels from dataset.import; add "
            "an extxyz file or finished run directories there, or choose qe or vasp"
        )
    if config["dft"]["convergence"].get("enabled"):
        raise ConfigError(
            "config key 'dft.convergence.enabled': the convergence study runs DFT, but "
            "dft.engine is none; set it to false"
        )


def check_config(config: dict) -> None:
    """Semantic checks run before any work: pseudopotentials, fractions, runs, MD settings.

    ``config`` must already have passed :func:`validate_config` (or Snakemake's ``validate``).
    """
    from dft2mlip.checks import check_inputs
    from dft2mlip.dft.magnetism import material_with_order

    try:  # elements, overlapping atoms, absurd DFT settings, executable, results_dir, files
        check_inputs(config)
        # the cells the checks build are those the workflow builds (a named order's own cell)
        config = {**config, "material": material_with_order(config["material"], config["dft"])}
    except ValueError as err:
        raise ConfigError(str(err)) from None
    _check_engine(config)
    _check_dft(config)
    _check_fractions(config["dataset"]["fractions"])
    _check_training_settings(config["training"])
    _check_runs(config["training"]["runs"])
    _check_reference_run(config["training"])
    _check_snapshot_runs(config)
    _check_no_dft(config)
    _check_training_structures(config)
    _check_import_settings(config)
    _check_validation(config)
    _check_active_learning(config)


def _check_engine(config: dict) -> None:
    """What the DFT engine checks before any work (pseudopotentials or POTCARs, moments, the
    per-site magnetic order against the cell, U)."""
    from dft2mlip.dft.engines import ENGINES, get_engine
    from dft2mlip.dft.magnetism import configured_order

    engine = config["dft"]["engine"]
    if engine not in ENGINES:  # "none": every label is imported
        return
    try:
        order = configured_order(config["material"], config["dft"])
        get_engine(engine).check_config(config["dft"], config["material"]["elements"], order)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _check_dft(config: dict) -> None:
    """dft.convergence (grid, tolerances), dataset.import (sources) and the MPI launcher."""
    from dft2mlip.dft.convergence import ConvergenceSpec
    from dft2mlip.dft.importing import check_import_sources

    dft = config["dft"]
    try:
        ConvergenceSpec.from_config(dft.get("convergence", {}))
        check_import_sources(config["dataset"].get("import", []))
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _check_validation(config: dict) -> None:
    """validation.md settings and the MD supercell against the model cutoff (before any work)."""
    from dft2mlip.structures import conventional_cell
    from dft2mlip.validate.deform import DeformationSpec

    try:
        r_max = float(config["model"]["r_max_A"])
        _check_min_width(config, r_max)
        base = conventional_cell(config["material"], [1, 1, 1]).cell.array
        spec = DeformationSpec.from_config(config["validation"]["md"]).sized(base, r_max)
        cell = conventional_cell(config["material"], spec.repeat).cell.array
        try:
            spec.check_supercell(cell, r_max, r_max_key="model.r_max_A")
        except ValueError as err:
            raise ValueError(f"{err}{_md_repeat_hint(config['material'], spec, r_max)}") from None
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _check_active_learning(config: dict) -> None:
    from dft2mlip.active import check_active_learning, check_heldout

    try:
        check_heldout(config)  # the benchmark active learning is judged on
        check_active_learning(config)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _check_min_width(config: Mapping, r_max: float) -> None:
    """``structures.{supercell,vacancy}.min_width_A`` and ``validation.md.min_width_A`` against
    the model cutoff (a narrower cell lets an atom see its own periodic image), and not both a
    width and a repeat."""
    from dft2mlip.structures import SUPERCELL_SECTIONS, supercell_repeat

    sections = [("validation.md", config["validation"]["md"])]
    for name in SUPERCELL_SECTIONS:
        params = config["structures"].get(name) or {}
        supercell_repeat(config["material"], params, section=name)  # both keys set: one line
        sections.append((f"structures.{name}", params))
    for key, section in sections:
        width = section.get("min_width_A")
        if width is not None and float(width) < r_max:
            raise ValueError(
                f"config key '{key}.min_width_A' = {width} Å is below the model cutoff "
                f"model.r_max_A = {r_max:g} Å (atoms would see their own periodic images); "
                f"set it to at least {r_max:g} Å, or lower model.r_max_A"
            )


def _md_repeat_hint(material: Mapping, spec: DeformationSpec, r_max: float) -> str:
    """``; e.g. [3, 3, 3] is wide enough``: the fewest repeats of the conventional cell whose
    perpendicular widths reach the cutoff along the whole path (checked), or ``""``."""
    from dataclasses import replace

    from dft2mlip.structures import conventional_cell, repeats_for_width

    base = conventional_cell(material, [1, 1, 1]).cell.array
    for margin in (1.0, 1.1, 1.25, 1.5, 2.0):  # strain and shear narrow the cell on the way
        repeat = repeats_for_width(base, r_max * margin * (1 + spec.max_strain))
        try:
            cell = conventional_cell(material, repeat).cell.array
            replace(spec, repeat=repeat).check_supercell(cell, r_max, r_max_key="model.r_max_A")
        except ValueError:
            continue
        return f"; e.g. validation.md.repeat: {list(repeat)} is wide enough"
    return ""


def load_config(path: str | Path, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Read, validate (with defaults) and check a config file; returns the completed config."""
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    validate_config(config, schema_path)
    check_config(config)
    return config
