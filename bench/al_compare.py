"""Compare stored active-learning runs (issue 22): for each run, held-out stress per generation
and lineage (mean ± std over seeds) and active − random paired by seed (mean, 95 % Student-t
interval); with --between, for runs of one material that differ in one setting, each lineage of
one run minus the same lineage of the other, seed by seed (the setting's effect).

    python bench/al_compare.py greedy=bench/results/al_sic_3c/per_seed.csv \\
        per_path=bench/results/al_sic_per_path/per_seed.csv \\
        --metric heldout_stress_mae_GPa --between

Reads only the `per_seed.csv` an `al_summary` job writes (results/al/per_seed.csv); `--collect
RESULTS > heldout_frames.csv` gathers every model's held-out frames of a results directory,
`--frames heldout_frames.csv` tabulates their stress error per path.
"""

from __future__ import annotations

import argparse
import itertools
import sys

import pandas as pd

from dft2mlip.study import t_interval

METRICS = ("heldout_stress_mae_GPa", "stress_mae_GPa", "md_stress_mae_GPa",
           "heldout_forces_mae_meV_per_A")  # fmt: skip


def by_seed(per_seed: pd.DataFrame, lineage: str, metric: str) -> pd.Series:
    """``metric`` of one lineage, indexed by (generation, seed)."""
    rows = per_seed[per_seed["lineage"] == lineage]
    return rows.set_index(["generation", "seed"])[metric]


def interval_text(values) -> str:
    """Mean [95 % t interval] of paired differences."""
    t = t_interval(list(values))
    return f"{t['mean']:+.3f} [{t['low']:+.3f}, {t['high']:+.3f}]"


def run_table(name: str, per_seed: pd.DataFrame, metric: str) -> list[str]:
    """Markdown rows: generation, active and random mean ± std, the seed-by-seed differences,
    the paired interval."""
    from dft2mlip.active import paired_differences

    stats = per_seed.groupby(["generation", "lineage"])[metric].agg(["mean", "std"])
    diff = paired_differences(per_seed).sort_values(["generation", "seed"])
    rows = [f"\n{name}: {metric}\n",
            "| generation | active | random | active − random by seed | paired [95 % t] |",
            "|---|---|---|---|---|"]  # fmt: skip
    start = stats.loc[(0, "start")]
    rows.append(f"| 0 | {start['mean']:.3f} ± {start['std']:.3f} | | | |")
    for g, gen in diff.groupby("generation"):
        a, r, d = stats.loc[(g, "al")], stats.loc[(g, "rand")], gen[metric]
        seeds = ", ".join(f"{v:+.3f}" for v in d)
        rows.append(f"| {g} | {a['mean']:.3f} ± {a['std']:.3f} | {r['mean']:.3f} ± "
                    f"{r['std']:.3f} | {seeds} | {interval_text(d)} |")  # fmt: skip
    return rows


def between_runs(runs: dict[str, pd.DataFrame], metric: str) -> list[str]:
    """Rows: one run's lineage minus another run's same lineage, seed by seed, per generation.
    For runs that differ in one setting, the active rows are that setting's effect; the random
    rows show whether the two baselines are the same frames (random draws are pool rows with
    the same seed: equal where the pools are equal)."""
    rows = ["\nbetween runs (same lineage, same seeds), " + metric + "\n",
            "| runs | lineage | generation | by seed | paired [95 % t] |", "|---|---|---|---|---|"]
    for (a, pa), (b, pb) in itertools.combinations(runs.items(), 2):
        for lineage in ("al", "rand"):
            diff = by_seed(pa, lineage, metric) - by_seed(pb, lineage, metric)
            for g, d in diff.groupby(level="generation"):
                seeds = ", ".join(f"{v:+.3f}" for v in d)
                rows.append(f"| {a} − {b} | {lineage} | {g} | {seeds} | {interval_text(d)} |")
    return rows


def collect_heldout(results: str) -> pd.DataFrame:
    """Every model's held-out frames (``validate/<run>/seed<k>/heldout.csv`` of a results
    directory) in one table, with run, seed, lineage and generation."""
    from pathlib import Path

    from dft2mlip.active import parse_model_name

    frames = []
    for path in sorted(Path(results).glob("validate/*/seed*/heldout.csv")):
        run, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
        parsed = parse_model_name(run)
        lineage, gen = (parsed[1], parsed[2]) if parsed else ("start", 0)
        frames.append(pd.read_csv(path).assign(run=run, seed=seed, lineage=lineage,
                                               generation=gen))  # fmt: skip
    if not frames:
        raise FileNotFoundError(f"{results}: no validate/*/seed*/heldout.csv")
    return pd.concat(frames, ignore_index=True)


def per_path_table(frames: pd.DataFrame) -> list[str]:
    """Rows: held-out stress MAE (6 components) and |σ_xx|, |σ_xy| errors per path, generation
    and lineage, mean over frames and seeds."""
    comps = ("xx", "yy", "zz", "yz", "xz", "xy")
    err = pd.DataFrame({c: (frames[f"stress_pred_{c}_GPa"] - frames[f"stress_ref_{c}_GPa"]).abs()
                        for c in comps})  # fmt: skip
    table = frames[["path", "generation", "lineage"]].assign(
        stress=err.mean(axis=1), xx=err["xx"], xy=err["xy"]
    )
    means = table.groupby(["path", "generation", "lineage"]).mean()
    rows = ["\nheld-out stress error per path (GPa, mean over frames and seeds)\n",
            "| path | generation | lineage | 6 components | σ_xx | σ_xy |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for (path, g, lin), r in means.iterrows():
        rows.append(f"| {path} | {g} | {lin} | {r['stress']:.3f} | {r['xx']:.3f} | {r['xy']:.3f} |")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="name=path/to/per_seed.csv")
    parser.add_argument("--collect", metavar="RESULTS",
                        help="write every model's held-out frames of RESULTS (a results dir) as "
                        "CSV to stdout, then stop")  # fmt: skip
    parser.add_argument("--frames", metavar="CSV", help="per-path table of a --collect CSV")
    parser.add_argument("--metric", action="append", choices=METRICS,
                        help="metrics to tabulate (default: all)")  # fmt: skip
    parser.add_argument("--between", action="store_true",
                        help="also each lineage of one run minus the same of another (runs of one "
                        "material that differ in one setting)")
    args = parser.parse_args(argv)
    if args.collect:
        collect_heldout(args.collect).to_csv(sys.stdout, index=False)
        return
    if args.frames:
        print("\n".join(per_path_table(pd.read_csv(args.frames))))
    runs = {}
    for item in args.runs:
        name, _, path = item.partition("=")
        if not path:
            parser.error(f"{item!r}: give name=path/to/per_seed.csv")
        runs[name] = pd.read_csv(path)
    for metric in args.metric or METRICS:
        for name, per_seed in runs.items():
            print("\n".join(run_table(name, per_seed, metric)))
        if args.between and len(runs) > 1:
            print("\n".join(between_runs(runs, metric)))


if __name__ == "__main__":
    main()
