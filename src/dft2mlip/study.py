"""The study: every training run trained with several seeds, a fixed-weight grid tuned on the
validation set, and a verdict computed from the numbers.

Runs that are compared differ in one thing only; each is trained with the same seeds (seed ``k``
of every run starts from the same initial parameters and sees batches in the same order), so
the spread over seeds is the yardstick of every difference the report states.

- **Grid runs.** A fixed run with ``tune: {energy: [...], forces: [...], stress: [...]}`` expands
  into one training run per grid point, ``<run>__gNN`` (weights rescaled to sum to 1, duplicates
  after rescaling dropped), each trained with the first seed only. The point with the lowest
  validation score (:func:`dft2mlip.train.trainer.validation_score`, the trainer's own yardstick:
  mean over E, F, S of validation RMSE / RMS of the training labels, at each run's best epoch)
  is chosen; the test set is never looked at. The tuned run is then trained with every seed.
- **Verdict.** For each metric and each other run, the difference of means against the reference
  run (``adaptive``) is compared with twice its standard error over seeds,
  ``2·sqrt(s_a²/n_a + s_b²/n_b)``: a larger difference is called real, a smaller one is within
  the seed spread. With one seed nothing can be judged and the verdict says so.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: separator between a tuned run's name and its grid point index: ``tuned-fixed__g03``
GRID_SEP = "__g"
#: keys of a run entry that the study resolves before the trainer sees the run
STUDY_KEYS = ("tune", "unit_sum")
COMPONENTS = ("energy", "forces", "stress")
#: metrics of the study: (column, label, unit); lower is better for all
STUDY_METRICS = (
    ("energy_mae_meV_per_atom", "test E MAE", "meV/atom"),
    ("forces_mae_meV_per_A", "test F MAE", "meV/Å"),
    ("stress_mae_GPa", "test S MAE", "GPa"),
    ("elastic_error_pct", "elastic-tensor error", "%"),
    ("md_stress_mae_GPa", "MD-snapshot stress MAE", "GPa"),
)
#: the three test-set errors of the Pareto comparison
PARETO_METRICS = STUDY_METRICS[:3]
#: how many standard errors of the difference make a difference "real"
SIGNIFICANCE_SE = 2.0
#: the files :func:`write_study` writes, by name
STUDY_FILES = {
    "per_seed": "per_seed.csv",
    "summary": "summary.csv",
    "study": "study.json",
    "pareto": "pareto.png",
}


def study_paths(folder: str | Path) -> dict[str, Path]:
    """The study's files in ``folder`` (see :data:`STUDY_FILES`)."""
    return {name: Path(folder) / file for name, file in STUDY_FILES.items()}


def seed_values(base_seed: int, n_seeds: int) -> list[int]:
    """The training seeds: ``base_seed + k`` for k < ``n_seeds`` (the same for every run)."""
    return [int(base_seed) + k for k in range(int(n_seeds))]


def unit_sum(weights: Mapping[str, float]) -> dict[str, float]:
    """E/F/S weights rescaled to sum to 1 (as adaptive softmax weights do)."""
    total = float(sum(weights.values()))
    if not total > 0:
        raise ValueError(f"weights {dict(weights)} do not sum to a positive number")
    return {c: float(weights.get(c, 0.0)) / total for c in COMPONENTS}


def grid_points(run_name: str, run_cfg: Mapping) -> list[dict[str, float]]:
    """The weight grid of a tuned fixed run: every combination of ``tune``'s lists, rescaled to
    unit sum, duplicates (after rescaling) and all-zero points dropped, in a fixed order."""
    tune = run_cfg.get("tune")
    if not tune:
        return []
    where = f"training.runs.{run_name}.tune"
    lists = []
    for comp in COMPONENTS:
        values = tune.get(comp, [0.0])
        if not values or any(not (math.isfinite(v) and v >= 0) for v in values):
            raise ValueError(f"{where}.{comp} = {values}: give a list of finite weights >= 0")
        lists.append([float(v) for v in values])
    points: list[dict[str, float]] = []
    for combo in itertools.product(*lists):
        if sum(combo) <= 0:
            continue
        point = unit_sum(dict(zip(COMPONENTS, combo, strict=True)))
        if not any(all(math.isclose(point[c], p[c]) for c in COMPONENTS) for p in points):
            points.append(point)
    if len(points) < 2:
        raise ValueError(f"{where}: the grid has {len(points)} distinct point(s); give at least 2")
    return points


def grid_run_names(runs: Mapping[str, Mapping]) -> dict[str, tuple[str, int]]:
    """``{"<run>__gNN": (run, NN)}`` for every grid point of every tuned run."""
    out = {}
    for name, cfg in runs.items():
        for k, _ in enumerate(grid_points(name, cfg)):
            out[f"{name}{GRID_SEP}{k:02d}"] = (name, k)
    return out


def tuned_runs(runs: Mapping[str, Mapping]) -> list[str]:
    """Names of the runs whose weights come from a tuned grid."""
    return [name for name, cfg in runs.items() if cfg.get("tune")]


def resolve_run_config(
    name: str, runs: Mapping[str, Mapping], tuned_weights: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """The run entry the trainer gets for run ``name`` (a configured run or a grid point).

    Grid points get their grid weights; a tuned run gets ``tuned_weights`` (the chosen point,
    None while it is unknown: the entry then has no weights); ``unit_sum: true`` rescales the
    weights to sum to 1. The study's own keys are removed.
    """
    if GRID_SEP in name:
        base, k = name.rsplit(GRID_SEP, 1)
        cfg = {k2: v for k2, v in runs[base].items() if k2 not in STUDY_KEYS}
        cfg["weights"] = grid_points(base, runs[base])[int(k)]
        return cfg
    cfg = {k2: v for k2, v in runs[name].items() if k2 not in STUDY_KEYS}
    if runs[name].get("tune"):
        cfg.pop("weights", None)
        if tuned_weights is not None:
            cfg["weights"] = unit_sum(tuned_weights)
    elif runs[name].get("unit_sum") and "weights" in cfg:
        cfg["weights"] = unit_sum(cfg["weights"])
    return cfg


def best_validation(history_csv: str | Path) -> dict[str, float]:
    """The best epoch of a training history (lowest ``val_score``): epoch, score, RMSEs."""
    h = pd.read_csv(history_csv)
    if h.empty or h["val_score"].isna().all():
        raise ValueError(f"{history_csv}: no epoch with a validation score")
    row = h.loc[h["val_score"].idxmin()]
    keys = ("epoch", "val_score", "val_energy_rmse_meV_per_atom", "val_forces_rmse_meV_per_A",
            "val_stress_rmse_GPa")  # fmt: skip
    return {k: float(row[k]) for k in keys}


def select_tuned(run_name: str, runs: Mapping[str, Mapping], histories: Sequence) -> dict:
    """Choose a tuned run's grid point on the validation set (never the test set).

    Parameters
    ----------
    histories
        ``history.csv`` of each grid point, in grid order.

    Returns
    -------
    dict
        ``run``, ``criterion``, ``chosen`` (grid run name), ``weights`` (unit sum) and ``grid``:
        one record per point with its weights and best validation epoch, score and RMSEs.
    """
    points = grid_points(run_name, runs[run_name])
    if len(histories) != len(points):
        raise ValueError(f"{run_name}: {len(histories)} histories for {len(points)} grid points")
    grid = []
    for k, (weights, path) in enumerate(zip(points, histories, strict=True)):
        grid.append({"name": f"{run_name}{GRID_SEP}{k:02d}", "weights": weights,
                     **best_validation(path)})  # fmt: skip
    best = min(grid, key=lambda g: g["val_score"])
    return {
        "run": run_name,
        "criterion": "lowest validation score (mean over E, F, S of val RMSE / RMS of the "
        "training labels) at each grid point's best epoch, first seed",
        "chosen": best["name"],
        "weights": best["weights"],
        "grid": grid,
    }


def elastic_error_pct(model_c: np.ndarray, dft_c: np.ndarray) -> float:
    """Relative error of a whole 6x6 elastic tensor, 100·‖C_model − C_DFT‖_F / ‖C_DFT‖_F (any
    symmetry: no entry is singled out)."""
    model_c, dft_c = np.asarray(model_c, float), np.asarray(dft_c, float)
    return float(100.0 * np.linalg.norm(model_c - dft_c) / np.linalg.norm(dft_c))


def summarise(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1; NaN for one seed) and count per run and metric.

    ``per_seed`` has one row per (run, seed) and a column per metric of :data:`STUDY_METRICS`.
    Returns one row per run (in order of appearance) with ``<metric>_mean``, ``_std``, ``_n``.
    """
    rows = []
    for run, group in per_seed.groupby("run", sort=False):
        row: dict[str, Any] = {"run": run, "n_seeds": int(len(group))}
        for col, _, _ in STUDY_METRICS:
            values = group[col].dropna().to_numpy(dtype=float) if col in group else np.array([])
            row[f"{col}_mean"] = float(values.mean()) if values.size else math.nan
            row[f"{col}_std"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
            row[f"{col}_n"] = int(values.size)
        rows.append(row)
    return pd.DataFrame(rows)


def t_interval(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard error and 95 % Student-t interval of paired differences (n >= 2)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))
    half = float(stats.t.ppf(0.975, x.size - 1)) * se
    return {"mean": mean, "se": se, "low": mean - half, "high": mean + half}


def compare(summary: pd.DataFrame, reference: str, other: str, metric: str) -> dict[str, Any]:
    """Reference run vs another on one metric: difference of means, its standard error over
    seeds and whether it exceeds :data:`SIGNIFICANCE_SE` standard errors."""
    a = summary.set_index("run").loc[reference]
    b = summary.set_index("run").loc[other]
    diff = a[f"{metric}_mean"] - b[f"{metric}_mean"]
    n_a, n_b = a[f"{metric}_n"], b[f"{metric}_n"]
    if n_a < 2 or n_b < 2 or not math.isfinite(diff):
        return {"diff": diff, "se": math.nan, "judged": False, "real": False}
    se = math.sqrt(a[f"{metric}_std"] ** 2 / n_a + b[f"{metric}_std"] ** 2 / n_b)
    return {"diff": diff, "se": se, "judged": True, "real": abs(diff) > SIGNIFICANCE_SE * se}


def verdict(summary: pd.DataFrame, reference: str = "adaptive") -> list[str]:
    """One sentence per metric: which runs the reference beats, loses to, or cannot be told
    apart from, beyond the seed spread (see the module docstring for the rule)."""
    if reference not in set(summary["run"]):
        return [f"No run named {reference!r}: nothing to compare it with."]
    others = [r for r in summary["run"] if r != reference]
    sentences = []
    for col, label, unit in STUDY_METRICS:
        better, worse, tied, unjudged = [], [], [], []
        for other in others:
            c = compare(summary, reference, other, col)
            text = f"{other} ({c['diff']:+.3g} {unit})"
            if not math.isfinite(c["diff"]):
                continue
            if not c["judged"]:
                unjudged.append(text)
            elif not c["real"]:
                tied.append(f"{other} (Δ {c['diff']:+.3g} ± {c['se']:.2g} {unit})")
            else:
                (better if c["diff"] < 0 else worse).append(
                    f"{other} (Δ {c['diff']:+.3g} ± {c['se']:.2g} {unit})"
                )
        parts = []
        if better:
            parts.append(f"lower than {', '.join(better)}")
        if worse:
            parts.append(f"higher than {', '.join(worse)}")
        if tied:
            parts.append(f"not distinguishable from {', '.join(tied)} within the seed spread")
        if unjudged:
            parts.append(f"cannot be judged with one seed against {', '.join(unjudged)}")
        body = "; ".join(parts) if parts else "no data"
        sentences.append(f"{label}: {reference} is {body}.")
    return sentences


def dominated_by(point: Mapping[str, float], others: Mapping[str, Mapping[str, float]]) -> list:
    """Names of ``others`` that dominate ``point`` on the three test-set errors: no worse on E, F
    and S and better on at least one (lower is better)."""
    keys = [col for col, _, _ in PARETO_METRICS]
    mine = np.array([point[k] for k in keys], dtype=float)
    out = []
    for name, other in others.items():
        theirs = np.array([other[k] for k in keys], dtype=float)
        if np.all(np.isfinite(theirs)) and np.all(theirs <= mine) and np.any(theirs < mine):
            out.append(name)
    return out


def model_record(
    run: str,
    seed: int,
    metrics: Mapping[str, Any],
    *,
    elastic_c: np.ndarray | None = None,
    dft_elastic_c: np.ndarray | None = None,
    md_stress_mae_GPa: float = math.nan,
) -> dict[str, Any]:
    """One row of the per-seed table from a model's artifacts (missing ones give NaN)."""
    row: dict[str, Any] = {"run": run, "seed": int(seed)}
    for col, _, _ in PARETO_METRICS:
        row[col] = float(metrics.get(col, math.nan))
    row["elastic_error_pct"] = (
        elastic_error_pct(elastic_c, dft_elastic_c)
        if elastic_c is not None and dft_elastic_c is not None
        else math.nan
    )
    row["md_stress_mae_GPa"] = float(md_stress_mae_GPa)
    return row


def per_seed_table(
    models: Sequence[tuple[str, int]],
    metrics: Sequence,
    elastic: Sequence,
    md_stress: Sequence,
    dft_elastic: Sequence = (),
    dft_elastic_relaxed: Sequence = (),
) -> pd.DataFrame:
    """The per-seed table of ``models`` ((run, seed) pairs) from their files: test metrics,
    relaxed-ion elastic tensor (``elastic_relaxed.json``) and MD-snapshot stress summary (empty
    ``md_stress``: NaN). The elastic error is against the DFT relaxed-ion tensor when there is
    one, else the clamped-ion one (and the model's tensor of the same protocol); without DFT it
    is NaN, as it is for a model whose relaxation failed (the warning says why)."""
    import json
    import logging

    from dft2mlip.validate.elastic import read_elastic_json

    dft_paths = list(dft_elastic_relaxed) or list(dft_elastic)
    dft_c = read_elastic_json(dft_paths[0])[0] if dft_paths else None
    relaxed = bool(dft_elastic_relaxed)

    def model_tensor(path: str):
        if dft_c is None:
            return None
        if not relaxed:
            path = str(path).replace("elastic_relaxed.json", "elastic.json")
        try:
            return read_elastic_json(path)[0]
        except ValueError as err:  # a failure record: the error stays NaN, the log says why
            logging.getLogger(__name__).warning("%s", err)
            return None

    rows = []
    md_stress = list(md_stress) or [None] * len(models)
    for (run, seed), m, el, md in zip(models, metrics, elastic, md_stress, strict=True):
        md_mae = json.loads(Path(md).read_text())["mae_GPa"] if md else math.nan
        rows.append(model_record(run, seed, json.loads(Path(m).read_text()),
                                 elastic_c=model_tensor(el), dft_elastic_c=dft_c,
                                 md_stress_mae_GPa=md_mae))  # fmt: skip
    return pd.DataFrame(rows)


def _readable_log_ticks(axis, limits: tuple[float, float]) -> None:
    """Short plain tick labels on a log axis and none on its minor ticks; within two decades
    (where a log axis has at most two labelled powers of ten) ticks at 1, 2 and 5 times the
    powers of ten, or within a narrow range a few evenly spaced ones."""
    from matplotlib import ticker

    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
    axis.set_minor_formatter(ticker.NullFormatter())
    low, high = sorted(limits)
    if not (low > 0 and high / low < 100):
        return
    one_two_five = ticker.LogLocator(subs=(1.0, 2.0, 5.0))
    inside = [v for v in one_two_five.tick_values(low, high) if low <= v <= high]
    axis.set_major_locator(one_two_five if len(inside) >= 3 else ticker.MaxNLocator(nbins=4))


def plot_pareto(per_seed: pd.DataFrame, grid: pd.DataFrame | None, path: str | Path) -> Path:
    """Three panels (E–F, E–S, F–S test MAE) with every run and seed, and the grid points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dft2mlip.io import save_figure

    pairs = [(0, 1), (0, 2), (1, 2)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0))
    # one marker and colour per run in every panel, as in the legend of the first
    runs = list(dict.fromkeys(per_seed["run"]))
    markers = itertools.cycle("osD^v<>PX*")
    style = {run: (next(markers), f"C{k % 10}") for k, run in enumerate(runs)}
    for ax, (i, j) in zip(axes, pairs, strict=True):
        (xc, xl, xu), (yc, yl, yu) = PARETO_METRICS[i], PARETO_METRICS[j]
        if grid is not None and len(grid):
            ax.scatter(grid[xc], grid[yc], marker="x", c="0.5", label="fixed grid (seed 0)")
        for run, group in per_seed.groupby("run", sort=False):
            marker, colour = style[run]
            ax.scatter(group[xc], group[yc], marker=marker, color=colour, label=run, alpha=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _readable_log_ticks(ax.xaxis, ax.get_xlim())
        _readable_log_ticks(ax.yaxis, ax.get_ylim())
        ax.set_xlabel(f"{xl} ({xu})")
        ax.set_ylabel(f"{yl} ({yu})")
    axes[0].legend(fontsize=7)
    fig.suptitle("Test-set errors of every run and seed (lower left is better)")
    fig.tight_layout()
    return save_figure(fig, Path(path))


def pareto_standing(per_seed: pd.DataFrame, grid: pd.DataFrame, reference: str) -> list[dict]:
    """For each seed of the reference run: the grid points that dominate it on E, F and S test
    MAE at once (an empty list: not dominated by any point of the grid)."""
    keys = [col for col, _, _ in PARETO_METRICS]
    others = {r["run"]: {k: r[k] for k in keys} for _, r in grid.iterrows()}
    rows = []
    for _, r in per_seed[per_seed["run"] == reference].iterrows():
        rows.append({"seed": int(r["seed"]), "dominated_by": dominated_by(r, others)})
    return rows


def write_study(
    per_seed: pd.DataFrame,
    grid: pd.DataFrame,
    tuning: Sequence[Mapping],
    out: Mapping[str, str | Path],
    *,
    reference: str = "adaptive",
) -> dict:
    """Write the study's files: ``per_seed`` and ``summary`` CSV, ``study`` JSON (verdict,
    Pareto standing of the reference run against the grid, tuning choices) and ``pareto`` PNG.

    Returns the JSON record.
    """
    from dft2mlip.io import write_json

    summary = summarise(per_seed)
    per_seed.to_csv(out["per_seed"], index=False)
    summary.to_csv(out["summary"], index=False)
    standing = pareto_standing(per_seed, grid, reference) if len(grid) else []
    record = {
        "reference": reference,
        "rule": f"a difference is real when |Δ mean| > {SIGNIFICANCE_SE:g} standard errors "
        "of the difference over seeds, sqrt(s_a²/n_a + s_b²/n_b)",
        "verdict": verdict(summary, reference),
        "pareto": standing,
        "grid": grid.to_dict(orient="records"),
        "tuning": list(tuning),
    }
    write_json(record, out["study"])
    plot_pareto(per_seed, grid, out["pareto"])
    return record
