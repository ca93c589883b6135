"""The dataset: labels by config_type and status, excluded labels, DFT settings hashes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dft2mlip.io import save_figure
from dft2mlip.report.figures import plt


def dataset_section(table: pd.DataFrame | None, out_dir: Path, blocks: list, figures: list):
    blocks.append(("h", 2, "Dataset"))
    if table is None:
        blocks.append(("p", "The label table is missing; see *Missing artifacts*."))
        return
    id_col = next((c for c in ("structure_id", "id") if c in table), None)
    df = table.copy()
    if "config_type" not in df:
        df["config_type"] = "(no config_type column)"
    if "status" not in df:
        df["status"] = "(no status column)"
    counts = pd.crosstab(df["config_type"], df["status"])
    statuses = list(counts.columns)
    n_ok = int((df["status"] == "ok").sum())
    blocks.append(
        (
            "p",
            f"{len(df)} DFT labels, {n_ok} with status `ok`. Only `ok` labels enter training; "
            "every other label is listed below with its status and never enters silently.",
        )
    )
    rows = [
        [ct, *[int(counts.loc[ct, s]) for s in statuses], int(counts.loc[ct].sum())]
        for ct in counts.index
    ]
    rows.append(["total", *[int(counts[s].sum()) for s in statuses], int(counts.values.sum())])
    blocks.append(("table", ["config_type", *statuses, "total"], rows))
    if "split" in df:
        split_counts = df[df["status"] == "ok"].groupby("split").size()
        blocks.append(
            (
                "p",
                "Split of the `ok` labels: "
                + ", ".join(f"{k} {v}" for k, v in split_counts.items())
                + ".",
            )
        )
    out_of_splits = df["status"] != "ok"
    if "split" in df:
        out_of_splits |= df["split"] == "excluded"
    excluded = df[out_of_splits]
    if len(excluded):
        blocks.append(("p", f"**Excluded labels ({len(excluded)}):**"))
        ex_rows = [
            [
                str(r.get(id_col, "?")) if id_col else "?",
                str(r["config_type"]),
                str(r["status"]),
                str(r.get("excluded_reason") or "") if r["status"] == "ok" else "",
                str(r.get("message", "")),
            ]
            for _, r in excluded.iterrows()
        ]
        header = ["structure_id", "config_type", "status", "why excluded", "message"]
        blocks.append(("table", header, ex_rows))
    else:
        blocks.append(("p", "No label was excluded."))
    _settings_blocks(df, blocks)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bottom = np.zeros(len(counts))
    for s in statuses:
        ax.bar(counts.index.astype(str), counts[s].to_numpy(), bottom=bottom, label=str(s))
        bottom += counts[s].to_numpy()
    ax.set_ylabel("number of labels")
    ax.set_title("DFT labels by config_type and status")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    save_figure(fig, out_dir / "dataset.png")
    figures.append("dataset.png")
    blocks.append(("img", "dataset summary", "dataset.png"))


def _settings_blocks(df: pd.DataFrame, blocks: list) -> None:
    """DFT settings hashes per source; when the trained labels mix several, the settings that
    differ between them (from the imported labels' engine settings)."""
    if "settings_hash" not in df:
        return
    source = df["source"] if "source" in df else pd.Series("pipeline", index=df.index)
    trained = df["split"].isin(["train", "val", "test"]) if "split" in df else df["status"] == "ok"
    groups = df.assign(source=source, trained=trained).groupby(["settings_hash", "source"])
    rows = [[str(h), str(src), str(len(g)), str(int(g["trained"].sum()))]
            for (h, src), g in groups]  # fmt: skip
    n_trained = df.loc[trained, "settings_hash"].nunique()
    text = (
        "Every trained label shares one DFT settings hash."
        if n_trained <= 1
        else f"**The trained labels mix {n_trained} DFT settings hashes** "
        "(dataset.allow_mixed_settings or on_settings_mismatch: warn allowed it)."
    )
    blocks.append(("p", f"DFT settings of the labels. {text}"))
    blocks.append(("table", ["settings hash", "source", "labels", "in splits"], rows))
    if n_trained > 1 and "settings" in df:
        differing = _differing_settings(df.loc[trained])
        if differing:
            blocks.append(("p", "Settings that differ between the trained labels:"))
            blocks.append(("table", ["settings hash", *differing[0]], differing[1]))


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
