"""DAG scale: wall time and peak memory of `snakemake -n` for 100, 1,000 and 10,000 DFT structures.

Each size gets a synthetic config (the tiny test config with more structures) and runs `snakemake -n
--cores 2` in a fresh process; peak memory is that process's maximum resident set (os.wait4). The
peers are Snakefiles of the same shape for as many structures (one structure-set file -> input ->
run+parse per structure -> one aggregating rule; no config checks, no helper functions), one bare
(`run: pass`) and one idiomatic (log, benchmark, params, conda and script per job, as every
dft2mlip rule has): the ratios say what dft2mlip's own DAG code costs on top of Snakemake's.
Target: <= 30 s and <= 2 GB for 10,000 structures on 2 cores.

    python bench/bench_dag_scale.py [--sizes 100 1000 10000] [--keep DIR] [--with-temp-handling]

Both runs use --notemp, as profiles/default and profiles/slurm do (no rule has temp() outputs);
--with-temp-handling measures Snakemake's default instead. No job has one output per structure:
Snakemake's bookkeeping for such a job grows with (outputs x jobs), which is why each structure set
is one multi-frame file.

Structures are counted as DFT single points: training candidates (at most 999 per section in
dft2mlip.structures, so at most 3,996), the 12 elastic cells, and the DFT points along each training
run's MD path (50 per run at most); sizes beyond the training cap add training runs.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "workflow" / "config_tiny.yaml"
SECTIONS = ("hydrostatic", "strained", "rattled", "supercell")
PER_SECTION_MAX = 999
N_ELASTIC = 12

# The peers: the same DAG shape as dft2mlip's for as many structures. In the "idiomatic" one every
# per-structure rule also has what the project's rules have (log, benchmark, params, conda, script),
# each of which Snakemake resolves per job; the "bare" one has none of it.
PEER_RULE = """
rule {name}:
    input: {inputs}
    output: {outputs}{extra}
"""
PEER_IDIOMATIC = """
    log: "logs/{name}/{{sid}}.log"
    benchmark: "benchmarks/{name}/{{sid}}.tsv"
    params: physics={{"ecutwfc_Ry": 30}}
    conda: "env.yaml"
    script: "noop.py"
"""
PEER_BARE = """
    run:
        pass
"""


def peer_snakefile(idiomatic: bool) -> str:
    """A Snakefile of structure set -> dft_input -> dft_run (per structure) -> dataset."""
    per_job = PEER_IDIOMATIC if idiomatic else PEER_BARE
    files = {
        "dft_input": ("pw.in", "settings.json", "structure.extxyz"),
        "dft_run": ("pw.out", "run.json", "label.extxyz"),
    }
    rules = [
        'N = int(config["n_dft"])\nIDS = [f"s{i:05d}" for i in range(N)]\n',
        PEER_RULE.format(name="all", inputs='"dataset.txt"', outputs='"all.txt"', extra=PEER_BARE),
        PEER_RULE.format(
            name="structures", inputs="[]", outputs='"structures/train.extxyz"', extra=PEER_BARE
        ),
    ]
    inputs = '"structures/train.extxyz"'
    for name, names in files.items():
        outputs = ", ".join(f'"dft/{{sid}}/{f}"' for f in names)
        rules.append(
            PEER_RULE.format(
                name=name, inputs=inputs, outputs=outputs, extra=per_job.format(name=name)
            )
        )
        inputs = outputs
    rules.append(
        PEER_RULE.format(
            name="dataset",
            inputs='expand("dft/{sid}/label.extxyz", sid=IDS)',
            outputs='"dataset.txt"',
            extra=PEER_BARE,
        )
    )
    return "".join(rules)


def synthetic_config(n_structures: int) -> tuple[dict, dict]:
    """The tiny config grown to about ``n_structures`` DFT single points; and its composition."""
    cfg = yaml.safe_load(TINY.read_text())
    md = cfg["validation"]["md"]
    runs = dict(cfg["training"]["runs"])
    n_train = n_structures - N_ELASTIC - len(runs) * md["snapshots"]
    cap = PER_SECTION_MAX * len(SECTIONS)
    if n_train > cap:  # the rest become DFT points on the MD paths of extra training runs
        md["snapshots"] = 50
        md["max_strain"] = max(md["max_strain"], 0.05)  # enough MD steps for 50 snapshots
        n_md = n_structures - N_ELASTIC - cap
        n_runs = math.ceil(n_md / md["snapshots"])
        template = runs["fixed"]
        runs = {f"run{i:03d}": dict(template) for i in range(n_runs)}
        n_train = n_structures - N_ELASTIC - n_runs * md["snapshots"]
    base, extra = divmod(max(n_train, len(SECTIONS)), len(SECTIONS))
    counts = [base + (1 if i < extra else 0) for i in range(len(SECTIONS))]
    s = cfg["structures"]
    s["hydrostatic"]["strains"] = [
        round(-0.02 + 0.04 * i / max(counts[0] - 1, 1), 6) for i in range(counts[0])
    ]
    for section, count in zip(SECTIONS[1:], counts[1:], strict=True):
        s[section]["count"] = count
    cfg["training"]["runs"] = runs
    composition = {
        "training": sum(counts),
        "elastic": N_ELASTIC,
        "md": len(runs) * md["snapshots"],
        "runs": len(runs),
    }
    return cfg, composition


def measure(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall time (s), peak RSS (MB) of one process; and its output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed in {cwd}:\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024, text


def jobs_in(output: str) -> int:
    for line in output.splitlines():
        if line.strip().startswith("total"):
            return int(line.split()[1])
    return 0


def run_size(n: int, base: Path, notemp: bool = True) -> dict:
    cfg, composition = synthetic_config(n)
    work = base / f"dft2mlip_{n}"
    work.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "scripts", "envs"):
        (work / name).symlink_to(ROOT / name)
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--quiet", "rules"]
    if notemp:
        snakemake.append("--notemp")
    ours_s, ours_mb, text = measure(snakemake, work)

    n_dft = composition["training"] + composition["elastic"] + composition["md"]
    row = {"n": n, "dft": n_dft, **composition, "jobs": jobs_in(text)}
    row.update(ours_s=ours_s, ours_mb=ours_mb)
    for kind in ("bare", "idiomatic"):
        peer = base / f"peer_{kind}_{n}"
        peer.mkdir()
        (peer / "Snakefile").write_text(peer_snakefile(idiomatic=kind == "idiomatic"))
        (peer / "noop.py").write_text("")
        (peer / "env.yaml").write_text("dependencies: [python]\n")
        peer_s, peer_mb, peer_text = measure([*snakemake, "--config", f"n_dft={n_dft}"], peer)
        row.update({f"{kind}_jobs": jobs_in(peer_text), f"{kind}_s": peer_s, f"{kind}_mb": peer_mb})
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--keep", type=Path, help="keep the working directories here")
    parser.add_argument(
        "--with-temp-handling", action="store_true", help="measure without --notemp"
    )
    args = parser.parse_args(argv)
    base = args.keep or Path(tempfile.mkdtemp(prefix="dag_scale_"))
    base.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in args.sizes:
            rows.append(run_size(n, base, notemp=not args.with_temp_handling))
            r = rows[-1]
            print(f"... {n}: {r['ours_s']:.1f} s, {r['ours_mb']:.0f} MB", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    header = (
        f"{'structures':>10} {'train/elast/md':>16} {'runs':>5} {'jobs':>7} | "
        f"{'dft2mlip s':>10} {'MB':>6} | {'peer jobs':>9} {'bare s':>7} {'MB':>6} "
        f"{'idiom. s':>8} | {'time x bare':>11} {'x idiom.':>8} {'mem x bare':>10}"
    )
    flags = "" if args.with_temp_handling else " --notemp"
    print(
        f"snakemake -n --cores 2{flags}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
        "peers = Snakefiles of the same shape, bare and idiomatic (log, benchmark, params, "
        "conda, script per job)"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        mix = f"{r['training']}/{r['elastic']}/{r['md']}"
        print(
            f"{r['dft']:>10} {mix:>16} {r['runs']:>5} {r['jobs']:>7} | "
            f"{r['ours_s']:>10.1f} {r['ours_mb']:>6.0f} | {r['bare_jobs']:>9} "
            f"{r['bare_s']:>7.1f} {r['bare_mb']:>6.0f} {r['idiomatic_s']:>8.1f} | "
            f"{r['ours_s'] / r['bare_s']:>11.2f} {r['ours_s'] / r['idiomatic_s']:>8.2f} "
            f"{r['ours_mb'] / r['bare_mb']:>10.2f}"
        )
    big = [r for r in rows if r["dft"] >= 10000]
    for r in big:
        ok = r["ours_s"] <= 30 and r["ours_mb"] <= 2048
        print(
            f"target for {r['dft']} structures (<= 30 s, <= 2048 MB): "
            f"{'met' if ok else 'NOT met'} ({r['ours_s']:.1f} s, {r['ours_mb']:.0f} MB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
