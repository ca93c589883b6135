"""Per-label overhead of the DFT pipeline against bare pw.x on the same inputs, side by side.

For each of the default config's 2-atom training structures (default QE settings: 30/240 Ry,
k-spacing 0.35 1/Å -> 6x6x6), in alternating order:

- bare:     ``pw.x -in pw.in > pw.out`` (the input written beforehand, untimed);
- pipeline: write the input + settings.json, run pw.x under custodian (handlers, run record),
            parse (units, checks, provenance), write the label file.

Prints per-label times and ``overhead = (pipeline - bare) / bare``. Snakemake additionally
starts one Python process per job (two per label: dft_input, and dft_run that also parses); their
start-up (interpreter + imports) is measured separately and reported next to it, since it
depends on the machine's file system rather than on our code.

    python bench/bench_dft_overhead.py [--n 4] [--nprocs 1] [--repeats 1]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from dft2mlip.config import validate_config
from dft2mlip.data import write_label
from dft2mlip.dft.labels import parse_run, run_input, write_input
from dft2mlip.dft.qe import write_pw_input
from dft2mlip.dft.run import pw_command, pw_environment
from dft2mlip.dft.settings import QESettings
from dft2mlip.structures import training_structures

ROOT = Path(__file__).resolve().parents[1]


def bare_pw(atoms, qe_cfg: dict, work: Path, nprocs: int, launcher: str) -> float:
    write_pw_input(atoms, QESettings.from_config(qe_cfg), work / "pw.in")
    return run_bare(work, nprocs, launcher)


def run_bare(work: Path, nprocs: int, launcher: str) -> float:
    """Wall time of bare pw.x on ``work/pw.in`` (output to ``work/pw.out``)."""
    command = pw_command("pw.in", nprocs=nprocs, mpi_launcher=launcher)
    start = time.perf_counter()
    with open(work / "pw.out", "w") as out:
        subprocess.run(
            command, cwd=work, stdout=out, stderr=subprocess.DEVNULL,
            env=pw_environment(command), check=True,
        )  # fmt: skip
    return time.perf_counter() - start


def pipeline(atoms, qe_cfg: dict, work: Path, nprocs: int, launcher: str) -> dict:
    t0 = time.perf_counter()
    write_input("qe", qe_cfg, atoms, work, work / "settings.json")
    t1 = time.perf_counter()
    run = run_input("qe", work, executable="pw.x", nprocs=nprocs, mpi_launcher=launcher)
    t2 = time.perf_counter()
    label = parse_run("qe", qe_cfg, work, atoms, work / "settings.json", run)
    write_label(label, work / "label.extxyz")
    t3 = time.perf_counter()
    if label.status != "ok":
        raise RuntimeError(f"{label.structure_id}: {label.status} {label.message}")
    return {"write": t1 - t0, "run": t2 - t1, "parse": t3 - t2, "total": t3 - t0}


#: Snakemake jobs per DFT label: dft_input, and dft_run (run + parse)
JOBS_PER_LABEL = 2


def script_startup_s(repeats: int = 3) -> float:
    """Median wall time of a Python process that imports what the DFT scripts import."""
    code = "import dft2mlip.dft.labels, dft2mlip.data, ase.io, dft2mlip.logutil"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="number of 2-atom labels")
    parser.add_argument("--nprocs", type=int, default=1, help="MPI ranks of pw.x")
    parser.add_argument("--repeats", type=int, default=1, help="passes over the labels")
    args = parser.parse_args()
    if shutil.which("pw.x") is None:
        sys.exit("pw.x not found (tools/ensure_pw.sh)")

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate_config(config)
    qe_cfg = config["dft"]["qe"]
    launcher = config["dft"]["mpi_launcher"] if args.nprocs > 1 else ""
    structures = training_structures(config["material"], config["structures"], config["seed"])
    two_atom = [a for a in structures.values() if len(a) == 2][: args.n]

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_dft_") as tmp:
        for rep in range(args.repeats):
            for i, atoms in enumerate(two_atom):
                sid = atoms.info["structure_id"]
                bare_dir = Path(tmp) / f"bare_{rep}_{sid}"
                pipe_dir = Path(tmp) / f"pipe_{rep}_{sid}"
                bare_dir.mkdir()
                # alternate which one runs first, so slow drifts of the machine cancel out
                if (i + rep) % 2 == 0:
                    bare = bare_pw(atoms, qe_cfg, bare_dir, args.nprocs, launcher)
                    pipe = pipeline(atoms, qe_cfg, pipe_dir, args.nprocs, launcher)
                else:
                    pipe = pipeline(atoms, qe_cfg, pipe_dir, args.nprocs, launcher)
                    bare = bare_pw(atoms, qe_cfg, bare_dir, args.nprocs, launcher)
                rows.append((sid, bare, pipe))
                print(
                    f"{sid:12s} bare pw.x {bare:7.2f} s | pipeline {pipe['total']:7.2f} s "
                    f"(write {pipe['write']:.3f}, run {pipe['run']:.2f}, parse "
                    f"{pipe['parse']:.3f}) | overhead {(pipe['total'] - bare) / bare:+.1%}",
                    flush=True,
                )
    bare_total = sum(r[1] for r in rows)
    pipe_total = sum(r[2]["total"] for r in rows)
    startup = script_startup_s()
    print()
    print(f"labels: {len(rows)} (2-atom Si, ecutwfc {qe_cfg['ecutwfc_Ry']} Ry, "
          f"k-spacing {qe_cfg['kspacing_per_A']} 1/Å, {args.nprocs} MPI rank(s))")  # fmt: skip
    print(f"bare pw.x total      {bare_total:8.2f} s   ({bare_total / len(rows):.2f} s/label)")
    print(f"pipeline total       {pipe_total:8.2f} s   ({pipe_total / len(rows):.2f} s/label)")
    print(f"pipeline / bare      {pipe_total / bare_total:8.3f}")
    print(f"library overhead     {(pipe_total - bare_total) / bare_total:+8.1%} of pw.x time")
    print(
        f"Snakemake script start-up (interpreter + imports) {startup:.2f} s per job, "
        f"{JOBS_PER_LABEL} jobs per label = "
        f"{JOBS_PER_LABEL * startup / (bare_total / len(rows)):.0%} of one pw.x run "
        "(machine dependent; group the DFT jobs on a cluster, see profiles/slurm)"
    )


if __name__ == "__main__":
    main()
