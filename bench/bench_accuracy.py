"""Test accuracy in one stage: the project's default training vs ``mace_run_train``'s two-stage
hand schedule, on the same data, network, dtype, epochs and seeds (issue 12, item 2).

Trainers (each ``--seeds`` times, one thread each, ``--jobs`` at once):

- ``mace-two-stage``: ``mace_run_train`` building our network (``bench_trainer.mace_command``:
  ScaleShiftMACE, residual first block, E0s average, RMS-force scaling, no weight decay) with
  E:F:S = 1:100:1, then stage two (``--swa``) from 75 % of the epochs at 1000:100:10 (lr 1e-3,
  MACE's default), EMA 0.99 and the same plateau schedule as ours (x0.8 after 5 epochs);
- ``mace-one-stage``: the same without stage two;
- ``ours-default``: ``config/config.yaml``'s ``training:`` section and its reference run
  (SoftAdapt, normalise counts since 2026-12-07, before that initial; EMA 0.99, plateau x0.8 /
  5) with ``--epochs``;
- the levers, each ONE change from ``ours-default``: ``ours-no-ema`` (ema_decay 0),
  ``ours-batch-2`` (batch size 2: twice the optimiser steps), ``ours-cosine`` (cosine learning
  rate decay to ``min_lr`` instead of the plateau schedule), ``ours-float32`` (trained and
  evaluated in float32), ``ours-fixed-normalised``
  (constant equal weights, same normalisation), ``ours-mace-weights`` (fixed 1:100:1 on raw
  MSEs), ``ours-target`` (weights by distance to per-term targets);
- issue 25's levers on how much each term counts, each one change from ``ours-initial`` (the
  default before 2026-12-07: SoftAdapt on ``normalise: initial``): ``ours-anchored`` (SoftAdapt
  anchored to E:F:S = ``ANCHOR`` = 1:4:1, oscillating around it), ``ours-counts`` (``normalise:
  counts``: each term times its share of label components), ``ours-variance`` (``normalise:
  variance``: each MSE over its labels' mean square instead of the initial loss),
  ``ours-counts-anchored`` (``normalise: counts`` anchored to E:F:S = 6:1:1: the energy counts
  as the six stress components, forces per component).

Every model is evaluated by the pipeline's own code (``dft2mlip.validate.metrics``: MAE per
component, energy per atom, forces per Cartesian component, stress per Voigt component) through
MACE's calculator on the same held-out test split. Data: any extxyz with ``REF_*`` keys (e.g.
``tools/collect_labels.py`` on a run of ``bench/materials/si_trainer_dataset.yaml``); split
70/10/20 by ``--split-seed``, the training count rounded down to a multiple of the batch size
(mace_run_train drops the last incomplete batch and takes its statistics from the rest).

Usage: ``python bench/bench_accuracy.py /tmp/si200.extxyz --epochs 60 --seeds 2 --jobs 2``
(a forces-rich set: ``python bench/make_emt_forces_set.py /tmp/cu_emt.extxyz``)
Prints a Markdown table; stores ``bench/results/accuracy.json`` and ``accuracy.md`` (with
``--tag T``: ``accuracy_T.json``/``.md``, e.g. for a run of a few trainers with ``--only``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ase.io
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

from bench_trainer import mace_command, machine, paired_interval  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
COMPONENTS = ("energy_mae_meV_per_atom", "forces_mae_meV_per_A", "stress_mae_GPa")

#: our trainer's variants: (run config, TrainingSettings overrides), each one change from default
_REFERENCE = CONFIG["training"]["reference_run"]
_DEFAULT_RUN = CONFIG["training"]["runs"][_REFERENCE]
#: issue 25's candidates are each one change from the default of their measurement, SoftAdapt
#: on ``normalise: initial`` (the default until 2026-12-07, ``ours-initial``; results stored
#: before that date call it ``ours-default``); ``ours-default`` is config.yaml's reference run
_INITIAL_RUN = {**_DEFAULT_RUN, "normalise": "initial"}
#: ours-anchored's E:F:S (SoftAdapt anchored to it; forces two thirds of the weight)
ANCHOR = {"energy": 1.0, "forces": 4.0, "stress": 1.0}
#: ours-counts-anchored's anchor on top of ``normalise: counts``: the energy counts as the stress
#: tensor's 6 components (both are one label per structure; forces count per component), so on a
#: 2-atom cell (3N = 6) the three terms weigh a third each, as in ours-initial, and on a 30-atom
#: cell the forces take 90/102 of the weight, as in ours-counts
COUNTS_ANCHOR = {"energy": 6.0, "forces": 1.0, "stress": 1.0}
OURS = {
    "ours-default": (CONFIG["training"]["runs"][_REFERENCE], {}),
    "ours-no-ema": (CONFIG["training"]["runs"][_REFERENCE], {"ema_decay": 0.0}),
    "ours-batch-2": (CONFIG["training"]["runs"][_REFERENCE], {"batch_size": 2}),
    "ours-cosine": (CONFIG["training"]["runs"][_REFERENCE], {"lr_scheduler": "cosine"}),
    "ours-float32": (CONFIG["training"]["runs"][_REFERENCE], {"dtype": "float32"}),
    "ours-fixed-normalised": (CONFIG["training"]["runs"]["fixed-normalised"], {}),
    "ours-mace-weights": (CONFIG["training"]["runs"]["mace-like"], {}),
    # issue 25's levers: how much each term counts (one change each from ours-initial)
    "ours-initial": (_INITIAL_RUN, {}),
    "ours-anchored": ({**_INITIAL_RUN, "anchor": ANCHOR}, {}),
    "ours-counts": ({**_INITIAL_RUN, "normalise": "counts"}, {}),
    "ours-variance": ({**_INITIAL_RUN, "normalise": "variance"}, {}),
    "ours-counts-anchored": ({**_INITIAL_RUN, "normalise": "counts", "anchor": COUNTS_ANCHOR}, {}),
    "ours-target": (  # bench/study.yaml's target run: targets at the DFT tolerances
        {
            "scheme": "target",
            "targets": {"energy": 1.0, "forces": 10.0, "stress": 0.1},
            "beta": 1.0,
            "normalise": "none",
        },
        {},
    ),  # fmt: skip
}
MACE = {"mace-two-stage": True, "mace-one-stage": False}

_OURS_SCRIPT = """
import json, sys
from dft2mlip.train.settings import TrainingSettings
from dft2mlip.train.trainer import train_run
a = json.loads(sys.argv[1])
settings = TrainingSettings.from_config(a["training"]).replace(**a["overrides"])
train_run(a["train"], a["val"], a["out"], run_name=a["name"], model_cfg=a["model"],
          run_cfg=a["run"], seed=a["seed"], settings=settings, threads=1, resume=False,
          progress=False)
"""


def split(frames: list, seed: int, batch: int) -> dict[str, list]:
    """70/10/20 by a seeded permutation; train rounded down to a multiple of ``batch``."""
    order = np.random.default_rng(seed).permutation(len(frames))
    n_test, n_val = round(0.2 * len(frames)), round(0.1 * len(frames))
    n_train = (len(frames) - n_test - n_val) // batch * batch
    n_val = len(frames) - n_test - n_train
    parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val]}
    parts["test"] = order[n_train + n_val :]
    return {k: [frames[i] for i in v] for k, v in parts.items()}


def mace_cmd(name: str, data: dict, a: argparse.Namespace, seed: int, work: Path) -> list:
    """``bench_trainer``'s command with the accuracy settings above (see the docstring)."""
    b = argparse.Namespace(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=seed)
    cmd = mace_command(data, CONFIG["model"], b, work, "float64")
    cmd[cmd.index("--scheduler_patience") + 1] = str(CONFIG["training"]["lr_patience"])
    cmd += ["--ema", "--ema_decay", str(CONFIG["training"]["ema_decay"])]
    if MACE[name]:
        cmd += ["--swa", "--swa_energy_weight", "1000", "--swa_forces_weight", "100",
                "--swa_stress_weight", "10"]  # fmt: skip
    return cmd


def train_one(name: str, seed: int, data: dict, a: argparse.Namespace, work: Path) -> dict:
    """One training process: wall and CPU seconds (its own, by wait4) and its model file,
    also stored in ``run.json`` beside it; a run whose ``run.json`` exists is not trained again
    (a measurement that was stopped continues with the models it finished)."""
    out = work / f"{name}_s{seed}"
    if (out / "run.json").exists():
        return json.loads((out / "run.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    if name in MACE:
        cmd = mace_cmd(name, data, a, seed, out)
        model = out / ("bench_stagetwo.model" if MACE[name] else "bench.model")
    else:
        run, overrides = OURS[name]
        training = {**CONFIG["training"], "epochs": a.epochs, "batch_size": a.batch_size,
                    "lr": a.lr, "device": "cpu"}  # fmt: skip
        args = {"train": str(data["train"]), "val": str(data["val"]), "out": str(out),
                "name": name, "model": CONFIG["model"], "run": run, "seed": seed,
                "training": training, "overrides": overrides}  # fmt: skip
        cmd = [sys.executable, "-c", _OURS_SCRIPT, json.dumps(args)]
        model = out / "model.model"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.perf_counter()
    with open(out / "train.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=out)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{name} seed {seed} failed; see {out / 'train.log'}")
    run = {"model": str(model), "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}
    (out / "run.json").write_text(json.dumps(run))
    return run


def test_errors(model_path: str, test_frames: list, dtype: str = "float64") -> dict:
    """MAE/RMSE of one whole-module MACE model on the test split, by the pipeline's metrics,
    evaluated in the dtype it was trained in."""
    import torch
    from mace.calculators import MACECalculator

    from dft2mlip.validate.metrics import component_metrics, predict

    before = torch.get_default_dtype()
    calc = MACECalculator(model_paths=model_path, device="cpu", default_dtype=dtype)
    try:
        return component_metrics(predict(calc, test_frames))
    finally:
        torch.set_default_dtype(before)


def run_all(a: argparse.Namespace, work: Path) -> dict:
    frames = ase.io.read(a.data, ":")
    parts = split(frames, a.split_seed, a.batch_size)
    data = {}
    for key, part in parts.items():
        data[key] = work / f"{key}.extxyz"
        ase.io.write(data[key], part, format="extxyz")
    names = [*MACE, *OURS] if not a.only else a.only
    jobs = [(n, s) for s in range(a.seeds) for n in names if s == 0 or n not in a.one_seed]
    with ThreadPoolExecutor(a.jobs) as pool:
        done = list(pool.map(lambda job: train_one(*job, data, a, work), jobs))
    results: dict[str, list] = {n: [] for n in names}
    for (name, seed), run in zip(jobs, done, strict=True):
        dtype = OURS[name][1].get("dtype", "float64") if name in OURS else "float64"
        run.update(seed=seed, test=test_errors(run["model"], parts["test"], dtype))
        results[name].append(run)
        print(f"{name} seed {seed}: {run['wall_s']} s, {run['test']}", flush=True)
    return {"split": {k: len(v) for k, v in parts.items()}, "runs": results}


def table(results: dict) -> list[str]:
    """Mean ± std over seeds of the test MAEs and the wall time per model."""
    lines = ["| trainer | seeds | E MAE meV/atom | F MAE meV/Å | S MAE GPa | wall s/model | "
             "CPU s/model |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, runs in results["runs"].items():
        cells = []
        for key in COMPONENTS:
            values = [r["test"][key] for r in runs]
            cells.append(f"{np.mean(values):.3g} ± {np.std(values):.2g}")
        # mean over the seeds whose time was measured (null: lost when a run was restarted)
        wall, cpu = (_mean_known([r[k] for r in runs]) for k in ("wall_s", "cpu_s"))
        lines.append(f"| {name} | {len(runs)} | {' | '.join(cells)} | {wall} | {cpu} |")
    return lines


def _mean_known(values: list) -> str:
    """Mean of the measured values (``n of m`` when some are unknown), ``-`` if none."""
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    note = "" if len(known) == len(values) else f" ({len(known)} of {len(values)})"
    return f"{np.mean(known):.0f}{note}"


def paired(results: dict, base: str = "ours-default") -> list[str]:
    """Per-seed differences (trainer minus ``base``) of the test MAEs: mean and 95 % t interval.

    Seeds pair runs: same split, same initialisation and shuffling seed, one change of setting.
    """
    if base not in results["runs"]:
        return []
    by_seed = {r["seed"]: r["test"] for r in results["runs"][base]}
    lines = ["", f"Paired by seed, minus {base}: mean difference [95 % t interval over seeds]; "
             "the difference is within noise when the interval holds 0.", "",
             "| trainer | seeds | ΔE meV/atom | ΔF meV/Å | ΔS GPa |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, runs in results["runs"].items():
        pairs = [(r["test"], by_seed[r["seed"]]) for r in runs if r["seed"] in by_seed]
        if name == base or len(pairs) < 2:
            continue
        cells = []
        for key in COMPONENTS:
            d = paired_interval([run[key] - ref[key] for run, ref in pairs])
            cells.append(f"{d['mean']:+.3g} [{d['low']:+.3g}, {d['high']:+.3g}]")
        lines.append(f"| {name} | {len(pairs)} | {' | '.join(cells)} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", type=Path)
    p.add_argument("--epochs", type=int, default=CONFIG["training"]["epochs"])
    p.add_argument("--batch-size", type=int, default=CONFIG["training"]["batch_size"])
    p.add_argument("--lr", type=float, default=CONFIG["training"]["lr"])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--split-seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", nargs="+", choices=[*MACE, *OURS], help="a subset of trainers")
    p.add_argument("--one-seed", nargs="+", default=[], choices=[*MACE, *OURS],
                   help="trainers run with seed 0 only (no paired interval)")  # fmt: skip
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_accuracy"))
    p.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--tag", default="", help="results file suffix (accuracy_<tag>.json)")
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    result = {
        "command": " ".join(["python", "bench/bench_accuracy.py", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "load_before": Path("/proc/loadavg").read_text().split()[:3],
        "model": CONFIG["model"],
    }
    result.update(run_all(a, a.work))
    result["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    lines = table(result) + paired(result) + paired(result, "mace-two-stage")
    print("\n".join(lines))
    a.results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"accuracy_{a.tag}" if a.tag else "accuracy"
    (a.results_dir / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    head = (f"# Test MAE after {a.epochs} epochs (bench/bench_accuracy.py)\n\n"
            f"`{result['command']}` on {result['date']} UTC, {result['machine']['nproc']} x "
            f"{result['machine']['cpu_model']}, load {result['load_before']} -> "
            f"{result['load_after']}; split "
            f"{result['split']}; mean ± std (ddof 0) over {a.seeds} seeds.\n\n")  # fmt: skip
    (a.results_dir / f"{stem}.md").write_text(head + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
