"""The dataset: labels by config_type and status, excluded labels, DFT settings hashes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dft2mlip.io import save_figure
from dft2mlip.report.figures import plt


@dataclass
class SettingsData:
    """DFT settings hashes of the labels: one row per (hash, source), how many hashes the
    trained labels mix, and (keys, rows) of the engine settings that differ between them."""

    rows: list[list[str]]
    n_trained: int
    differing: tuple[list[str], list[list[str]]] | None = None


@dataclass
class DatasetData:
    """The dataset section's data (``n_labels`` None: the label table is missing)."""

    n_labels: int | None = None
    n_ok: int = 0
    statuses: list[str] = field(default_factory=list)
    count_rows: list[list] = field(default_factory=list)
    split_counts: dict[str, int] | None = None
    excluded_rows: list[list[str]] = field(default_factory=list)
    settings: SettingsData | None = None
    figure: str | None = None


def _with_columns(table: pd.DataFrame) -> pd.DataFrame:
    df = table.copy()
    if "config_type" not in df:
        df["config_type"] = "(no config_type column)"
    if "status" not in df:
        df["status"] = "(no status column)"
    return df


def excluded_rows(df: pd.DataFrame) -> list[list[str]]:
    """Every label not in a split: id, config_type, status, why (ok labels) and message."""
    id_col = next((c for c in ("structure_id", "id") if c in df), None)
    out_of_splits = df["status"] != "ok"
    if "split" in df:
        out_of_splits |= df["split"] == "excluded"
    return [[str(r.get(id_col, "?")) if id_col else "?", str(r["config_type"]), str(r["status"]),
             str(r.get("excluded_reason") or "") if r["status"] == "ok" else "",
             str(r.get("message", ""))]
            for _, r in df[out_of_splits].iterrows()]  # fmt: skip


def gather_dataset(table: pd.DataFrame | None) -> DatasetData:
    """The section's data from the label table (None: missing)."""
    if table is None:
        return DatasetData()
    df = _with_columns(table)
    counts = pd.crosstab(df["config_type"], df["status"])
    statuses = list(counts.columns)
    rows = [[ct, *[int(counts.loc[ct, s]) for s in statuses], int(counts.loc[ct].sum())]
            for ct in counts.index]  # fmt: skip
    rows.append(["total", *[int(counts[s].sum()) for s in statuses], int(counts.values.sum())])
    splits = None
    if "split" in df:
        splits = dict(df[df["status"] == "ok"].groupby("split").size().items())
    return DatasetData(len(df), int((df["status"] == "ok").sum()), statuses, rows, splits,
                       excluded_rows(df), gather_settings(df))  # fmt: skip


def dataset_figure(table: pd.DataFrame, out_dir: Path) -> str:
    """``dataset.png``: labels per config_type, stacked by status."""
    df = _with_columns(table)
    counts = pd.crosstab(df["config_type"], df["status"])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bottom = np.zeros(len(counts))
    for s in counts.columns:
        ax.bar(counts.index.astype(str), counts[s].to_numpy(), bottom=bottom, label=str(s))
        bottom += counts[s].to_numpy()
    ax.set_ylabel("number of labels")
    ax.set_title("DFT labels by config_type and status")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    save_figure(fig, out_dir / "dataset.png")
    return "dataset.png"


def dataset_section(table: pd.DataFrame | None, out_dir: Path, blocks: list, figures: list):
    """Labels by config_type and status, the excluded ones, the DFT settings hashes and the
    figure (worded by ``templates/sections/dataset.j2``)."""
    data = gather_dataset(table)
    if table is not None:
        data.figure = dataset_figure(table, out_dir)
        figures.append(data.figure)
    blocks.append(("section", "dataset", data))


def gather_settings(df: pd.DataFrame) -> SettingsData | None:
    """DFT settings hashes per source; when the trained labels mix several, the settings that
    differ between them (from the imported labels' engine settings). None: no hash column."""
    if "settings_hash" not in df:
        return None
    source = df["source"] if "source" in df else pd.Series("pipeline", index=df.index)
    trained = df["split"].isin(["train", "val", "test"]) if "split" in df else df["status"] == "ok"
    groups = df.assign(source=source, trained=trained).groupby(["settings_hash", "source"])
    rows = [[str(h), str(src), str(len(g)), str(int(g["trained"].sum()))]
            for (h, src), g in groups]  # fmt: skip
    n_trained = df.loc[trained, "settings_hash"].nunique()
    differing = None
    if n_trained > 1 and "settings" in df:
        differing = _differing_settings(df.loc[trained])
    return SettingsData(rows, int(n_trained), differing)


def _differing_settings(df: pd.DataFrame) -> tuple[list[str], list[list[str]]] | None:
    """(keys, one row per settings hash) of the engine settings that are not the same for all."""
    per_hash = {}
    for h, g in df.groupby("settings_hash"):
        text = next((t for t in g["settings"] if t), "")
        per_hash[str(h)] = json.loads(text) if text else {}
    keys = sorted({k for d in per_hash.values() for k in d})
    differ = [k for k in keys if len({json.dumps(d.get(k), default=str) for d in
                                      per_hash.values()}) > 1]  # fmt: skip
    if not differ:
        return None
    rows = [[h, *[str(d.get(k, "—")) for k in differ]] for h, d in per_hash.items()]
    return differ, rows
