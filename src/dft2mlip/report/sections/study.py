"""The study: every run over seeds, the tuning choice and the verdict."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dft2mlip.report.format import as_float, fmt


def _mean_spread(row: pd.Series, col: str) -> str:
    mean, std, n = row.get(f"{col}_mean"), row.get(f"{col}_std"), row.get(f"{col}_n", 0)
    if not math.isfinite(as_float(mean)):
        return "—"
    spread = f" ± {fmt(std, 2)}" if math.isfinite(as_float(std)) else " (1 seed)"
    return f"{fmt(mean)}{spread}" + (f" [{int(n)}]" if int(n) > 1 else "")


@dataclass
class StudyData:
    """The study section's data (``record`` None: its files are missing): the summary table
    (formatted mean ± std per metric), the Pareto figure, the study's record (verdict, rule,
    Pareto standing, tuning) and each tuned run's grid rows."""

    record: Mapping | None = None
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    figure: str | None = None
    tuning: list[tuple[Mapping, list[list[str]]]] = field(default_factory=list)


def tuning_rows(tuning: Mapping) -> list[list[str]]:
    """A tuned run's grid: point (✓ the chosen one), weights E:F:S, validation score, epoch."""
    return [[g["name"] + (" ✓" if g["name"] == tuning["chosen"] else ""),
             ":".join(f"{g['weights'][c]:.3g}" for c in ("energy", "forces", "stress")),
             fmt(g["val_score"]), str(int(g["epoch"]))]
            for g in tuning["grid"]]  # fmt: skip


def gather_study(study_dir: Path | None, out_dir: Path, missing) -> StudyData:
    """The section's data from ``results/study/`` (written by :mod:`dft2mlip.study`), the Pareto
    figure copied beside the report; no record when a file is missing (named in ``missing``)."""
    from dft2mlip.study import STUDY_METRICS

    summary_csv = missing.path("study summary", study_dir / "summary.csv" if study_dir else None)
    study_json = missing.path("study verdict", study_dir / "study.json" if study_dir else None)
    if summary_csv is None or study_json is None:
        return StudyData()
    summary = pd.read_csv(summary_csv)
    record = json.loads(study_json.read_text())
    header = ["run", "seeds"] + [f"{label} ({unit})" for _, label, unit in STUDY_METRICS]
    rows = [[r["run"], str(int(r["n_seeds"]))] + [_mean_spread(r, c) for c, _, _ in STUDY_METRICS]
            for _, r in summary.iterrows()]  # fmt: skip
    figure = None
    if (study_dir / "pareto.png").is_file():
        figure = "pareto.png"
        shutil.copyfile(study_dir / "pareto.png", out_dir / figure)
    tuning = [(t, tuning_rows(t)) for t in record.get("tuning") or []]
    return StudyData(record, header, rows, figure, tuning)


def study_section(study_dir: Path | None, out_dir: Path, blocks: list, figures: list, missing):
    """Every run x seed: mean ± standard deviation, the Pareto plot with the fixed-weight grid,
    the tuning choice and the verdict (all from results/study/, written by dft2mlip.study;
    worded by ``templates/sections/study.j2``)."""
    data = gather_study(study_dir, out_dir, missing)
    figures.extend([data.figure] if data.figure else [])
    blocks.append(("section", "study", data))
