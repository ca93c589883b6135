"""The study: every run over seeds, the tuning choice and the verdict."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from dft2mlip.report.format import as_float, fmt


def _mean_spread(row: pd.Series, col: str) -> str:
    mean, std, n = row.get(f"{col}_mean"), row.get(f"{col}_std"), row.get(f"{col}_n", 0)
    if not math.isfinite(as_float(mean)):
        return "—"
    spread = f" ± {fmt(std, 2)}" if math.isfinite(as_float(std)) else " (1 seed)"
    return f"{fmt(mean)}{spread}" + (f" [{int(n)}]" if int(n) > 1 else "")


def study_section(study_dir: Path | None, out_dir: Path, blocks: list, figures: list, missing):
    """Every run x seed: mean ± standard deviation, the Pareto plot with the fixed-weight grid,
    the tuning choice and the verdict (all from results/study/, written by dft2mlip.study)."""
    from dft2mlip.study import STUDY_METRICS

    blocks.append(("h", 2, "The study: every run over seeds, and the verdict"))
    summary_csv = missing.path("study summary", study_dir / "summary.csv" if study_dir else None)
    study_json = missing.path("study verdict", study_dir / "study.json" if study_dir else None)
    if summary_csv is None or study_json is None:
        blocks.append(("p", "The study's files are missing: no verdict."))
        return
    summary = pd.read_csv(summary_csv)
    record = json.loads(study_json.read_text())
    blocks.append(
        (
            "p",
            "Each run is trained with the same seeds; cells give mean ± standard deviation over "
            "seeds [number of seeds]. Elastic-tensor error is 100·‖C_model − C_DFT‖/‖C_DFT‖ "
            "over the whole 6×6 tensor (relaxed ion when DFT has it). The MD-snapshot stress "
            "error is over the DFT snapshots of every run's MD path (the same frames for all).",
        )
    )
    header = ["run", "seeds"] + [f"{label} ({unit})" for _, label, unit in STUDY_METRICS]
    rows = [
        [r["run"], str(int(r["n_seeds"]))] + [_mean_spread(r, c) for c, _, _ in STUDY_METRICS]
        for _, r in summary.iterrows()
    ]
    blocks.append(("table", header, rows))
    pareto = study_dir / "pareto.png"
    if pareto.is_file():
        shutil.copyfile(pareto, out_dir / "pareto.png")
        figures.append("pareto.png")
        blocks.append(("img", "test-set errors of every run and seed, with the grid", "pareto.png"))
    tuning_blocks(record, blocks)
    blocks.append(("h", 3, f"Verdict (reference run: {record['reference']})"))
    blocks.append(("p", f"Rule: {record['rule']}."))
    blocks.append(("ul", list(record["verdict"])))
    standing = record.get("pareto") or []
    if standing:
        texts = [
            f"seed {s['seed']}: "
            + (
                f"dominated by {', '.join(s['dominated_by'])}"
                if s["dominated_by"]
                else "not dominated by any grid point"
            )  # fmt: skip
            for s in standing
        ]
        blocks.append(
            (
                "p",
                f"{record['reference']} against every point of the fixed-weight grid on test "
                "E, F and S MAE at once (a point dominates when it is no worse on all three and "
                "better on one): " + "; ".join(texts) + ".",
            )
        )


def tuning_blocks(record: Mapping, blocks: list) -> None:
    """The weight grid of each tuned run: validation score per point and the chosen one."""
    for tuning in record.get("tuning") or []:
        blocks.append(("h", 3, f"Tuning of {tuning['run']}"))
        blocks.append(("p", f"Chosen: **{tuning['chosen']}** by {tuning['criterion']}."))
        rows = [
            [
                g["name"] + (" ✓" if g["name"] == tuning["chosen"] else ""),
                ":".join(f"{g['weights'][c]:.3g}" for c in ("energy", "forces", "stress")),
                fmt(g["val_score"]),
                str(int(g["epoch"])),
            ]
            for g in tuning["grid"]
        ]
        blocks.append(("table", ["grid point", "w_E:w_F:w_S", "val score", "best epoch"], rows))
