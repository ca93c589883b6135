"""Stress-aware active learning: committee scoring, diverse selection, calibration.

The committee is the set of seeds of one training run (same scheme, different seeds). Each
frame of an exploration MD pool is evaluated by every member; the disagreement is

- ``d_energy``  std over members of the energy per atom (meV/atom),
- ``d_forces``  max over atoms of the norm of the per-component force std (meV/Å),
- ``d_stress``  Frobenius norm of the std of the full 3x3 stress tensor (GPa; off-diagonal
  Voigt components counted twice),

all with ``ddof=0`` (the spread of the members, as DP-GEN's model deviation). The terms have
different units and typical sizes, so each is divided by its median over the pool (robust,
needs no labels, and makes "twice as uncertain as a typical frame" comparable across terms),
multiplied by its weight, and combined by ``max`` (default: a frame uncertain in stress alone
is as interesting as one uncertain in forces alone; a sum would let two mildly uncertain terms
outvote one very uncertain term) or ``sum``. The configured default weights are stress alone
(0:0:1), the best of the designs measured for issue 22 (README).

Selection (``selection``) is greedy on the score, or ``per_path``: the exploration paths take
turns, each giving its best frame, so one path that is more uncertain overall (a hotter one)
cannot take every pick. Both keep a diversity rule: no two picks closer than ``min_frame_gap``
recorded frames on the same exploration path. The random baseline draws the same number of
frames uniformly (seeded) from the same pool.

Model names of the two lineages: ``<run>__al<g>`` and ``<run>__rand<g>``; generation 0 is
``<run>`` itself. DFT label ids: ``g<g>-pick<iii>`` and ``g<g>-rand<iii>`` (group ``al``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dft2mlip.units import EV_PER_A3_TO_GPA

#: lineage name -> the suffix of its model names and the kind of its label ids
LINEAGES = {"al": "pick", "rand": "rand"}
LINEAGE_SEP = "__"
TERMS = ("energy", "forces", "stress")
#: disagreement column, true-error column and unit of each term
TERM_COLUMNS = {
    "energy": ("d_energy_meV_per_atom", "err_energy_meV_per_atom"),
    "forces": ("d_forces_meV_per_A", "err_forces_meV_per_A"),
    "stress": ("d_stress_GPa", "err_stress_GPa"),
}
_VOIGT_WEIGHT = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])  # off-diagonals appear twice in 3x3
#: the held-out benchmark's errors (validate_model's heldout.json), beside the study's metrics
HELDOUT_METRICS = (
    ("heldout_stress_mae_GPa", "held-out MD stress MAE", "GPa"),
    ("heldout_forces_mae_meV_per_A", "held-out F MAE", "meV/Å"),
    ("heldout_energy_mae_meV_per_atom", "held-out E MAE", "meV/atom"),
)


def al_metrics() -> tuple:
    """The metrics of the active-learning comparison: the study's and the held-out ones."""
    from dft2mlip.study import STUDY_METRICS

    return tuple(STUDY_METRICS) + HELDOUT_METRICS


def with_heldout(per_seed: pd.DataFrame, heldout_paths: Sequence) -> pd.DataFrame:
    """Add the :data:`HELDOUT_METRICS` columns from each model's ``heldout.json`` (row order)."""
    import json
    from pathlib import Path

    out = per_seed.copy()
    records = [json.loads(Path(p).read_text()) for p in heldout_paths]
    if len(records) != len(out):
        raise ValueError(f"{len(records)} held-out records for {len(out)} models")
    for col, _, _ in HELDOUT_METRICS:
        key = col.removeprefix("heldout_")
        out[col] = [float(r.get(key, math.nan)) for r in records]
    return out


def lineages(baseline: str) -> list[str]:
    """The lineages of a study: active learning, and the random baseline unless switched off."""
    return ["al", "rand"] if baseline == "random" else ["al"]


def model_name(base: str, lineage: str, generation: int) -> str:
    """Training-run name of generation ``generation`` of a lineage (generation 0: ``base``)."""
    if generation == 0:
        return base
    return f"{base}{LINEAGE_SEP}{lineage}{int(generation)}"


def parse_model_name(name: str) -> tuple[str, str, int] | None:
    """``(base, lineage, generation)`` of an active-learning model name, else None."""
    if LINEAGE_SEP not in name:
        return None
    base, tail = name.rsplit(LINEAGE_SEP, 1)
    for lineage in sorted(LINEAGES, key=len, reverse=True):
        rest = tail[len(lineage) :]
        if tail.startswith(lineage) and rest.isdigit() and int(rest) > 0:
            return base, lineage, int(rest)
    return None


def label_ids(generation: int, lineage: str, k: int) -> list[str]:
    """Structure ids of the ``k`` frames a lineage labels in one generation."""
    return [f"g{int(generation)}-{LINEAGES[lineage]}{i:03d}" for i in range(int(k))]


def generation_of(sid: str) -> int:
    """The generation of a label id ``g<g>-pick<iii>`` / ``g<g>-rand<iii>``."""
    return int(sid.split("-", 1)[0][1:])


def frame_disagreement(
    energies_eV: np.ndarray, forces_eV_per_A: np.ndarray, stresses_eV_per_A3: np.ndarray, n: int
) -> dict[str, float]:
    """Committee disagreement on one frame of ``n`` atoms.

    Parameters
    ----------
    energies_eV
        (M,) total energy of each member.
    forces_eV_per_A
        (M, n, 3) forces of each member.
    stresses_eV_per_A3
        (M, 6) Voigt stress of each member (ASE order, tension positive).
    """
    e = np.asarray(energies_eV, float) / n
    f = np.asarray(forces_eV_per_A, float)
    s = np.asarray(stresses_eV_per_A3, float) * EV_PER_A3_TO_GPA
    return {
        "d_energy_meV_per_atom": 1e3 * float(e.std()),
        "d_forces_meV_per_A": 1e3 * float(np.sqrt(f.var(axis=0).sum(axis=1)).max()),
        "d_stress_GPa": float(np.sqrt((s.var(axis=0) * _VOIGT_WEIGHT).sum())),
    }


def frame_error(
    energy_eV: float, forces: np.ndarray, stress: np.ndarray, ref: Mapping, n: int
) -> dict[str, float]:
    """Error of one prediction (the committee mean) against a DFT label ``ref`` (keys energy
    eV, forces eV/Å, stress eV/Å³ Voigt), measured like :func:`frame_disagreement`."""
    dfo = np.asarray(forces, float) - np.asarray(ref["forces"], float)
    ds = (np.asarray(stress, float) - np.asarray(ref["stress"], float)) * EV_PER_A3_TO_GPA
    return {
        "err_energy_meV_per_atom": 1e3 * abs(float(energy_eV) - float(ref["energy"])) / n,
        "err_forces_meV_per_A": 1e3 * float(np.linalg.norm(dfo, axis=1).max()),
        "err_stress_GPa": float(np.sqrt((ds**2 * _VOIGT_WEIGHT).sum())),
    }


def committee_predict(calcs: Sequence, frames: Sequence) -> list[dict]:
    """Every member's energy (eV), forces (eV/Å) and stress (eV/Å³) on every frame, and the
    disagreement; one record per frame (``energy``, ``forces``, ``stress`` are the mean)."""
    records = []
    for atoms in frames:
        e, f, s = [], [], []
        for calc in calcs:
            work = atoms.copy()
            work.calc = calc
            e.append(work.get_potential_energy())
            f.append(work.get_forces())
            s.append(work.get_stress(voigt=True))
        n = len(atoms)
        rec = frame_disagreement(np.array(e), np.array(f), np.array(s), n)
        rec.update(energy=float(np.mean(e)), forces=np.mean(f, axis=0), stress=np.mean(s, axis=0))
        records.append(rec)
    return records


def combine_scores(
    table: pd.DataFrame, weights: Mapping[str, float], combine: str = "max"
) -> pd.DataFrame:
    """Add ``n_<term>`` (disagreement / its median over the pool), ``score`` and ``top_term``
    (the term with the largest weighted contribution) columns.

    ``score`` = max (or sum) over terms of weight × normalised disagreement; a term with weight
    0 is ignored. A term whose median is 0 (the committee agrees exactly on most frames) is
    divided by its mean instead, and left at 0 when that is 0 too.
    """
    if combine not in ("max", "sum"):
        raise ValueError(f"active_learning.score.combine = {combine!r}: use max or sum")
    out = table.copy()
    parts, used = [], []
    for term in TERMS:
        col = TERM_COLUMNS[term][0]
        values = out[col].to_numpy(float)
        scale = float(np.median(values)) or float(values.mean())
        out[f"n_{term}"] = values / scale if scale > 0 else np.zeros_like(values)
        if float(weights.get(term, 0.0)) > 0:
            parts.append(float(weights[term]) * out[f"n_{term}"].to_numpy())
            used.append(term)
    if not parts:
        raise ValueError("active_learning.score.weights: at least one weight must be > 0")
    stacked = np.vstack(parts)
    out["score"] = stacked.max(axis=0) if combine == "max" else stacked.sum(axis=0)
    out["top_term"] = [used[i] for i in stacked.argmax(axis=0)]
    return out


def _near_a_pick(
    i: int, picked: Sequence[int], paths: Sequence[str], frames: Sequence[int], min_gap: int
) -> bool:
    """Whether frame ``i`` is closer than ``min_gap`` recorded frames to a pick on its path."""
    return any(paths[j] == paths[i] and abs(frames[j] - frames[i]) < min_gap for j in picked)


def select_diverse(
    scores: Sequence[float], paths: Sequence[str], frames: Sequence[int], k: int, min_gap: int
) -> tuple[list[int], bool]:
    """Greedy top-``k`` selection: highest score first, skipping any frame closer than
    ``min_gap`` recorded frames to an earlier pick on the same path.

    Returns the picked row indices (in pick order) and whether the gap had to be dropped to
    reach ``k`` (the pool had fewer than ``k`` frames that far apart: the rest are the best
    remaining frames; the selection record says so).
    """
    scores = np.asarray(scores, float)
    if k > len(scores):
        raise ValueError(f"{k} frames wanted from a pool of {len(scores)}")
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    picked: list[int] = []
    for i in order:
        if not _near_a_pick(i, picked, paths, frames, min_gap):
            picked.append(i)
        if len(picked) == k:
            return picked, False
    picked += [i for i in order if i not in picked][: k - len(picked)]
    return picked, True


def select_per_path(
    scores: Sequence[float], paths: Sequence[str], frames: Sequence[int], k: int, min_gap: int
) -> tuple[list[int], bool]:
    """Path-balanced top-``k`` selection: the exploration paths take turns. Each round every
    path offers its best frame that keeps ``min_gap`` from its earlier picks, and the offers are
    taken highest score first until ``k`` are picked; then the next round. With k = the number
    of paths every path gets one pick, however much more uncertain one path is overall (e.g. a
    hotter one). Returns the picked rows (in pick order) and whether the gap had to be dropped
    (as :func:`select_diverse`)."""
    scores = np.asarray(scores, float)
    if k > len(scores):
        raise ValueError(f"{k} frames wanted from a pool of {len(scores)}")
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    picked: list[int] = []
    while len(picked) < k:
        offers: dict[str, int] = {}
        for i in order:
            if (i not in picked and paths[i] not in offers
                    and not _near_a_pick(i, picked, paths, frames, min_gap)):  # fmt: skip
                offers[paths[i]] = i
        if not offers:
            picked += [i for i in order if i not in picked][: k - len(picked)]
            return picked, True
        picked += sorted(offers.values(), key=lambda i: (-scores[i], i))[: k - len(picked)]
    return picked, False


#: active_learning.selection -> the selection rule
SELECTIONS = {"greedy": select_diverse, "per_path": select_per_path}


def select_random(n_pool: int, k: int, seed: int) -> list[int]:
    """``k`` distinct row indices drawn uniformly from a pool of ``n_pool`` (seeded)."""
    return sorted(int(i) for i in np.random.default_rng(seed).choice(n_pool, k, replace=False))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for fewer than 3 points or a
    constant input."""
    x, y = pd.Series(x, dtype=float), pd.Series(y, dtype=float)
    ok = x.notna() & y.notna()
    if ok.sum() < 3 or x[ok].nunique() < 2 or y[ok].nunique() < 2:
        return math.nan
    return float(x[ok].rank().corr(y[ok].rank()))


def calibration_summary(table: pd.DataFrame) -> list[dict]:
    """Per generation and term: Spearman correlation between committee disagreement and the
    committee mean's true DFT error over the ok labels (picks and random frames together)."""
    rows = []
    ok = table[table["status"] == "ok"]
    for gen, group in ok.groupby("generation"):
        for term in TERMS:
            d, err = TERM_COLUMNS[term]
            rows.append({"generation": int(gen), "term": term, "n": int(len(group)),
                         "spearman": spearman(group[d], group[err])})  # fmt: skip
    return rows


def _calculators(model_paths: Sequence) -> list:
    from dft2mlip.calculator import MLIPCalculator

    return [MLIPCalculator(p) for p in model_paths]


def score_pool(
    trajectories: Mapping[str, str], model_paths: Sequence, weights: Mapping, combine: str
) -> tuple[pd.DataFrame, list]:
    """Score every frame of the exploration trajectories (``{path name: extxyz}``) with every
    committee member. Returns the table (path, frame, md_strain, disagreements, score) and the
    frames in table order."""
    from ase.io import read

    calcs = _calculators(model_paths)
    rows, pool = [], []
    for name, traj in trajectories.items():
        frames = read(traj, ":", format="extxyz")
        for i, (atoms, rec) in enumerate(
            zip(frames, committee_predict(calcs, frames), strict=True)
        ):
            strain = float(atoms.info.get("md_strain", math.nan))
            rows.append({"path": name, "frame": i, "md_strain": strain,
                         **{c: rec[c] for c, _ in TERM_COLUMNS.values()}})  # fmt: skip
            pool.append(atoms)
    return combine_scores(pd.DataFrame(rows), weights, combine), pool


def choose_frames(
    table: pd.DataFrame, generation: int, k: int, min_gap: int, seed: int, baseline: str,
    selection: str = "per_path",
) -> tuple[dict[str, int], dict]:  # fmt: skip
    """Label id -> pool row for every lineage of one generation, and the selection record
    (``selection``: a key of :data:`SELECTIONS`)."""
    if selection not in SELECTIONS:
        raise ValueError(f"active_learning.selection = {selection!r}: use one of "
                         f"{', '.join(SELECTIONS)}")  # fmt: skip
    picked, relaxed = SELECTIONS[selection](table["score"], list(table["path"]),
                                            list(table["frame"]), k, min_gap)  # fmt: skip
    chosen = dict(zip(label_ids(generation, "al", k), picked, strict=True))
    record = {"generation": int(generation), "pool_size": int(len(table)), "k": int(k),
              "selection": selection, "min_frame_gap": int(min_gap),
              "gap_relaxed": relaxed}  # fmt: skip
    if "rand" in lineages(baseline):
        rseed = int(seed) + 7919 * int(generation)
        drawn = select_random(len(table), k, rseed)
        chosen.update(dict(zip(label_ids(generation, "rand", k), drawn, strict=True)))
        record["random_seed"] = rseed
    record["frames"] = [
        {"structure_id": sid, "path": str(table.iloc[row]["path"]),
         "frame": int(table.iloc[row]["frame"]), "md_strain": float(table.iloc[row]["md_strain"]),
         "score": float(table.iloc[row]["score"]), "top_term": str(table.iloc[row]["top_term"])}
        for sid, row in chosen.items()
    ]  # fmt: skip
    return chosen, record


def picked_structures(pool: Sequence, chosen: Mapping[str, int], table: pd.DataFrame) -> list:
    """The chosen frames as structures to label (no MD results attached), ids in ``info``, each
    with its MD cell's ``reference_cell`` (the family's k-point mesh: a pick is labelled like the
    other frames of its path, not with a mesh of its own strained cell)."""

    from dft2mlip.structures import REFERENCE_CELL_KEY, bare_cell
    from dft2mlip.validate.deform import md_reference_cell

    out = []
    for sid, row in chosen.items():
        src = pool[row]
        atoms = bare_cell(src)  # keeps the sites' magnetic order
        where = table.iloc[row]
        reference = md_reference_cell(src, f"exploration path {where['path']}")
        atoms.info.update(structure_id=sid, config_type="active_learning",
                          al_path=str(where["path"]), al_frame=int(where["frame"]),
                          md_strain=float(where["md_strain"]),
                          **{REFERENCE_CELL_KEY: reference})  # fmt: skip
        out.append(atoms)
    return out


def training_set(base_train: str, label_paths: Sequence, out_path: str) -> pd.DataFrame:
    """The training set of one lineage and generation: the original train split plus every ok
    label of its picks so far, with the dataset's own DFT settings (same ``settings_hash``).

    Returns one row per pick label (structure_id, generation, status, message, included,
    reason): a failed or mismatched label is listed, never trained on and never dropped
    silently. Raises when no label of the original split is present (wrong input).
    """
    from ase.io import read, write

    from dft2mlip.data import _dataset_frame, read_label
    from dft2mlip.io import atomic_write

    base = read(base_train, ":", format="extxyz")
    if not base:
        raise ValueError(f"{base_train}: the original train split is empty")
    ref_hash = str(base[0].info.get("settings_hash", ""))
    frames, rows = list(base), []
    for path in label_paths:
        lab = read_label(path)
        if lab.config_type == "heldout":  # validate.deform.HELDOUT: the benchmark stays unseen
            raise ValueError(f"{path} is a held-out benchmark frame; it is never trained on")
        reason = ""
        if lab.status != "ok":
            reason = f"DFT status {lab.status}: {lab.message}"
        elif lab.settings_hash != ref_hash:
            reason = f"settings_hash {lab.settings_hash} differs from the dataset's {ref_hash}"
        if not reason:
            frames.append(_dataset_frame(lab))
        sid = lab.structure_id
        rows.append({"structure_id": sid, "generation": generation_of(sid), "status": lab.status,
                     "message": lab.message, "included": not reason, "reason": reason})  # fmt: skip
    with atomic_write(out_path) as tmp:
        write(tmp, frames, format="extxyz")
    return pd.DataFrame(rows, columns=["structure_id", "generation", "status", "message",
                                       "included", "reason"])  # fmt: skip


def calibration_table(label_paths: Sequence, model_paths: Sequence) -> pd.DataFrame:
    """Committee disagreement and the committee mean's true error against DFT for each label
    (one row each; a failed label keeps its status with NaN errors)."""
    from dft2mlip.data import read_label

    calcs = _calculators(model_paths)
    rows = []
    for path in label_paths:
        lab = read_label(path)
        row = {"structure_id": lab.structure_id, "generation": generation_of(lab.structure_id),
               "selection": "random" if "-rand" in lab.structure_id else "active",
               "status": lab.status}  # fmt: skip
        rec = committee_predict(calcs, [lab.atoms])[0]
        row.update({c: rec[c] for c, _ in TERM_COLUMNS.values()})
        if lab.status == "ok":
            ref = {"energy": lab.energy, "forces": lab.forces, "stress": lab.stress}
            n = len(lab.atoms)
            row.update(frame_error(rec["energy"], rec["forces"], rec["stress"], ref, n))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_calibration(table: pd.DataFrame, path) -> None:
    """One panel per term: disagreement vs true error, a colour per generation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dft2mlip.io import save_figure

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0))
    ok = table[table["status"] == "ok"]
    for ax, term in zip(axes, TERMS, strict=True):
        d, err = TERM_COLUMNS[term]
        for (gen, sel), group in ok.groupby(["generation", "selection"]):
            ax.scatter(group[d], group[err], marker="o" if sel == "active" else "x",
                       label=f"g{gen} {sel}")  # fmt: skip
        ax.set_xlabel(f"committee disagreement {d}")
        ax.set_ylabel(f"true error of the committee mean {err}")
    axes[0].legend(fontsize=7)
    fig.suptitle("Calibration: does the committee's disagreement rank the true DFT error?")
    fig.tight_layout()
    save_figure(fig, path)


def with_lineage(per_seed: pd.DataFrame, base: str) -> pd.DataFrame:
    """Add ``lineage`` and ``generation`` columns (generation 0: the base run, in every lineage's
    curve as the common start)."""
    out = per_seed.copy()
    parsed = [parse_model_name(r) or (base, "start", 0) for r in out["run"]]
    out["lineage"] = [p[1] for p in parsed]
    out["generation"] = [p[2] for p in parsed]
    return out


def generation_verdicts(per_seed: pd.DataFrame, base: str, generations: int) -> dict[int, list]:
    """Per generation: the study's verdict (difference of seed means vs 2 standard errors)
    of the active-learning models against the random baseline and the starting models."""
    from dft2mlip.study import summarise, verdict

    out = {}
    for g in range(1, int(generations) + 1):
        names = [model_name(base, "al", g), model_name(base, "rand", g), base]
        rows = per_seed[per_seed["run"].isin(names)]
        out[g] = verdict(summarise(rows), reference=model_name(base, "al", g))
        out[g] += heldout_verdict(rows, model_name(base, "al", g))
    return out


def heldout_verdict(rows: pd.DataFrame, reference: str) -> list[str]:
    """The study's rule (|Δ mean| > 2 standard errors over seeds) on the held-out stress MAE:
    ``reference`` against every other model name in ``rows``."""
    from dft2mlip.study import compare

    col, label, unit = HELDOUT_METRICS[0]
    if col not in rows or rows[col].isna().all():
        return [f"{label}: no held-out benchmark (validation.heldout.paths is empty)"]
    stats = rows.groupby("run", sort=False)[col].agg(["mean", "std", "count"])
    summary = pd.DataFrame({"run": stats.index, f"{col}_mean": stats["mean"].to_numpy(),
                            f"{col}_std": stats["std"].to_numpy(),
                            f"{col}_n": stats["count"].to_numpy()})  # fmt: skip
    parts = []
    for other in [r for r in summary["run"] if r != reference]:
        c = compare(summary, reference, other, col)
        word = ("lower than" if c["diff"] < 0 else "higher than") if c["real"] else (
            "not distinguishable from" if c["judged"] else "cannot be judged against")
        parts.append(f"{word} {other} (Δ {c['diff']:+.3g} ± {c['se']:.2g} {unit})")
    return [f"{label} of {reference}: " + "; ".join(parts)]


def plot_generations(per_seed: pd.DataFrame, path) -> None:
    """Each study metric against the generation, mean ± std over seeds per lineage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dft2mlip.io import save_figure

    metrics = [m for m in al_metrics() if m[0] in per_seed]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6))
    start = per_seed[per_seed["generation"] == 0]
    for ax, (col, label, unit) in zip(axes, metrics, strict=True):
        for lineage in [x for x in LINEAGES if x in set(per_seed["lineage"])]:
            rows = pd.concat([start, per_seed[per_seed["lineage"] == lineage]])
            stats = rows.groupby("generation")[col].agg(["mean", "std"])
            ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker="o",
                        capsize=3, label={"al": "active", "rand": "random"}[lineage])  # fmt: skip
        ax.set_xticks(sorted(set(per_seed["generation"])))
        ax.set_xlabel("generation")
        ax.set_ylabel(f"{label} ({unit})")
    axes[0].legend(fontsize=8)
    fig.suptitle("Active learning vs the same number of random frames (mean ± std over seeds)")
    fig.tight_layout()
    save_figure(fig, path)


def _table_block(df: pd.DataFrame) -> tuple:
    """A report table block (header, rows of text) from a DataFrame."""
    rows = [
        [f"{v:.4g}" if isinstance(v, float) else str(v) for v in r] for r in df.itertuples(False)
    ]
    return ("table", [str(c) for c in df.columns], rows)


def paired_differences(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per generation and seed: active minus random on every study metric (seed k of both
    lineages starts from the same initial parameters; negative = active lower)."""
    cols = [c for c, _, _ in al_metrics() if c in per_seed]
    key = ["generation", "seed"]
    al = per_seed[per_seed["lineage"] == "al"].set_index(key)[cols]
    rand = per_seed[per_seed["lineage"] == "rand"].set_index(key)[cols]
    return (al - rand).dropna(how="all").reset_index()


def paired_verdicts(per_seed: pd.DataFrame) -> list[dict]:
    """Per generation and metric: active minus random paired by seed (both lineages of seed k
    start from the same parameters and fitted statistics), mean, standard error and 95 %
    Student-t interval over seeds; ``verdict`` says which lineage is lower when the interval
    excludes 0, "not distinguishable" when it holds 0, "cannot be judged" below 2 seeds."""
    from dft2mlip.study import t_interval

    diff = paired_differences(per_seed)
    out = []
    for g, rows in diff.groupby("generation", sort=True):
        for col, label, unit in al_metrics():
            d = rows[col].dropna().to_numpy(float) if col in rows else np.array([])
            if d.size == 0:
                continue
            row = {"generation": int(g), "metric": label, "unit": unit, "seeds": int(d.size),
                   "mean": float(d.mean())}  # fmt: skip
            if d.size < 2:
                out.append({**row, "verdict": "cannot be judged (one seed)"})
                continue
            t = t_interval(d)
            word = ("active lower" if t["high"] < 0 else "random lower" if t["low"] > 0
                    else "not distinguishable")  # fmt: skip
            out.append({**row, "se": t["se"], "ci95_low": t["low"], "ci95_high": t["high"],
                        "verdict": word})  # fmt: skip
    return out


def _decided_by_blocks(selections: Sequence[Mapping]) -> list[tuple]:
    """Which term (largest weighted normalised disagreement) decided each active pick."""
    items = []
    for sel in selections:
        terms = [f["top_term"] for f in sel.get("frames", []) if "-pick" in f["structure_id"]
                 and "top_term" in f]  # fmt: skip
        if terms:
            counts = ", ".join(f"{t} {terms.count(t)}" for t in TERMS if t in terms)
            items.append(f"generation {sel['generation']}: {counts}")
    if not items:
        return []
    return [("p", "Term that decided each active pick (largest weighted, median-normalised "
             "disagreement):"), ("ul", items)]  # fmt: skip


def _paired_blocks(per_seed: pd.DataFrame) -> list[tuple]:
    diff = paired_differences(per_seed)
    if diff.empty:
        return []
    rows = [[str(v["generation"]), v["metric"], f"{v['mean']:+.3g} {v['unit']}",
             f"[{v['ci95_low']:+.3g}, {v['ci95_high']:+.3g}]" if "se" in v else "–",
             str(v["seeds"]), v["verdict"]] for v in paired_verdicts(per_seed)]  # fmt: skip
    return [("h", 3, "Active minus random, seed by seed (negative: active lower)"),
            ("p", "The verdict above is the study's unpaired rule. Both lineages start seed k "
             "from the same parameters and fitted statistics, so each seed's own difference "
             "isolates the frame choice: its mean over seeds with a 95 % Student-t interval "
             "(a lineage is lower when the interval excludes 0), then each seed's difference."),
            ("table", ["generation", "metric", "active − random, mean", "95 % interval",
                       "seeds", "paired verdict"], rows),
            _table_block(diff)]  # fmt: skip


def summary_blocks(per_seed: pd.DataFrame, verdicts: Mapping, labels: pd.DataFrame,
                   calibration: Sequence[Mapping], settings: Mapping,
                   selections: Sequence[Mapping] = ()) -> list[tuple]:  # fmt: skip
    """The active-learning section of the report, as :mod:`dft2mlip.report` blocks (figures
    ``al_generations.png`` and ``al_calibration.png``)."""
    cols = [c for c, _, _ in al_metrics() if c in per_seed]
    stats = per_seed.groupby(["generation", "lineage"], sort=True)[cols].agg(["mean", "std"])
    stats.columns = [f"{c} {s}" for c, s in stats.columns]
    blocks: list[tuple] = [("h", 2, "Active learning: committee-picked vs random frames"), ("p",
        f"Committee: the {settings['n_seeds']} seeds of run `{settings['run']}`. Each generation "
        f"labels {settings['k']} frames per lineage. Score = {settings['combine']} over E, F, S "
        "of weight x (committee disagreement / its median over the generation's pool), weights "
        f"{dict(settings['weights'])}; selection {settings['selection']} (per_path: the "
        "exploration paths take turns); no two picks closer than "
        f"{settings['min_frame_gap']} recorded frames on one path. The random lineage draws the "
        "same number of frames uniformly from the same pool; both are retrained with every seed "
        "and evaluated on the same test set, elastic reference and MD snapshots. Generation 0 "
        "(`start`) is the run itself.")]  # fmt: skip
    blocks += [("h", 3, "Errors per generation (mean and std over seeds)"),
               _table_block(stats.reset_index()), ("img", "errors per generation",
               "al_generations.png"), ("h", 3, "Verdict per generation (|Δ| > 2 standard "
               "errors over seeds)")]  # fmt: skip
    for g, sentences in verdicts.items():
        blocks += [("p", f"Generation {g}:"), ("ul", list(sentences))]
    blocks += _decided_by_blocks(selections)
    blocks += _paired_blocks(per_seed)
    blocks.append(("h", 3, "Calibration: Spearman rank correlation of disagreement and true error"))
    if calibration:
        blocks += [_table_block(pd.DataFrame(calibration)),
                   ("img", "calibration", "al_calibration.png")]  # fmt: skip
    else:
        blocks.append(("p", "No ok label: no calibration."))
    bad = labels[~labels["included"].astype(bool)] if len(labels) else labels
    n_ok = int(labels["included"].astype(bool).sum()) if len(labels) else 0
    blocks.append(("h", 3, f"Labels: {n_ok} of {len(labels)} picked frames trained on"))
    blocks.append(_table_block(bad) if len(bad) else ("p", "Every picked frame got an ok label."))
    return blocks


def committee_run(config: Mapping) -> str:
    """The training run whose seeds are the committee (active_learning.run, default the
    study's reference run)."""
    return config["active_learning"].get("run") or config["training"]["reference_run"]


def exploration_md(md_cfg: Mapping, entry: Mapping) -> dict:
    """The MD settings of one exploration path: validation.md overridden by the entry."""
    return {**dict(md_cfg), **dict(entry)}


def pool_frames(md: Mapping) -> int:
    """Number of frames an MD path with settings ``md`` records (step 0, every
    ``record_every`` steps, and the last step)."""
    from dft2mlip.validate.deform import DeformationSpec

    spec = DeformationSpec.from_config(md)
    return spec.n_steps // spec.record_every + 1 + int(spec.n_steps % spec.record_every != 0)


def check_active_learning(config: Mapping) -> None:
    """Semantic checks of active_learning (only when generations > 0); one line naming the key
    and the fix."""
    al = config["active_learning"]
    if int(al["generations"]) == 0:
        return
    run, key = committee_run(config), "active_learning"
    if run not in config["training"]["runs"]:
        raise ValueError(f"{key}.run = {run!r} is not a training run; use one of "
                         f"{', '.join(config['training']['runs'])}")  # fmt: skip
    if int(config["training"]["seeds"]) < 2:
        raise ValueError(f"{key}.generations > 0 needs a committee: set training.seeds >= 2 "
                         f"(now {config['training']['seeds']})")  # fmt: skip
    if config["dft"]["engine"] == "none":
        raise ValueError(f"{key}.generations > 0 needs new DFT labels: set dft.engine to qe or "
                         "vasp, or active_learning.generations to 0")  # fmt: skip
    n_pool = check_md_paths(config, f"{key}.exploration", al["exploration"])
    if int(al["frames_per_generation"]) > n_pool:
        raise ValueError(f"{key}.frames_per_generation = {al['frames_per_generation']} exceeds "
                         f"the {n_pool} frames the exploration paths record; lower it or add "
                         "paths")  # fmt: skip


def check_md_paths(config: Mapping, key: str, paths: Mapping[str, Mapping]) -> int:
    """Check MD paths whose entries override validation.md (exploration, held-out benchmark):
    settings and the (configured) cell against the model cutoff; one line naming
    ``<key>.<path>`` on a bad entry. Returns the number of frames they record together."""
    from dft2mlip.structures import conventional_cell
    from dft2mlip.validate.deform import DeformationSpec

    n_frames = 0
    for name, entry in paths.items():
        md = exploration_md(config["validation"]["md"], entry)
        try:
            base = conventional_cell(config["material"], [1, 1, 1]).cell.array
            spec = DeformationSpec.from_config(md).sized(base, float(config["model"]["r_max_A"]))
            cell = conventional_cell(config["material"], spec.repeat).cell.array
            spec.check_supercell(cell, float(config["model"]["r_max_A"]), r_max_key="model.r_max_A")
        except ValueError as err:
            where = str(err).replace("validation.md.", "")  # the path entry overrides it
            raise ValueError(f"{key}.{name}: {where}") from None
        n_frames += pool_frames(md)
    return n_frames


def check_heldout(config: Mapping) -> None:
    """Semantic checks of validation.heldout (when it has paths): its run, its paths."""
    held = config["validation"].get("heldout") or {}
    if not held.get("paths") or config["dft"]["engine"] == "none":
        return
    run = held.get("run") or config["training"]["reference_run"]
    if run not in config["training"]["runs"]:
        raise ValueError(f"validation.heldout.run = {run!r} is not a training run; use one of "
                         f"{', '.join(config['training']['runs'])}")  # fmt: skip
    check_md_paths(config, "validation.heldout.paths", held["paths"])


def write_summary(
    inp: Mapping, out: Mapping, *, models: Sequence, base: str, generations: int,
    settings: Mapping, n_seeds: int,
) -> dict:  # fmt: skip
    """The active-learning summary: per-seed table (CSV), record (JSON: verdicts, calibration,
    label statuses, selections), Markdown section, generation and calibration plots."""
    import json
    from pathlib import Path

    from dft2mlip.io import write_json
    from dft2mlip.report.document import render_markdown
    from dft2mlip.study import per_seed_table

    per_seed = per_seed_table(models, inp["metrics"], inp["elastic"], inp["md_stress"],
                              inp["dft_elastic"], inp["dft_elastic_relaxed"])  # fmt: skip
    per_seed = with_lineage(with_heldout(per_seed, inp["heldout"]), base)
    calib = pd.concat([pd.read_csv(p) for p in inp["calibration"]], ignore_index=True)
    labels = pd.concat([pd.read_csv(p).assign(model=Path(p).parent.name) for p in inp["labels"]],
                       ignore_index=True)  # fmt: skip
    verdicts = generation_verdicts(per_seed, base, generations)
    calibration = calibration_summary(calib)
    md_settings = {"run": base, "n_seeds": n_seeds, "k": settings["frames_per_generation"],
                   "combine": settings["score"]["combine"], "weights": settings["score"]["weights"],
                   "selection": settings["selection"],
                   "min_frame_gap": settings["min_frame_gap"]}  # fmt: skip
    per_seed.to_csv(out["per_seed"], index=False)
    selections = [json.loads(Path(p).read_text()) for p in inp["selection"]]
    blocks = summary_blocks(per_seed, verdicts, labels, calibration, md_settings, selections)
    Path(out["summary"]).write_text(render_markdown(blocks))
    plot_generations(per_seed, out["generations"])
    plot_calibration(calib, out["calibration"])
    record = {
        "settings": md_settings,
        "verdicts": verdicts,
        "paired_verdicts": paired_verdicts(per_seed),
        "calibration": calibration,
        "rule": "a difference is real when |Δ mean| > 2 standard errors over seeds",
        "labels": labels.to_dict(orient="records"),
        "selections": selections,
        "blocks": blocks,
    }
    write_json(record, out["record"])
    return record
