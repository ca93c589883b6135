"""``write_report``: read every artifact, gather the sections in order, render both formats."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dft2mlip.report.artifacts import (
    Missing,
    RunArtifacts,
    load,
    read_elastic,
    read_json,
    read_metrics,
    read_table,
)
from dft2mlip.report.document import render_html, render_markdown
from dft2mlip.report.figures import REPORT_FIGURES, placeholder_figure
from dft2mlip.report.sections.active_learning import active_learning_section
from dft2mlip.report.sections.convergence import convergence_section
from dft2mlip.report.sections.dataset import dataset_section
from dft2mlip.report.sections.elastic import elastic_section
from dft2mlip.report.sections.families import families_section
from dft2mlip.report.sections.md import md_section
from dft2mlip.report.sections.reference import reference_section
from dft2mlip.report.sections.study import study_section
from dft2mlip.report.sections.test_errors import test_errors_section
from dft2mlip.report.sections.training import loss_record_section, weights_section
from dft2mlip.report.sections.trust import trust_section


@dataclass
class RunData:
    """What the report read of every run's artifacts (None where one is missing or broken)."""

    metrics: dict = field(default_factory=dict)
    histories: dict = field(default_factory=dict)
    elastic: dict = field(default_factory=dict)
    elastic_relaxed: dict = field(default_factory=dict)
    md: dict = field(default_factory=dict)
    stress_validation: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    losses: dict = field(default_factory=dict)


def read_runs(runs: Mapping[str, RunArtifacts], missing: Missing) -> RunData:
    """Every run's artifacts, each missing or broken one named in ``missing``."""
    data = RunData()
    for run, art in runs.items():
        data.metrics[run] = load(f"{run}: test metrics", art.metrics_json, read_metrics, missing)
        data.histories[run] = load(
            f"{run}: training history", art.history_csv, pd.read_csv, missing
        )
        data.elastic[run] = load(f"{run}: elastic tensor", art.elastic_json, read_elastic, missing)
        data.elastic_relaxed[run] = load(
            f"{run}: relaxed-ion elastic tensor", art.elastic_relaxed_json, read_elastic, missing
        )
        data.md[run] = load(f"{run}: deformation MD table", art.md_csv, pd.read_csv, missing)
        data.stress_validation[run] = load(
            f"{run}: stress validation", art.stress_validation_csv, pd.read_csv, missing
        )
        data.parity[run] = missing.path(f"{run}: parity plot", art.parity_png)
        data.losses[run] = load(f"{run}: loss record", art.loss_json, read_json, missing)
    return data


def intro_blocks(title: str, runs: Mapping) -> list[tuple]:
    """The title and the paragraph that says what the report compares
    (``templates/sections/intro.j2``)."""
    return [("section", "intro", {"title": title, "runs": list(runs)})]


def missing_blocks(missing: Missing) -> list[tuple]:
    """The closing list of the artifacts that could not be read
    (``templates/sections/missing.j2``)."""
    return [("section", "missing", {"items": missing.items})]


def _section_blocks(opts: Mapping[str, Any], runs: RunData, table, dft: tuple, out_dir: Path,
                    missing: Missing) -> tuple[list[tuple], list[str]]:  # fmt: skip
    """Every section after the introduction, in the report's order, and the figures written."""
    blocks: list[tuple] = []
    figures: list[str] = []
    trust_section(opts["trust"], blocks)
    if opts["settings"]:
        blocks.append(("section", "settings", {"settings": opts["settings"]}))
    if opts["reference"] is not None:
        reference_section(opts["reference"], blocks)
    families_section(opts["families"], blocks)
    dataset_section(table, out_dir, blocks, figures)
    convergence_section(opts["convergence_dir"], out_dir, blocks, figures, missing)
    weights_section(runs.histories, out_dir, blocks, figures, opts["run_descriptions"])
    loss_record_section(runs.losses, blocks)
    test_errors_section(runs.metrics, runs.parity, out_dir, blocks, figures)
    tensors = {"clamped_ion": (dft[0], runs.elastic), "relaxed_ion": (dft[1], runs.elastic_relaxed)}
    elastic_section(tensors, out_dir, blocks, figures, opts["reference"])
    md_section(runs.md, runs.stress_validation, opts["md_component"], opts["md_strain_label"],
               out_dir, blocks, figures)  # fmt: skip
    study_dir = Path(opts["study_dir"]) if opts["study_dir"] else None
    study_section(study_dir, out_dir, blocks, figures, missing)
    al_dir = Path(opts["active_learning_dir"]) if opts["active_learning_dir"] else None
    active_learning_section(al_dir, out_dir, blocks, missing)
    return blocks, figures


def write_report(
    out_dir: str | Path,
    *,
    dataset_table: pd.DataFrame | str | Path | None,
    runs: Mapping[str, RunArtifacts],
    dft_elastic_json: str | Path | None,
    dft_elastic_relaxed_json: str | Path | None = None,
    md_component: str = "xx",
    md_strain_label: str = "engineering strain",
    convergence_dir: str | Path | None = None,
    title: str = "dft2mlip report",
    run_descriptions: Mapping[str, str] | None = None,
    settings: Mapping[str, object] | None = None,
    study_dir: str | Path | None = None,
    write_html: bool = True,
    active_learning_dir: str | Path | None = None,
    reference: Mapping[str, Any] | None = None,
    trust: pd.DataFrame | None = None,
    families: str | Path | None = None,
) -> Path:
    """Write ``summary.md`` (and ``report.html``) with figures into ``out_dir``.

    Parameters
    ----------
    out_dir
        Output folder (created); figures are written next to the Markdown.
    dataset_table
        The label table (``labels.parquet`` path, CSV path or DataFrame) with columns
        structure_id, config_type, status and optionally message and split.
    runs
        Run name -> :class:`RunArtifacts`.
    dft_elastic_json, dft_elastic_relaxed_json
        DFT clamped-ion and relaxed-ion elastic tensors written by
        :func:`dft2mlip.validate.elastic.write_elastic_json`.
    md_component, md_strain_label
        Stress component the MD curves show (e.g. "xx", "xy" for shear in xy) and what the MD
        strain axis means (e.g. "engineering strain along x").
    convergence_dir
        Folder of the DFT convergence study; every ``*.csv`` in it is shown when it exists
        (absent or empty: the report says no study was run).
    run_descriptions, settings
        Optional one-line description per run and key/value settings shown at the top.
    study_dir
        Folder written by :func:`dft2mlip.study.write_study` (every run x seed, verdict); the
        detailed sections above show the first seed of each run.
    active_learning_dir
        Folder written by :func:`dft2mlip.active.write_summary`; None: no such section.
    reference
        The reference cell's record (:func:`dft2mlip.dft.relax.reference_record`); None: not shown.
    trust
        :func:`trust_table` of every model: the first screen (held-out MD-condition stress
        error beside the test-set error per run, with a verdict). None: says there is none.
    families
        ``family_offsets.json`` of the cross-family check (:mod:`dft2mlip.validate.families`);
        None: no such section (the check did not run).

    Returns
    -------
    pathlib.Path
        The path of ``summary.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = Missing()
    if isinstance(dataset_table, pd.DataFrame):
        table = dataset_table
    else:
        table = load("dataset label table", dataset_table, read_table, missing)
    run_data = read_runs(runs, missing)
    dft = (load("DFT elastic tensor", dft_elastic_json, read_elastic, missing),
           load("DFT relaxed-ion elastic tensor", dft_elastic_relaxed_json, read_elastic,
                missing))  # fmt: skip
    opts = dict(trust=trust, families=families, settings=settings, reference=reference,
                study_dir=study_dir, convergence_dir=convergence_dir,
                run_descriptions=run_descriptions, md_component=md_component,
                md_strain_label=md_strain_label,
                active_learning_dir=active_learning_dir)  # fmt: skip
    sections, figures = _section_blocks(opts, run_data, table, dft, out_dir, missing)
    blocks = intro_blocks(title, runs) + sections + missing_blocks(missing)
    return _write_files(out_dir, blocks, figures, title, write_html)


def _write_files(out_dir: Path, blocks: list, figures: list, title: str, write_html: bool) -> Path:
    """``summary.md``, ``report.html`` and a placeholder for every declared figure not drawn."""
    for name in set(REPORT_FIGURES) - set(figures):
        placeholder_figure(
            out_dir / name, f"{name}: no data for this figure in this run (see summary.md)"
        )
    summary = out_dir / "summary.md"
    summary.write_text(render_markdown(blocks))
    if write_html:
        (out_dir / "report.html").write_text(render_html(blocks, title))
    return summary
