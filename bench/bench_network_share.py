"""How much of a training epoch is the network itself, and whether compiling it helps (issue 12).

Both trainers of ``bench_trainer.py`` run the identical MACE network, so the trainer can only be
faster than the peer in what is *not* the network. This measures, in one process, one thread,
interleaved round by round on the EMT Al cells of ``bench_trainer.make_dataset`` and
``config/config.yaml``'s model:

- ``network``: per epoch, the network's forward (energy, forces and stress with the graph kept,
  as in training) and the backward pass of a plain squared loss, over the same batches a
  training epoch sees; nothing else (no optimiser step, validation, checkpoint or collation);
- ``compiled``: the same with the network compiled by ``e3nn.util.jit.compile`` (TorchScript,
  the route ``mace_create_lammps_model`` takes);
- ``training``: a whole epoch of our trainer (``train_run`` with ``bench_trainer.py``'s
  ``OURS_RUN_CFG`` and ``ours_settings``), from its ``history.csv`` CPU seconds.

Reported: median CPU seconds per epoch of each (first round left out: warm-up and TorchScript's
profiling runs), ``network / training`` (the network's share of an epoch) and
``compiled / network``. Stores ``bench/results/network_share_<dtype>.json``.

Run: ``python bench/bench_network_share.py --dtype float32 --rounds 6`` (a few CPU minutes).
Never asserts: it prints and stores.
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ase.io
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_trainer import OURS_RUN_CFG, loadavg, machine, make_dataset, ours_settings  # noqa: E402


def network_epoch(model, batches) -> float:
    """CPU seconds of forward (forces and stress, graph kept) + backward over ``batches``."""
    t0 = time.thread_time()
    for batch in batches:
        out = model(batch.to_dict(), training=True, compute_force=True, compute_stress=True)
        loss = out["energy"].pow(2).mean() + out["forces"].pow(2).mean()
        loss = loss + out["stress"].pow(2).mean()
        model.zero_grad(set_to_none=True)
        loss.backward()
    return time.thread_time() - t0


def training_epochs(data: dict, model_cfg: dict, a, out: Path) -> list[float]:
    """CPU seconds per epoch of our trainer (history.csv), first epoch left out."""
    from dft2mlip.train.settings import TrainingSettings
    from dft2mlip.train.trainer import train_run

    train_run(
        data["train"], data["val"], out, run_name="bench", model_cfg=model_cfg,
        run_cfg=OURS_RUN_CFG, seed=a.seed, resume=False, progress=False,
        settings=TrainingSettings(**ours_settings(a.epochs, a.batch_size, 0.01, a.dtype)),
    )  # fmt: skip
    with open(out / "history.csv") as fh:
        return [float(row["cpu_s"]) for row in csv.DictReader(fh)][1:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--epochs", type=int, default=4, help="training epochs per round")
    p.add_argument("--n-train", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args()
    from e3nn.util import jit

    from dft2mlip.train import models

    torch.set_num_threads(1)
    model_cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["model"]
    before = loadavg()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench_share_") as tmp:
        data = make_dataset(Path(tmp), {"train": a.n_train, "val": 8}, a.seed)
        with models.default_dtype(a.dtype):
            frames = ase.io.read(data["train"], ":")
            graphs = models.configs_to_data(
                models.atoms_to_configs(frames), [13], model_cfg["r_max_A"], a.dtype
            )
            batches = list(models.make_loader(graphs, a.batch_size, shuffle=False))
            eager = models.build_model(
                model_cfg, [13], {13: -3.0}, 20.0, a.dtype, scale=1.0, shift=0.0
            )
            compiled = jit.compile(copy.deepcopy(eager))
            for r in range(a.rounds):
                rounds.append(
                    {
                        "network": [network_epoch(eager, batches)],
                        "compiled": [network_epoch(compiled, batches)],
                        "training": training_epochs(data, model_cfg, a, Path(tmp) / f"t{r}"),
                    }
                )
                print(f"round {r}: {rounds[-1]}", flush=True)
    # the first round is left out: warm-up, and TorchScript's profiling runs
    times = {k: [t for done in rounds[1:] for t in done[k]] for k in rounds[0]}
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "command": " ".join(["python", "bench/bench_network_share.py", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "load_before": before,
        "load_after": loadavg(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
        "cpu_s_per_epoch_median": med,
        "network_share_of_training_epoch": med["network"] / med["training"],
        "compiled_over_eager": med["compiled"] / med["network"],
        "times": times,
    }
    print(json.dumps({k: result[k] for k in list(result)[-4:-1]}, indent=1))
    a.results_dir.mkdir(parents=True, exist_ok=True)
    (a.results_dir / f"network_share_{a.dtype}.json").write_text(
        json.dumps(result, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
