"""The final report: dataset, training runs, test errors, elastic constants, deformation MD.

Every number comes from the artifact files of the pipeline; an artifact that is missing is named
in the report instead of stopping it. The report is ``summary.md`` (Markdown) with PNG figures
beside it, and the same content as ``report.html``.
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dft2mlip.io import save_figure  # noqa: E402
from dft2mlip.validate.deform import draw_stress_strain, stress_validation_summary  # noqa: E402
from dft2mlip.validate.elastic import CUBIC_WARN_REL, cubic_constants, read_elastic_json  # noqa: E402
from dft2mlip.validate.metrics import VOIGT_COMPONENTS  # noqa: E402

WEIGHT_COLUMNS = {"energy": "weight_energy", "forces": "weight_forces", "stress": "weight_stress"}
TEST_METRICS = [
    # (key in metrics json, column header, unit)
    ("energy_mae_meV_per_atom", "E MAE", "meV/atom"),
    ("energy_rmse_meV_per_atom", "E RMSE", "meV/atom"),
    ("forces_mae_meV_per_A", "F MAE", "meV/Å"),
    ("forces_rmse_meV_per_A", "F RMSE", "meV/Å"),
    ("stress_mae_GPa", "S MAE", "GPa"),
    ("stress_rmse_GPa", "S RMSE", "GPa"),
]
#: figures write_report always leaves in its folder (a placeholder when the data are missing),
#: so that a workflow can declare them as outputs for ``snakemake --report``
REPORT_FIGURES = (
    "dataset.png",
    "convergence.png",
    "loss_weights.png",
    "test_errors.png",
    "elastic.png",
    "stress_strain.png",
    "pareto.png",
)
ELASTIC_QUANTITIES = [
    ("C11", "C11"),
    ("C12", "C12"),
    ("C44", "C44"),
    ("bulk_modulus_GPa", "B (VRH)"),
    ("shear_modulus_GPa", "G (VRH)"),
]


@dataclass
class RunArtifacts:
    """Paths of one training run's outputs (any may be None or missing on disk)."""

    metrics_json: str | Path | None = None
    history_csv: str | Path | None = None
    elastic_json: str | Path | None = None
    elastic_relaxed_json: str | Path | None = None
    md_csv: str | Path | None = None
    stress_validation_csv: str | Path | None = None
    parity_png: str | Path | None = None
    loss_json: str | Path | None = None


# --------------------------------------------------------------------------- document model
# A report is a list of blocks rendered twice: ("h", level, text), ("p", text),
# ("table", header, rows), ("img", alt, filename), ("ul", items).


def _fmt(x: object, sig: int = 3) -> str:
    """A number with ``sig`` significant figures in fixed notation ("—" for None/NaN)."""
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(int(x))
    v = _float(x)
    if not math.isfinite(v):
        return "—"
    if v == 0:
        return "0"
    decimals = sig - 1 - math.floor(math.log10(abs(v)))
    if decimals > 6:
        return f"{v:.{sig}g}"
    return f"{v:.{max(decimals, 0)}f}"


def _fixed(x: object, decimals: int = 1) -> str:
    v = _float(x)
    return f"{v:.{decimals}f}" if math.isfinite(v) else "—"


def _float(x: object) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _render_markdown(blocks: list[tuple]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append("#" * block[1] + " " + block[2])
        elif kind == "p":
            out.append(block[1])
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows)
        elif kind == "img":
            out.append(f"![{block[1]}]({block[2]})")
        elif kind == "ul":
            out.extend(f"- {item}" for item in block[1])
        out.append("")
    return "\n".join(out)


#: the Markdown renderer of report blocks, for sections written by other modules
render_markdown = _render_markdown


def _active_learning_section(al_dir: Path | None, out_dir: Path, blocks: list, missing) -> None:
    """The active-learning section written by :func:`dft2mlip.active.write_summary` (blocks and
    figures), when active learning ran."""
    if al_dir is None:
        return
    record_path = missing.path("active-learning summary", al_dir / "summary.json")
    if record_path is None:
        blocks.append(("p", "Active learning ran but its summary is missing."))
        return
    for name in ("al_generations.png", "al_calibration.png"):
        if (al_dir / name).exists():
            shutil.copyfile(al_dir / name, out_dir / name)
    blocks.extend(tuple(b) for b in json.loads(record_path.read_text())["blocks"])


def _inline_html(text: str) -> str:
    text = html.escape(str(text), quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _render_html(blocks: list[tuple], title: str) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.45}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
        "padding:.25em .6em;text-align:right}th{background:#eee}td:first-child{text-align:left}"
        "img{max-width:100%}code{background:#f3f3f3}</style>",
        "</head><body>",
    ]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"<h{block[1]}>{_inline_html(block[2])}</h{block[1]}>")
        elif kind == "p":
            out.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "table":
            out.append("<table><tr>" + "".join(f"<th>{_inline_html(h)}</th>" for h in block[1]))
            for row in block[2]:
                out.append("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>")
            out.append("</table>")
        elif kind == "img":
            src = html.escape(block[2])
            out.append(f'<p><img src="{src}" alt="{html.escape(block[1])}"></p>')
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block[1]) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- loading


class _Missing:
    """Collects artifacts that could not be read, for the report's 'Missing artifacts' list."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def path(self, what: str, path: str | Path | None) -> Path | None:
        if path is None:
            self.items.append(f"{what}: not provided")
            return None
        p = Path(path)
        if not p.is_file():
            self.items.append(f"{what}: missing (`{p}`)")
            return None
        return p

    def failed(self, what: str, path: Path, err: Exception) -> None:
        self.items.append(f"{what}: unreadable (`{path}`: {type(err).__name__}: {err})")


def _load(what: str, path, loader, missing: _Missing):
    p = missing.path(what, path)
    if p is None:
        return None
    try:
        return loader(p)
    except Exception as err:  # noqa: BLE001 - a broken artifact is reported, not fatal
        missing.failed(what, p, err)
        return None


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _read_metrics(path: Path) -> dict:
    data = json.loads(path.read_text())
    if "energy_mae_meV_per_atom" not in data and isinstance(data.get("test"), dict):
        data = data["test"]
    return data


def _read_elastic(path: Path) -> dict:
    c, record = read_elastic_json(path)
    out = cubic_constants(c)
    for key in ("strain_magnitude", "relax_fmax_eV_per_A", "protocol"):
        if key in record:
            out[key] = record[key]
    return out


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# --------------------------------------------------------------------------- sections


def _dataset_section(table: pd.DataFrame | None, out_dir: Path, blocks: list, figures: list):
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


_LATTICE_ROWS = (("a (Å)", "a_A", 4), ("b (Å)", "b_A", 4), ("c (Å)", "c_A", 4),
                 ("α (°)", "alpha_deg", 2), ("β (°)", "beta_deg", 2), ("γ (°)", "gamma_deg", 2),
                 ("volume (Å³)", "volume_A3", 3))  # fmt: skip


def _lattice_table(initial: Mapping, final: Mapping | None, cell: str, blocks: list) -> None:
    rows = []
    for name, key, decimals in _LATTICE_ROWS:
        before = initial.get(key)
        after = (final or {}).get(key)
        change = ("—" if after is None or not before
                  else f"{100 * (after / before - 1):+.2f} %")  # fmt: skip
        rows.append([f"{cell} {name}", _fixed(before, decimals), _fixed(after, decimals), change])
    blocks.append(("table", ["parameter", "configured", "DFT-relaxed", "change"], rows))


def _reference_section(record: Mapping, blocks: list) -> None:
    """The reference cell: configured vs DFT-relaxed lattice parameters, residual pressure."""
    blocks.append(("h", 2, "Reference cell"))
    if not record.get("relaxed"):
        blocks.append(("p", f"**Not relaxed.** {record.get('message', '')}"))
        return
    status = record.get("status")
    blocks.append((
        "p",
        f"Every strained, elastic and MD cell is made from the cell relaxed with DFT "
        f"({record.get('engine')}, cell and ions, the dataset's settings; k-point mesh "
        f"{record.get('kpoint_mesh')}). Status **{status}**: {record.get('message')}.",
    ))  # fmt: skip
    conventional = record.get("conventional") or {}
    if conventional.get("initial"):
        _lattice_table(conventional["initial"], conventional.get("final"), "conventional",
                       blocks)  # fmt: skip
    _lattice_table(record.get("initial", {}), record.get("final"), "primitive", blocks)
    stress = record.get("stress_GPa")
    items = [
        f"ionic steps: {record.get('n_steps')}",
        f"volume change: {_fixed(record.get('volume_change_percent'), 2)} %",
        f"residual pressure of the final state: {_fmt(record.get('pressure_GPa'))} GPa "
        "(compression positive)",
        "residual stress (GPa, Voigt xx yy zz yz xz xy, tension positive): "
        + (" ".join(f"{s:.3g}" for s in stress) if stress else "—"),
        f"largest residual force: {_fmt(record.get('max_force_eV_per_A'))} eV/Å",
        f"k-point mesh of the relaxed cell (every structure family's): "
        f"{record.get('kpoint_mesh_relaxed_cell', '—')}",
    ]
    blocks.append(("ul", items))


def _convergence_section(
    folder: str | Path | None, out_dir: Path, blocks: list, figures: list, missing: _Missing
) -> None:
    """Every CSV of the DFT convergence study, as a table and a plot, when the study ran."""
    blocks.append(("h", 2, "DFT convergence evidence"))
    files = sorted(Path(folder).glob("*.csv")) if folder and Path(folder).is_dir() else []
    if not files:
        blocks.append(
            (
                "p",
                "No convergence study was run for this report (no CSV in "
                f"`{folder or 'results/convergence'}`): the DFT settings are the configured "
                "ones, not chosen from stress, force and energy tolerances.",
            )
        )
        return
    blocks.append(
        (
            "p",
            "The DFT settings were checked for convergence of stress, forces and energy against "
            "the tightest settings tried; each table below is one study file (values as written "
            "by the study; units in the column names).",
        )
    )
    chosen_path = Path(folder) / "chosen_settings.json"
    if chosen_path.is_file():
        try:
            chosen = json.loads(chosen_path.read_text())
            errors = ", ".join(f"{k} {_fmt(v)}" for k, v in chosen.get("errors", {}).items())
            tols = ", ".join(f"{k} {_fmt(v)}" for k, v in chosen.get("tolerances", {}).items())
            text = (
                f"**Chosen settings** ({chosen.get('engine', '?')}): cutoff "
                f"{_fmt(chosen.get('cutoff'))}, k-spacing {_fmt(chosen.get('kspacing_per_A'))} "
                f"1/Å (point `{chosen.get('point', '?')}`, reference "
                f"`{chosen.get('reference', '?')}`): errors {errors or '—'} within the "
                f"tolerances {tols or '—'}."
            )
            if chosen.get("warning"):
                text += f" Warning: {chosen['warning']}"
            blocks.append(("p", text))
        except Exception as err:  # noqa: BLE001 - a broken file is named, not fatal
            missing.failed("convergence choice", chosen_path, err)
    study_png = sorted(Path(folder).glob("*.png"))
    fig, axes = plt.subplots(1, len(files), figsize=(5.0 * len(files), 3.8), squeeze=False)
    for ax, path in zip(axes[0], files, strict=True):
        try:
            df = pd.read_csv(path)
        except Exception as err:  # noqa: BLE001 - a broken file is named, not fatal
            missing.failed("convergence study", path, err)
            ax.set_axis_off()
            continue
        blocks.append(("p", f"**{path.stem}** (`{path.name}`, {len(df)} rows):"))
        shown = df.head(30)
        blocks.append(
            (
                "table",
                list(shown.columns),
                [[_fmt(v) for v in row] for row in shown.itertuples(index=False)],
            )
        )
        numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        x = df.columns[0]
        ys = [
            c
            for c in numeric
            if c != x and any(k in c.lower() for k in ("err", "delta", "diff", "dev"))
        ]
        ys = ys or [c for c in numeric if c != x][:3]
        for col in ys:
            y = np.abs(df[col].to_numpy(dtype=float))
            ax.plot(df[x], np.where(y > 0, y, np.nan), marker="o", label=col)
        if ys and (np.abs(df[ys].to_numpy(dtype=float)) > 0).any():
            ax.set_yscale("log")
        ax.set_xlabel(str(x))
        ax.set_title(path.stem)
        ax.legend(fontsize=7)
    fig.tight_layout()
    if study_png:  # the study's own figure (tolerances, chosen point) when it wrote one
        plt.close(fig)
        shutil.copyfile(study_png[0], out_dir / "convergence.png")
    else:
        save_figure(fig, out_dir / "convergence.png")
    figures.append("convergence.png")
    blocks.append(("img", "DFT convergence study", "convergence.png"))


def _placeholder_figure(path: Path, text: str) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 1.6))
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    save_figure(fig, path, dpi=80)


def _weights_section(histories: dict, out_dir: Path, blocks: list, figures: list, descriptions):
    blocks.append(("h", 2, "Training runs and loss weights"))
    blocks.append(
        (
            "p",
            "Each run trains the same architecture on the same data; they differ only in how the "
            "energy (E), force (F) and stress (S) loss terms are weighted. Adaptive schemes "
            "recompute the weights every epoch from each term's learning progress; fixed schemes "
            "keep them constant.",
        )
    )
    if descriptions:
        blocks.append(("ul", [f"**{k}**: {v}" for k, v in descriptions.items()]))
    available = {k: h for k, h in histories.items() if h is not None}
    if not available:
        blocks.append(("p", "No training history is available."))
        return
    rows = []
    for run, h in available.items():
        last = h.iloc[-1]
        rows.append([run, str(len(h)), *[_fmt(last.get(col)) for col in WEIGHT_COLUMNS.values()]])
    blocks.append(("table", ["run", "epochs", "final w_E", "final w_F", "final w_S"], rows))
    n = len(available)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, (run, h) in zip(axes[0], available.items(), strict=True):
        epoch = h["epoch"].to_numpy() if "epoch" in h else np.arange(1, len(h) + 1)
        for (term, col), style in zip(WEIGHT_COLUMNS.items(), ("-", "--", ":"), strict=True):
            if col not in h:
                continue
            w = h[col].to_numpy(dtype=float)
            label = term if np.any(w > 0) else f"{term} (0, not shown)"
            ax.plot(epoch, np.where(w > 0, w, np.nan), ls=style, lw=1.8, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(run)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("loss weight")
    fig.tight_layout()
    save_figure(fig, out_dir / "loss_weights.png")
    figures.append("loss_weights.png")
    blocks.append(("img", "loss weights vs epoch", "loss_weights.png"))


def _loss_record_section(records: dict, blocks: list) -> None:
    """The loss each model was trained with, read back from the record stored with it
    (``model.loss.json``, the same as in ``model.pt`` and the MACE export)."""
    have = {run: r for run, r in records.items() if r is not None}
    if not have:
        return
    blocks.append(("h", 3, "The loss stored with each model"))
    blocks.append(
        (
            "p",
            "Read from `model.loss.json` beside each model (the same record is in `model.pt` and "
            "in the MACE export as `dft2mlip_loss`, with the weight of every epoch). Reference "
            "losses are the first-epoch MSEs the terms are divided by under `normalise: initial`.",
        )
    )
    rows = []
    for run, r in have.items():
        refs = r.get("reference_losses") or {}
        final = r.get("final_weights") or {}
        options = ", ".join(f"{k}={v}" for k, v in (r.get("options") or {}).items())
        rows.append(
            [
                run,
                f"{r.get('scheme')}" + (f" ({options})" if options else ""),
                str(r.get("normalise")),
                " / ".join(f"{_float(refs.get(c)):.2g}" for c in WEIGHT_COLUMNS) if refs else "—",
                " / ".join(_fmt(final.get(c)) for c in WEIGHT_COLUMNS),
                str(r.get("model_epoch", "—")),
            ]
        )
    header = ["run", "scheme", "normalise", "L_ref E / F / S", "final w E / F / S", "model epoch"]
    blocks.append(("table", header, rows))


def _test_section(metrics: dict, parity: dict, out_dir: Path, blocks: list, figures: list):
    blocks.append(("h", 2, "Test-set errors"))
    blocks.append(
        (
            "p",
            "Errors on the held-out test structures: energy per atom, every Cartesian force "
            "component, every Voigt stress component (lower is better).",
        )
    )
    header = ["run", "structures"] + [f"{h} ({u})" for _, h, u in TEST_METRICS]
    rows = []
    for run, m in metrics.items():
        if m is None:
            rows.append([run, "missing"] + ["—"] * len(TEST_METRICS))
        else:
            rows.append(
                [run, _fmt(m.get("n_structures"))] + [_fmt(m.get(k)) for k, _, _ in TEST_METRICS]
            )
    blocks.append(("table", header, rows))
    have = {k: m for k, m in metrics.items() if m is not None}
    if have:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
        runs = list(have)
        x = np.arange(len(runs))
        for ax, (comp, unit) in zip(
            axes, [("energy", "meV/atom"), ("forces", "meV/Å"), ("stress", "GPa")], strict=True
        ):
            keys = [k for k, _, u in TEST_METRICS if k.startswith(comp)]
            for j, key in enumerate(keys):
                vals = [_float(have[r].get(key)) for r in runs]
                ax.bar(x + (j - 0.5) * 0.38, vals, width=0.38, label=key.split("_")[1].upper())
            ax.set_xticks(x, runs)
            ax.set_ylabel(f"{comp} error ({unit})")
            ax.legend(fontsize=8)
        fig.suptitle("Test-set errors per run")
        fig.tight_layout()
        save_figure(fig, out_dir / "test_errors.png")
        figures.append("test_errors.png")
        blocks.append(("img", "test-set errors per run", "test_errors.png"))
    for run, p in parity.items():
        if p is None:
            continue
        name = f"parity_{_safe_name(run)}.png"
        if p.resolve() != (out_dir / name).resolve():
            shutil.copyfile(p, out_dir / name)
        figures.append(name)
        blocks.append(("p", f"Parity plot, run **{run}**:"))
        blocks.append(("img", f"parity {run}", name))


_PROTOCOL_TEXT = {
    "clamped_ion": (
        "Clamped ion",
        "the atoms stay at the positions scaled with the cell (no internal relaxation)",
    ),
    "relaxed_ion": (
        "Relaxed ion",
        "in each fixed strained cell the atoms are relaxed until max |F| per atom is below "
        "{fmax} eV/Å (pw.x BFGS for DFT, ASE BFGS for the models), so the internal-strain "
        "contribution is included; this is the tensor to compare with experiment",
    ),
}


def _elastic_table(protocol: str, dft: dict | None, models: dict, blocks: list) -> dict[str, float]:
    """One protocol's table; returns each run's mean |% error| over C11, C12, C44."""
    title, how = _PROTOCOL_TEXT[protocol]
    fmax = dft.get("relax_fmax_eV_per_A") if dft else None
    fmax = fmax or next(
        (
            m.get("relax_fmax_eV_per_A")
            for m in models.values()
            if m and m.get("relax_fmax_eV_per_A")
        ),
        "the configured",
    )
    blocks.append(("h", 3, f"{title} (GPa)"))
    blocks.append(("p", f"{title}: {how.format(fmax=fmax)}."))
    header = ["quantity", "DFT"] + list(models)
    rows = []
    for key, name in ELASTIC_QUANTITIES:
        row = [f"{name} (GPa)", _fixed(dft.get(key)) if dft else "missing"]
        for m in models.values():
            if m is None:
                row.append("missing")
                continue
            cell = _fixed(m.get(key))
            if dft and dft.get(key):
                cell += f" ({100.0 * (m[key] - dft[key]) / dft[key]:+.1f}%)"
            row.append(cell)
        rows.append(row)
    blocks.append(("table", header, rows))
    warnings = []
    for label, c in [("DFT", dft), *models.items()]:
        if c is None:
            continue
        if not c["is_cubic"]:
            warnings.append(
                f"{label}: the tensor deviates from cubic symmetry by "
                f"{c['cubic_deviation_GPa']:.2f} GPa "
                f"({100 * c['cubic_deviation_rel']:.1f}% of C11, "
                f"above {100 * CUBIC_WARN_REL:.0f}%); C11/C12/C44 are averages, see the JSON for "
                "the full tensor."
            )
        if not c["positive_definite"]:
            warnings.append(
                f"{label}: the tensor is not positive definite (smallest eigenvalue "
                f"{c['min_eigenvalue_GPa']:.1f} GPa): mechanically unstable."
            )
    if warnings:
        blocks.append(("p", f"**Warnings ({title.lower()}):**"))
        blocks.append(("ul", warnings))
    errors = {}
    if dft:
        for run, m in models.items():
            if m is not None:
                errs = [abs(m[k] - dft[k]) / abs(dft[k]) for k in ("C11", "C12", "C44") if dft[k]]
                errors[run] = 100.0 * float(np.mean(errs)) if errs else float("nan")
    return errors


def _elastic_figure(tensors: dict, out_dir: Path, figures: list, blocks: list) -> None:
    """Grouped bars of C11, C12, C44, B, G: DFT and every run, one panel per protocol."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.0), sharey=True)
    for ax, protocol in zip(axes, ("clamped_ion", "relaxed_ion"), strict=True):
        dft, models = tensors[protocol]
        sources = [("DFT", dft), *models.items()]
        width = 0.8 / max(len(sources), 1)
        x = np.arange(len(ELASTIC_QUANTITIES))
        for j, (name, c) in enumerate(sources):
            vals = [_float(c.get(k)) if c else np.nan for k, _ in ELASTIC_QUANTITIES]
            hatch = "//" if name == "DFT" else None
            ax.bar(x + (j - (len(sources) - 1) / 2) * width, vals, width, label=name, hatch=hatch)
        ax.set_xticks(x, [n for _, n in ELASTIC_QUANTITIES])
        ax.set_title(_PROTOCOL_TEXT[protocol][0])
        ax.legend(fontsize=8)
    axes[0].set_ylabel("GPa")
    fig.suptitle("Elastic constants and moduli: DFT vs each model")
    fig.tight_layout()
    save_figure(fig, out_dir / "elastic.png")
    figures.append("elastic.png")
    blocks.append(("img", "elastic constants DFT vs models", "elastic.png"))


def _elastic_section(
    tensors: dict, out_dir: Path, blocks: list, figures: list, reference: Mapping | None = None
) -> dict:
    """Both elastic tables and the figure; returns {protocol: {run: mean |% error|}}."""
    blocks.append(("h", 2, "Elastic constants"))
    dft = tensors["clamped_ion"][0] or tensors["relaxed_ion"][0]
    delta = f" = {dft['strain_magnitude']:g}" if dft and "strain_magnitude" in dft else ""
    relaxed = bool(reference and reference.get("relaxed") and reference.get("status") == "ok")
    cell = "the DFT-relaxed cell" if relaxed else "the configured cell, not relaxed with DFT"
    cell += "; see Reference cell" if reference else ""
    blocks.append(
        (
            "p",
            f"The reference cell ({cell}) is strained by "
            f"±δ{delta} along each of the six Voigt directions and C is the least-squares slope "
            "of stress vs strain (with a fitted residual stress of the reference cell). DFT and "
            "every model use the same strained cells, the same fit and, for relaxed ion, the "
            "same force threshold; the DFT stresses use exactly the dataset's settings. "
            "Percentages are (model − DFT)/DFT. B and G are Voigt–Reuss–Hill averages.",
        )
    )
    errors = {}
    for protocol in ("clamped_ion", "relaxed_ion"):
        dft_p, models_p = tensors[protocol]
        errors[protocol] = _elastic_table(protocol, dft_p, models_p, blocks)
    _elastic_figure(tensors, out_dir, figures, blocks)
    return errors


def _own_snapshots(table: pd.DataFrame | None, run: str) -> pd.DataFrame | None:
    """The rows of a stress-validation table that are snapshots of ``run``'s own MD path."""
    if table is None or "structure_id" not in table:
        return table
    return table[table["structure_id"].astype(str).str.startswith(f"{run}__snap")]


def _md_section(
    md: dict,
    sv: dict,
    component: str,
    strain_label: str,
    out_dir: Path,
    blocks: list,
    figures: list,
) -> dict[str, dict]:
    blocks.append(("h", 2, "Deformation MD checked against DFT"))
    blocks.append(
        (
            "p",
            "Each run's first-seed model drives its own deformation MD (Langevin NVT, constant "
            "strain rate). "
            f"Lines: σ_{component} from the potential along the path (the virial, static part: "
            "no kinetic term; the MD tables also hold the total stress with the kinetic "
            "ideal-gas part, −2E_kin/3V on the diagonal); circles: DFT stress at snapshots of "
            "that path, evenly spaced in strain, computed with exactly the dataset's DFT "
            "settings; crosses: the model's static stress on the same snapshots, so model and "
            "DFT are compared like for like. Stress in GPa, tension positive. The table checks "
            "each model on the snapshots of every run's path (the same frames for all runs).",
        )
    )
    if any(v is not None for v in md.values()):
        fig, ax = plt.subplots(figsize=(7.2, 4.8))
        for i, (run, df) in enumerate(md.items()):
            if df is not None:
                draw_stress_strain(
                    ax,
                    df,
                    _own_snapshots(sv.get(run), run),
                    component,
                    label=run,
                    color=f"C{i}",
                    strain_label=strain_label,
                )
        ax.legend(fontsize=7)
        ax.set_title("Stress–strain along the deformation MD")
        fig.tight_layout()
        save_figure(fig, out_dir / "stress_strain.png")
        figures.append("stress_strain.png")
        blocks.append(("img", "stress-strain curves", "stress_strain.png"))
    summaries = {}
    rows = []
    for run in md:
        df = sv.get(run)
        if df is None:
            rows.append([run, "missing", "—", "—", "—", "—", "—"])
            continue
        s = stress_validation_summary(df)
        summaries[run] = s
        rows.append(
            [
                run,
                f"{s['n_ok']}/{s['n_snapshots']}",
                _fmt(s[f"mae_{component}_GPa"]),
                _fmt(s[f"max_error_{component}_GPa"]),
                _fmt(s["mae_GPa"]),
                _fmt(s["max_error_GPa"]),
                ", ".join(s["missing"]) or "none",
            ]
        )
    blocks.append(
        (
            "table",
            [
                "run",
                "snapshots with DFT",
                f"MAE σ_{component} (GPa)",
                f"max σ_{component} (GPa)",
                "MAE all (GPa)",
                "max all (GPa)",
                "missing DFT labels",
            ],
            rows,
        )
    )
    if summaries:
        blocks.append(
            ("p", "Per stress component, model static stress vs DFT on the snapshots (GPa):")
        )
        comp_rows = []
        for run, s in summaries.items():
            for stat, name in (("mae", "MAE"), ("max_error", "max")):
                comp_rows.append(
                    [run, name, *[_fmt(s[f"{stat}_{c}_GPa"]) for c in VOIGT_COMPONENTS]]
                )
        blocks.append(("table", ["run", "error", *[f"σ_{c}" for c in VOIGT_COMPONENTS]], comp_rows))
    return summaries


def _mean_spread(row: pd.Series, col: str) -> str:
    mean, std, n = row.get(f"{col}_mean"), row.get(f"{col}_std"), row.get(f"{col}_n", 0)
    if not math.isfinite(_float(mean)):
        return "—"
    spread = f" ± {_fmt(std, 2)}" if math.isfinite(_float(std)) else " (1 seed)"
    return f"{_fmt(mean)}{spread}" + (f" [{int(n)}]" if int(n) > 1 else "")


def _study_section(study_dir: Path | None, out_dir: Path, blocks: list, figures: list, missing):
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
    _tuning_blocks(record, blocks)
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


#: the held-out stress error may be this many times the test-set error for a "yes"
TRUST_FACTOR = 2.0


def trust_table(models: Sequence[tuple[str, int]], metrics: Sequence, heldout: Sequence):
    """One row per model (run, seed): test-set stress MAE (``metrics.json``) and the held-out
    benchmark's stress MAE and frame count (``heldout.json``, NaN when it has no frame), GPa."""

    def read(path) -> dict:
        return json.loads(Path(path).read_text())

    rows = []
    for (run, seed), m, h in zip(models, metrics, heldout, strict=True):
        test, held = read(m), read(h)
        rows.append({"run": run, "seed": int(seed),
                     "test_stress_mae_GPa": _float(test.get("stress_mae_GPa")),
                     "heldout_stress_mae_GPa": _float(held.get("stress_mae_GPa")),
                     "heldout_n_ok": int(held.get("n_ok", 0))})  # fmt: skip
    return pd.DataFrame(rows)


def _trust_verdict(test: float, held: float) -> str:
    if not (math.isfinite(test) and math.isfinite(held)):
        return "unknown: no held-out error"
    ratio = held / test if test > 0 else math.inf
    if ratio <= TRUST_FACTOR:
        return f"yes: {ratio:.1f}× its test error (within {TRUST_FACTOR:g}×)"
    return f"no: {ratio:.1f}× its test error (more than {TRUST_FACTOR:g}×)"


def _trust_section(trust: pd.DataFrame | None, blocks: list) -> None:
    """The first screen: can each run's stress be trusted where its MD goes? Held-out stress
    MAE at the validation conditions beside the test-set stress MAE, mean ± std over seeds."""
    blocks.append(("h", 2, "Can the stress be trusted where the MD goes?"))
    if trust is None or trust.empty or not trust["heldout_n_ok"].any():
        blocks.append(("p", "No held-out benchmark in this run (validation.heldout.paths empty or "
                       "no new DFT): only the test-set error below, which is measured on "
                       "structures like the training ones, not where the MD goes."))  # fmt: skip
        return
    n = int(trust["heldout_n_ok"].max())
    blocks.append(("p", f"Stress MAE on {n} held-out DFT frames at the deformation MD's "
                   "conditions (never trained on) beside the test-set stress MAE, mean ± std "
                   f"over seeds. Verdict: yes when the held-out error is at most {TRUST_FACTOR:g}× "
                   "the test-set error (means)."))  # fmt: skip
    rows = []
    for run, group in trust.groupby("run", sort=False):
        stats = {c: (group[c].mean(), group[c].std()) for c in
                 ("test_stress_mae_GPa", "heldout_stress_mae_GPa")}  # fmt: skip
        cells = [f"{_fmt(m)} ± {_fmt(sd, 2)}" if len(group) > 1 else _fmt(m)
                 for m, sd in stats.values()]  # fmt: skip
        verdict = _trust_verdict(*(m for m, _ in stats.values()))
        rows.append([run, str(len(group)), *cells, verdict])
    header = ["run", "seeds", "test-set stress MAE (GPa)", "held-out MD stress MAE (GPa)",
              "trusted where its MD goes?"]  # fmt: skip
    blocks.append(("table", header, rows))


def _tuning_blocks(record: Mapping, blocks: list) -> None:
    """The weight grid of each tuned run: validation score per point and the chosen one."""
    for tuning in record.get("tuning") or []:
        blocks.append(("h", 3, f"Tuning of {tuning['run']}"))
        blocks.append(("p", f"Chosen: **{tuning['chosen']}** by {tuning['criterion']}."))
        rows = [
            [
                g["name"] + (" ✓" if g["name"] == tuning["chosen"] else ""),
                ":".join(f"{g['weights'][c]:.3g}" for c in ("energy", "forces", "stress")),
                _fmt(g["val_score"]),
                str(int(g["epoch"])),
            ]
            for g in tuning["grid"]
        ]
        blocks.append(("table", ["grid point", "w_E:w_F:w_S", "val score", "best epoch"], rows))


# --------------------------------------------------------------------------- entry point


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
    md_component
        Stress component the MD curves show (e.g. "xx", "xy" for shear in xy).
    md_strain_label
        What the MD strain axis means (e.g. "engineering strain along x").
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
        The reference cell's record (:func:`dft2mlip.dft.relax.reference_record`): the DFT
        relaxation's lattice parameters before and after, residual pressure, steps, status;
        or why the cell was not relaxed. None: not shown.
    trust
        :func:`trust_table` of every model: the first screen (held-out MD-condition stress
        error beside the test-set error per run, with a verdict). None: says there is none.

    Returns
    -------
    pathlib.Path
        The path of ``summary.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = _Missing()
    figures: list[str] = []

    if isinstance(dataset_table, pd.DataFrame):
        table = dataset_table
    else:
        table = _load("dataset label table", dataset_table, _read_table, missing)
    metrics, histories, models_el, models_rel, md, sv, parity = {}, {}, {}, {}, {}, {}, {}
    losses: dict = {}
    for run, art in runs.items():
        metrics[run] = _load(f"{run}: test metrics", art.metrics_json, _read_metrics, missing)
        histories[run] = _load(f"{run}: training history", art.history_csv, pd.read_csv, missing)
        models_el[run] = _load(f"{run}: elastic tensor", art.elastic_json, _read_elastic, missing)
        models_rel[run] = _load(
            f"{run}: relaxed-ion elastic tensor", art.elastic_relaxed_json, _read_elastic, missing
        )
        md[run] = _load(f"{run}: deformation MD table", art.md_csv, pd.read_csv, missing)
        sv[run] = _load(
            f"{run}: stress validation", art.stress_validation_csv, pd.read_csv, missing
        )
        parity[run] = missing.path(f"{run}: parity plot", art.parity_png)
        losses[run] = _load(f"{run}: loss record", art.loss_json, _read_json, missing)
    dft_el = _load("DFT elastic tensor", dft_elastic_json, _read_elastic, missing)
    dft_rel = _load(
        "DFT relaxed-ion elastic tensor", dft_elastic_relaxed_json, _read_elastic, missing
    )

    blocks: list[tuple] = [("h", 1, title)]
    blocks.append(
        (
            "p",
            "This report compares machine-learning interatomic potentials trained on the same DFT "
            f"labels with different loss weightings ({', '.join(runs) or 'no runs'}). The "
            "detailed sections show the first seed of each run; the study section at the end "
            "gives every seed, the spread and the verdict. Units: "
            "energy eV (errors meV/atom), forces eV/Å (errors meV/Å), stress GPa with tension "
            "positive (a compressed cell has negative stress).",
        )
    )
    _trust_section(trust, blocks)
    if settings:
        blocks.append(("ul", [f"{k}: `{v}`" for k, v in settings.items()]))
    if reference is not None:
        _reference_section(reference, blocks)
    _dataset_section(table, out_dir, blocks, figures)
    _convergence_section(convergence_dir, out_dir, blocks, figures, missing)
    _weights_section(histories, out_dir, blocks, figures, run_descriptions)
    _loss_record_section(losses, blocks)
    _test_section(metrics, parity, out_dir, blocks, figures)
    tensors = {"clamped_ion": (dft_el, models_el), "relaxed_ion": (dft_rel, models_rel)}
    _elastic_section(tensors, out_dir, blocks, figures, reference)
    _md_section(md, sv, md_component, md_strain_label, out_dir, blocks, figures)
    _study_section(Path(study_dir) if study_dir else None, out_dir, blocks, figures, missing)
    al_dir = Path(active_learning_dir) if active_learning_dir else None
    _active_learning_section(al_dir, out_dir, blocks, missing)
    blocks.append(("h", 2, "Missing artifacts"))
    if missing.items:
        blocks.append(
            ("p", "These inputs were not available; their cells above show “missing” or “—”:")
        )
        blocks.append(("ul", missing.items))
    else:
        blocks.append(("p", "None: every artifact was found."))

    for name in REPORT_FIGURES:
        if name not in figures:
            _placeholder_figure(
                out_dir / name, f"{name}: no data for this figure in this run (see summary.md)"
            )
    summary = out_dir / "summary.md"
    summary.write_text(_render_markdown(blocks))
    if write_html:
        (out_dir / "report.html").write_text(_render_html(blocks, title))
    return summary


def describe_run(run_cfg: Mapping[str, Any]) -> str:
    """One line saying how a training run weighs its loss terms."""
    norm = run_cfg.get("normalise", "none")
    norm_text = "terms divided by their first-epoch loss" if norm == "initial" else "raw MSEs"
    if run_cfg["scheme"] == "fixed" and run_cfg.get("tune"):
        from dft2mlip.study import grid_points

        n = len(grid_points("run", run_cfg))
        return (
            f"fixed weights tuned on the validation set over a grid of {n} E:F:S points "
            f"(first seed; {norm_text}); the chosen point is in the study section"
        )
    if run_cfg["scheme"] == "fixed":
        w = run_cfg["weights"]
        if run_cfg.get("unit_sum"):
            from dft2mlip.study import unit_sum

            w = unit_sum(w)
        ratio = ":".join(f"{w.get(k, 0):.3g}" for k in ("energy", "forces", "stress"))
        unit = "" if norm == "initial" else "; stress in eV/Å³"
        return f"fixed weights E:F:S = {ratio} ({norm_text}{unit})"
    if run_cfg["scheme"] == "target":
        t = run_cfg.get("targets") or {}
        return (
            f"target: each term divided by its squared target RMSE (E {t.get('energy')} "
            f"meV/atom, F {t.get('forces')} meV/Å, S {t.get('stress')} GPa), the term furthest "
            f"from its target weighed most, (RMSE/target)^β with β = {run_cfg.get('beta')}"
        )
    variant = " (loss-weighted)" if run_cfg.get("loss_weighted") else ""
    return (
        f"{run_cfg['scheme']}{variant}, β = {run_cfg.get('beta')}, window {run_cfg.get('window')} "
        f"epochs ({norm_text})"
    )


def _dft_settings(config: Mapping[str, Any]) -> dict[str, str]:
    """The DFT lines of the report's settings: the engine's key settings, or what replaces them."""
    engine = config["dft"]["engine"]
    if engine == "none":
        names = ", ".join(s["name"] for s in config["dataset"]["import"])
        return {
            "DFT": f"none run here: every label is imported ({names}); elastic constants and "
            "MD stresses are not checked against DFT"
        }
    from dft2mlip.dft import hubbard, magnetism
    from dft2mlip.dft.engines import get_engine

    lines = get_engine(engine).describe(config["dft"][engine])
    order = magnetism.configured_order(config["material"], config["dft"])
    if spin := magnetism.describe(config["dft"].get("magnetic_moments_muB"), order):
        lines["magnetism"] = spin
    if entries := hubbard.parse_hubbard(config["dft"].get("hubbard")):
        lines["DFT+U"] = hubbard.describe(entries)
    return lines


def _material_line(mat: Mapping[str, Any]) -> str:
    """The configured starting cell: a structure file by name, else prototype and lattice
    (the relaxed cell has its own section)."""
    if mat.get("structure"):
        return f"{mat['name']} (structure file {mat['structure']})"
    hexagonal = mat["prototype"] in ("hcp", "wurtzite")
    c_over_a = f", c/a = {mat.get('c_over_a') or 'ideal'}" if hexagonal else ""
    return f"{mat['name']} ({mat['prototype']}, a = {mat['lattice_constant_A']} Å{c_over_a})"


def report_settings(config: Mapping[str, Any]) -> dict[str, object]:
    """The settings a reader needs at the top of the report, from the run's config."""
    mat, md = config["material"], config["validation"]["md"]
    el = config["validation"]["elastic"]
    lateral = f", lateral {md.get('lateral', 'fixed')}" if md["mode"] == "uniaxial" else ""
    return {
        "material": _material_line(mat),
        **_dft_settings(config),
        "elastic constants": (
            f"±{el['strain_magnitude']} strain along each Voigt direction, clamped ion and "
            f"relaxed ion (max |F| < {el.get('relax_fmax_eV_per_A', '?')} eV/Å), same cells "
            "for DFT and models"
        ),
        "deformation MD": (
            f"{md['mode']} {md['direction']}{lateral}, {md['temperature_K']} K Langevin "
            f"(friction {md['friction_per_fs']}/fs), "
            f"{md['strain_rate_per_ps']}/ps to strain {md['max_strain']}, "
            f"dt {md['timestep_fs']} fs, supercell {md['repeat']} conventional cells, "
            f"{md['snapshots']} DFT snapshots per run"
        ),
    }
