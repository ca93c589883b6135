"""One complete run of the tiny test config, shared by tests/test_slurm.py and
tests/test_reproducibility.py (session fixture ``completed_tiny_run`` in conftest.py).

Where a one-node SLURM can be started here (root; slurm-wlm + munge from tools/ensure_slurm.sh)
the run goes through Snakemake's SLURM executor plugin with ``profiles/slurm``; while it runs, one
DFT job is cancelled with ``scancel`` (the profile's ``retries`` must resubmit it). Elsewhere the
same config runs locally, so the dry-run reproducibility tests still have a complete run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "workflow" / "config_tiny.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
sys.path.insert(0, str(ROOT / "tools"))

from slurm_localhost import LocalSlurm, unavailable_reason  # noqa: E402

#: what the test cluster changes in profiles/slurm: a node with 2 CPUs and a few GB, fast status
#: checks (the jobs here last seconds, not hours), everything else as shipped
SLURM_TEST_OVERRIDES = {
    "jobs": 8,
    "latency-wait": 5,
    "keep-going": False,
    "slurm-status-command": "squeue",  # no accounting database: sacct fails
    "slurm-init-seconds-before-status-checks": 2,
    "set-threads": {"dft_run": 2, "elastic_dft_relax": 2, "relax_reference": 2, "train": 1},
    "default-resources": {"mem_mb": 400, "runtime": 30},
    "resources-overrides": {
        "dft_run": {"tasks": 2, "mem_mb": "400 * attempt"},
        "elastic_dft_relax": {"tasks": 2, "mem_mb": "400 * attempt"},
        "relax_reference": {"tasks": 2, "mem_mb": "400 * attempt"},
        "train": {"mem_mb": 1000},
    },
}


@dataclass
class TinyRun:
    """A completed tiny run.

    Attributes
    ----------
    workdir
        Working directory (workflow linked in, ``config/config.yaml``, ``results/``).
    executor
        ``"slurm"`` or ``"local"``.
    config_args
        Extra snakemake arguments that reproduce the run's config (the SLURM profile sets the MPI
        launcher through ``config:``); dry runs must pass them too.
    skip_reason
        Why SLURM was not used (``None`` when it was).
    log
        Snakemake's output of the run.
    cancelled
        SLURM job ids cancelled with scancel during the run, with the squeue comment of each.
    wall_s
        Wall time of the run (s).
    daemon_pids
        Pids of the munged, slurmctld and slurmd this run started (all stopped when it returns).
    """

    workdir: Path
    executor: str
    config_args: list[str]
    skip_reason: str | None = None
    log: str = ""
    cancelled: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    daemon_pids: dict[str, int] = field(default_factory=dict)


def n_snapshot_labels(cfg: dict) -> int:
    """DFT snapshot labels a config asks for, by the schema's wording of the keys: on the MD
    path of each run in validation.snapshot_runs (null: training.reference_run, default
    adaptive), validation.md.snapshots each."""
    validation, training = cfg.get("validation") or {}, cfg["training"]
    runs = validation.get("snapshot_runs") or [training.get("reference_run", "adaptive")]
    return len(runs) * validation["md"]["snapshots"]


def make_workdir(path: Path, config: Path = TINY) -> Path:
    """A working directory with a copy of the workflow and ``config`` as config/config.yaml.

    A copy, not links: the rerun checks compare code and parameters with those recorded at run
    time, so editing the checkout while a long test runs must not touch the run under test."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "scripts", "envs", "profiles"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, path / name)
    (path / "config").mkdir()
    shutil.copy(config, path / "config" / "config.yaml")
    return path


def snakemake(
    workdir: Path, *args: str, cores: int = 2, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir``; on failure raise with the end of its output."""
    proc = subprocess.run(
        [*SNAKEMAKE, "--cores", str(cores), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def planned_jobs(output: str) -> Counter:
    """Job counts per rule from the table `snakemake -n` prints (empty when nothing to do)."""
    if "Job stats:" not in output:
        return Counter()
    table = output.split("Job stats:")[1].split("\n\n")[0]
    counts = Counter()
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def slurm_profile_config() -> dict:
    """profiles/slurm/config.yaml as shipped."""
    return yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())


def test_profile(directory: Path) -> Path:
    """profiles/slurm with :data:`SLURM_TEST_OVERRIDES` applied, written to ``directory``."""
    profile = slurm_profile_config()
    overrides = {k: v for k, v in SLURM_TEST_OVERRIDES.items() if k != "resources-overrides"}
    profile.update(overrides)
    for rule, values in SLURM_TEST_OVERRIDES["resources-overrides"].items():
        profile["set-resources"].setdefault(rule, {}).update(values)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return directory


def profile_config_args(profile: dict) -> list[str]:
    """``--config`` arguments equivalent to a profile's ``config:`` entries."""
    entries = profile.get("config") or []
    return ["--config", *entries] if entries else []


class Canceller(threading.Thread):
    """Cancel the first DFT job seen running for ``min_running_s`` (scancel), once."""

    def __init__(self, cluster: LocalSlurm, min_running_s: float = 1.0):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.min_running_s = min_running_s
        self.cancelled: dict[str, str] = {}
        self.stop_event = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        first_seen: dict[str, float] = {}
        while not self.stop_event.is_set() and not self.cancelled:
            out = self.cluster.run("squeue", "-h", "-t", "RUNNING", "-o", "%i|%k", check=False)
            now = time.monotonic()
            for line in out.stdout.splitlines():
                jobid, _, comment = line.partition("|")
                if "dft" not in comment:
                    continue
                first_seen.setdefault(jobid, now)
                if now - first_seen[jobid] >= self.min_running_s:
                    res = self.cluster.run("scancel", jobid, check=False)
                    if res.returncode == 0:
                        self.cancelled[jobid] = comment
                    else:
                        self.errors.append(res.stderr)
                    break
            time.sleep(0.25)


def run_on_slurm(workdir: Path, cluster_dir: Path) -> TinyRun:
    """Run the tiny config through a fresh one-node SLURM, cancelling one DFT job on the way."""
    profile_dir = test_profile(cluster_dir / "profile")
    profile = yaml.safe_load((profile_dir / "config.yaml").read_text())
    # twice the cores as SLURM CPUs: the jobs are short and spend much of their time starting
    # Python, so two 2-rank DFT jobs side by side keep both cores busy
    cluster = LocalSlurm(cluster_dir / "slurm", cpus=2 * (os.cpu_count() or 1))
    start = time.monotonic()
    with cluster:
        daemon_pids = {name: proc.pid for name, proc in cluster.processes.items()}
        canceller = Canceller(cluster)
        canceller.start()
        try:
            proc = snakemake(workdir, "--profile", str(profile_dir), check=False, env=cluster.env)
        finally:
            canceller.stop_event.set()
            canceller.join(timeout=10)
        log = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(
                f"the SLURM run failed ({proc.returncode}):\n{log[-6000:]}\n"
                f"--- SLURM logs\n{cluster.log_tail(1500)}"
            )
    return TinyRun(
        workdir=workdir,
        executor="slurm",
        config_args=profile_config_args(profile),
        log=log,
        cancelled=canceller.cancelled,
        wall_s=time.monotonic() - start,
        daemon_pids=daemon_pids,
    )


def complete_tiny_run(base: Path) -> TinyRun:
    """A complete run of the tiny config in ``base/work``: on SLURM if possible, else locally."""
    workdir = make_workdir(base / "work")
    reason = unavailable_reason()
    if reason is None:
        return run_on_slurm(workdir, base)
    start = time.monotonic()
    proc = snakemake(workdir)
    return TinyRun(
        workdir=workdir,
        executor="local",
        config_args=[],
        skip_reason=reason,
        log=proc.stdout + proc.stderr,
        wall_s=time.monotonic() - start,
    )
