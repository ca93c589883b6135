"""Wall time per stage of a finished run, from Snakemake's benchmark files and rule logs.

Usage: python tools/stage_times.py [benchmarks_dir]   -> a Markdown table (README, closing notes)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def stage_times(bench_dir: Path) -> pd.DataFrame:
    """Jobs, summed and maximum wall seconds, and summed CPU seconds (the job's processes and
    their children, as Snakemake's benchmark measures them) per benchmarked rule."""
    rows = []
    for tsv in sorted(bench_dir.rglob("*.tsv")):
        stage = tsv.relative_to(bench_dir).parts[0].removesuffix(".tsv")
        record = pd.read_csv(tsv, sep="\t").iloc[0]
        rows.append({"stage": stage, "s": float(record["s"]), "cpu": float(record["cpu_time"])})
    df = pd.DataFrame(rows).groupby("stage")
    table = df["s"].agg(jobs="count", total_s="sum", max_s="max")
    return table.join(df["cpu"].agg(cpu_s="sum")).round(1)


if __name__ == "__main__":
    bench = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks")
    if not bench.exists():
        sys.exit(f"no benchmarks in {bench}")
    table = stage_times(bench)
    print("| stage | jobs | wall s (sum) | longest job s | CPU s (sum) |\n|---|---|---|---|---|")
    for stage, row in table.iterrows():
        print(
            f"| {stage} | {row.jobs:.0f} | {row.total_s:.1f} | {row.max_s:.1f} | {row.cpu_s:.1f} |"
        )
