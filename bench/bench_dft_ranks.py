"""How a workstation should spend its cores on many small DFT labels: one pw.x at a time with all
cores as MPI ranks (the peer: what `threads: 2` on the pw.x rules did), against as many serial
pw.x at once as there are cores (what the rules' default `threads: 1` does under `--cores N`).

Same inputs, same pw.x, same machine, in the same run: the default config's first N 2-atom training
structures and its 8-atom supercells (default QE settings), inputs written beforehand (untimed).
Both modes run every input once; the table gives the wall time of the whole batch and the ratio
(throughput of the concurrent serial runs / throughput of the one-at-a-time MPI runs).

    python bench/bench_dft_ranks.py [--n 6] [--cores 2] [--out bench/results/dft_ranks.json]

Run it on a quiet machine: anything else on the cores changes both columns, not only one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bench_dft_overhead import run_bare  # noqa: E402 (bare pw.x, timed, as in the overhead benchmark)

from dft2mlip.config import validate_config  # noqa: E402
from dft2mlip.dft.qe import write_pw_input  # noqa: E402
from dft2mlip.dft.settings import QESettings  # noqa: E402
from dft2mlip.structures import training_structures  # noqa: E402


def batch(dirs: list[Path], nprocs: int, concurrent: int, launcher: str) -> dict:
    """Run every input, ``concurrent`` at a time with ``nprocs`` ranks each; the batch wall time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrent) as pool:
        each = list(pool.map(lambda d: run_bare(d, nprocs, launcher), dirs))
    return {"wall_s": time.perf_counter() - start, "per_label_s": each}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6, help="2-atom structures (plus the supercells)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    config = validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    structures = training_structures(config["material"], config["structures"], config["seed"])
    small = [s for s in structures.values() if len(s) == 2][: args.n]
    large = [s for s in structures.values() if len(s) > 2]
    launcher = config["dft"]["mpi_launcher"]
    settings = QESettings.from_config(config["dft"]["qe"])
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cells in (("2-atom", small), (f"{len(large[0])}-atom", large)):
            dirs = []
            for i, atoms in enumerate(cells):
                work = Path(tmp) / f"{name}-{i}"
                work.mkdir()
                write_pw_input(atoms, settings, work / "pw.in")
                dirs.append(work)
            mpi = batch(dirs, args.cores, 1, launcher)
            serial = batch(dirs, 1, args.cores, launcher)
            rows.append({
                "cells": name, "n": len(dirs),
                "one_at_a_time_mpi": mpi, "concurrent_serial": serial,
                "throughput_ratio": mpi["wall_s"] / serial["wall_s"],
            })  # fmt: skip
    print(f"{'cells':8s} {'n':>3s} {'1 x ' + str(args.cores) + ' ranks':>14s} "
          f"{str(args.cores) + ' x serial':>12s} {'ratio':>6s}")  # fmt: skip
    for row in rows:
        mpi, serial = row["one_at_a_time_mpi"]["wall_s"], row["concurrent_serial"]["wall_s"]
        print(f"{row['cells']:8s} {row['n']:3d} {mpi:13.1f}s {serial:11.1f}s "
              f"{row['throughput_ratio']:6.2f}x")  # fmt: skip
    record = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_1min_before_after": [load_before, os.getloadavg()[0]],
        "qe": {k: config["dft"]["qe"][k] for k in ("ecutwfc_Ry", "ecutrho_Ry", "kspacing_per_A")},
        "rows": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
