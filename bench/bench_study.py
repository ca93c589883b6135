"""The study on any extxyz dataset with REF_* keys, without DFT: every run of a config's
``training.runs`` (the default: adaptive, fixed-normalised, tuned-fixed, mace-like, no-stress)
trained with N seeds on the same split, the tuned run's grid chosen on the validation set, test
errors per run and seed, mean ± spread, the verdict and the Pareto standing of the reference run.

Usage (repository root)::

    .venv/bin/python bench/bench_study.py DATA.extxyz [MORE.extxyz ...] \\
        --out bench/results/study_x [--config bench/study.yaml] [--seeds 3] \\
        [--epochs 60] [--test TEST.extxyz]

The frames of all DATA files are pooled and split by the config's ``dataset.fractions`` with its
``seed`` (or, with ``--test``, DATA is split into train/val only and TEST is the test set). Model,
training settings and runs come from the config; ``--seeds``/``--epochs`` override it. Writes
``per_seed.csv``, ``summary.csv``, ``study.json``, ``pareto.png`` and ``table.md`` (the printed
table) to ``--out``. Each model trains with one thread; ``--jobs`` trains that many at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dft2mlip.config import validate_config  # noqa: E402
from dft2mlip.study import (  # noqa: E402
    STUDY_METRICS,
    grid_run_names,
    model_record,
    resolve_run_config,
    seed_values,
    select_tuned,
    study_paths,
    summarise,
    tuned_runs,
    write_study,
)
from dft2mlip.train.settings import STUDY_LEVEL_KEYS  # noqa: E402


def split_frames(paths: list[str], test: str | None, fractions: dict, seed: int, out: Path):
    """Write train/val/test extxyz files under ``out`` (seeded permutation of the pooled frames)."""
    frames = [a for p in paths for a in ase.io.read(p, index=":")]
    order = np.random.default_rng(seed).permutation(len(frames))
    shuffled = [frames[i] for i in order]
    if test:
        test_frames = ase.io.read(test, index=":")
        n_val = max(1, round(len(shuffled) * fractions["val"] / (1 - fractions["test"])))
    else:
        n_test = max(1, round(len(shuffled) * fractions["test"]))
        test_frames, shuffled = shuffled[:n_test], shuffled[n_test:]
        n_val = max(1, round(len(frames) * fractions["val"]))
    parts = {"val": shuffled[:n_val], "train": shuffled[n_val:], "test": test_frames}
    for name, part in parts.items():
        ase.io.write(out / f"{name}.extxyz", part, format="extxyz")
    return {name: len(part) for name, part in parts.items()}


def train_and_test(job: dict) -> dict:
    """One model: train (fresh process, one thread), then test-set metrics. Returns its row."""
    from ase.io import read

    from dft2mlip.calculator import MLIPCalculator
    from dft2mlip.train.settings import TrainingSettings
    from dft2mlip.train.trainer import train_run
    from dft2mlip.validate.metrics import component_metrics, predict

    out = Path(job["out_dir"])
    t0 = time.perf_counter()
    settings = TrainingSettings.from_config({**job["training"], "device": "cpu"})
    train_run(
        job["train"], job["val"], out, run_name=job["run"], model_cfg=job["model"],
        run_cfg=job["run_cfg"], seed=job["seed_value"], settings=settings, threads=1,
        resume=False, progress=False,
    )  # fmt: skip
    metrics = component_metrics(predict(MLIPCalculator(out / "model.pt"), read(job["test"], ":")))
    row = model_record(job["run"], job["seed_index"], metrics)
    row["train_s"] = time.perf_counter() - t0
    return row


def jobs_for(names_seeds, cfg, runs, data, out, tuned_weights=None) -> list[dict]:
    seeds = seed_values(cfg["seed"], cfg["training"]["seeds"])
    shared = {k: v for k, v in cfg["training"].items() if k not in STUDY_LEVEL_KEYS}
    return [
        {
            "run": run,
            "seed_index": k,
            "seed_value": seeds[k],
            "model": cfg["model"],
            "training": shared,
            "out_dir": str(out / "models" / run / f"seed{k}"),
            "run_cfg": resolve_run_config(run, runs, (tuned_weights or {}).get(run)),
            **{s: str(data / f"{s}.extxyz") for s in ("train", "val", "test")},
        }  # fmt: skip
        for run, k in names_seeds
    ]


def run_study(cfg: dict, data: Path, out: Path, n_jobs: int) -> dict:
    """Grid (first seed) -> tuning on validation -> every run x seed -> the study's files."""
    runs = cfg["training"]["runs"]
    grid_names = list(grid_run_names(runs))
    with ProcessPoolExecutor(n_jobs) as pool:
        grid_rows = list(pool.map(train_and_test, jobs_for([(g, 0) for g in grid_names], cfg,
                                                           runs, data, out)))  # fmt: skip
        tuning, chosen = [], {}
        for run in tuned_runs(runs):
            mine = [g for g in grid_names if g.startswith(f"{run}__g")]
            histories = [out / "models" / g / "seed0" / "history.csv" for g in mine]
            tuning.append(select_tuned(run, runs, histories))
            chosen[run] = tuning[-1]["weights"]
        pairs = [(r, k) for r in runs for k in range(cfg["training"]["seeds"])]
        rows = list(pool.map(train_and_test, jobs_for(pairs, cfg, runs, data, out, chosen)))
    per_seed = pd.DataFrame(rows)
    grid = pd.DataFrame(grid_rows)
    return write_study(per_seed, grid, tuning, study_paths(out),
                       reference=cfg["training"]["reference_run"])  # fmt: skip


def table_markdown(summary: pd.DataFrame, record: dict, header: str) -> str:
    cols = [f"{label} ({unit})" for _, label, unit in STUDY_METRICS[:3]]
    lines = [header, "", "| run | seeds | " + " | ".join(cols) + " |",
             "|---|---|" + "---|" * len(cols)]  # fmt: skip
    for _, r in summary.iterrows():
        cells = [f"{r[f'{c}_mean']:.3g} ± {r[f'{c}_std']:.2g}" for c, _, _ in STUDY_METRICS[:3]]
        lines.append(f"| {r['run']} | {int(r['n_seeds'])} | " + " | ".join(cells) + " |")
    lines += ["", "Verdict:", *[f"- {v}" for v in record["verdict"][:3]]]
    for s in record["pareto"]:
        dom = ", ".join(s["dominated_by"]) or "no grid point"
        lines.append(f"- {record['reference']} seed {s['seed']}: dominated by {dom}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+", help="extxyz file(s) with REF_energy/REF_forces/REF_stress")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--config", default=str(ROOT / "bench" / "study.yaml"))
    ap.add_argument("--test", help="a fixed test set (extxyz); DATA is then train + val only")
    ap.add_argument("--seeds", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--jobs", type=int, default=2, help="models trained at once (1 thread each)")
    args = ap.parse_args(argv)
    cfg = validate_config(yaml.safe_load(Path(args.config).read_text()))
    cfg["training"]["seeds"] = args.seeds or cfg["training"]["seeds"]
    cfg["training"]["epochs"] = args.epochs or cfg["training"]["epochs"]
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "data"
    data.mkdir(exist_ok=True)
    sizes = split_frames(args.data, args.test, cfg["dataset"]["fractions"], cfg["seed"], data)
    t0 = time.perf_counter()
    record = run_study(cfg, data, args.out, args.jobs)
    wall = time.perf_counter() - t0
    summary = summarise(pd.read_csv(study_paths(args.out)["per_seed"]))
    header = (
        f"Study on {', '.join(map(str, args.data))}: train/val/test = {sizes['train']}/"
        f"{sizes['val']}/{sizes['test']} structures, {cfg['training']['seeds']} seeds, "
        f"{cfg['training']['epochs']} epochs, model {json.dumps(cfg['model'])}; "
        f"{wall / 60:.1f} min on {args.jobs} processes. Test MAE, mean ± std over seeds."
    )
    text = table_markdown(summary, record, header)
    (args.out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
