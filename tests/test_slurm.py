"""Cluster submission against a real SLURM: the tiny config end to end through Snakemake's SLURM
executor plugin and profiles/slurm, on a one-node cluster (munged, slurmctld, slurmd) started on
localhost by tools/slurm_localhost.py. One DFT job is cancelled with scancel mid-run; the profile's
`retries` must resubmit it and the run must finish with every label present.

Needs root and Debian slurm-wlm + munge (+ libpmix-dev for srun-launched MPI), which `make test`
installs through tools/ensure_slurm.sh; elsewhere these tests skip, naming the reason.
"""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tiny_run import ROOT, n_snapshot_labels, planned_jobs, slurm_profile_config, snakemake

from dft2mlip.data import read_label


def on_slurm(test):
    """Marks of a test that needs the tiny run on the local SLURM."""
    return pytest.mark.slow(pytest.mark.workflow(pytest.mark.slurm(test)))


@pytest.fixture(scope="module")
def slurm_run(completed_tiny_run):
    if completed_tiny_run.executor != "slurm":
        pytest.skip(f"no local SLURM cluster: {completed_tiny_run.skip_reason}")
    return completed_tiny_run


def all_labels(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / "dft").glob("*/*/label.extxyz"))


@on_slurm
def test_every_job_went_through_sbatch_and_the_run_is_complete(slurm_run):
    log = slurm_run.log
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", log)
    assert len(submitted) >= 10, log[-3000:]
    # nothing but the target rule `all` (no output, no code) ran on the submit host
    assert set(re.findall(r"localrule (\w+):", log)) <= {"all"}

    workdir = slurm_run.workdir
    cfg = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    summary = (workdir / "results" / "report" / "summary.md").read_text()
    for run in cfg["training"]["runs"]:
        assert run in summary
    assert (workdir / "results" / "provenance.json").is_file()
    rerun = snakemake(workdir, "-n", *slurm_run.config_args)
    assert planned_jobs(rerun.stdout) == {}, rerun.stdout[-3000:]


@on_slurm
def test_a_job_cancelled_with_scancel_is_retried_and_nothing_is_lost(slurm_run):
    assert len(slurm_run.cancelled) == 1, "the canceller never saw a running DFT job"
    (jobid,) = slurm_run.cancelled
    workdir = slurm_run.workdir
    # SLURM's own log of the job says it was cancelled
    (job_log,) = (workdir / ".snakemake" / "slurm_logs").glob(f"**/{jobid}.log")
    assert re.search(rf"JOB {jobid} ON \S+ CANCELLED", job_log.read_text())
    # Snakemake saw the failure and resubmitted that job (profile `retries`)
    log = slurm_run.log
    uuid = re.search(rf"Job (\S+) has been submitted with SLURM jobid {jobid} ", log).group(1)
    failure = log[log.index(f"{jobid}.log (check log file") :]
    failure = failure[: failure.index(f"Trying to restart job {uuid}")]
    group, sid = re.search(r"results/dft/(\w+)/([\w.-]+)/label\.extxyz", failure).groups()
    submissions = re.findall(r"Job (\S+) has been submitted with SLURM jobid (\d+) ", log)
    attempts = [slurm_id for job, slurm_id in submissions if job == uuid]
    assert len(attempts) == 2 and attempts[0] == jobid, attempts  # cancelled, then resubmitted
    label = read_label(workdir / "results" / "dft" / group / sid / "label.extxyz")
    assert label.status == "ok"

    cfg = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    s = cfg["structures"]
    n_train = len(s["hydrostatic"]["strains"]) + sum(
        s[k]["count"] for k in ("strained", "rattled", "supercell")
    )
    n_md = n_snapshot_labels(cfg)
    labels = all_labels(workdir)
    n_family = 2  # the cross-family check (diamond Si: primitive and conventional cell)
    assert len(labels) == n_train + 12 + n_md + n_family
    statuses = {path.parent.name: read_label(path).status for path in labels}
    assert set(statuses.values()) == {"ok"}, statuses
    table = pd.read_parquet(workdir / "results" / "dataset" / "labels.parquet")
    assert len(table) == n_train and set(table["status"]) == {"ok"}
    assert table["settings_hash"].nunique() == 1


@on_slurm
def test_pw_x_ran_on_the_allocations_mpi_ranks(slurm_run):
    """dft_run is an MPI-path job (resources mpi + tasks): pw.x started by srun, 2 ranks."""
    workdir = slurm_run.workdir
    label_dirs = [p.parent for p in all_labels(workdir)]
    for directory in label_dirs[:5]:
        run_info = json.loads((directory / "run.json").read_text())
        command = run_info["command"]
        assert command[:3] == ["srun", "-n", "2"], command
        pw_out = (directory / "pw.out").read_text()
        assert re.search(r"running on\s+2 processors", pw_out), pw_out[:2000]


@on_slurm
def test_the_daemons_it_started_are_stopped(slurm_run):
    assert set(slurm_run.daemon_pids) == {"munged", "slurmctld", "slurmd"}
    for name, pid in slurm_run.daemon_pids.items():
        stat = Path(f"/proc/{pid}/stat")
        alive = stat.exists() and stat.read_text().split()[2] not in ("Z", "X")
        assert not alive, f"{name} (pid {pid}) is still running"
    conf = Path("/etc/slurm/slurm.conf")
    assert not (conf.exists() and "dft2mlip local test cluster" in conf.read_text())


def test_profile_keeps_mpi_rules_consistent():
    """Every rule the slurm profile runs on the MPI path has threads == tasks (ranks of pw.x),
    grouped rules share one `mpi` value, and the launcher inside an allocation is srun."""
    profile = slurm_profile_config()
    assert profile["executor"] == "slurm" and profile["retries"] >= 1
    resources = profile["set-resources"]
    mpi_rules = [rule for rule, res in resources.items() if "tasks" in res]
    assert "dft_run" in mpi_rules
    for rule in mpi_rules:
        assert resources[rule]["mpi"] == "srun"
        assert profile["set-threads"][rule] == resources[rule]["tasks"], rule
    groups = dict(entry.split("=") for entry in profile["groups"])
    for group in set(groups.values()):
        members = [rule for rule, g in groups.items() if g == group]
        assert len({resources.get(rule, {}).get("mpi") for rule in members}) == 1, members
    assert any("mpi_launcher: 'srun" in entry for entry in profile["config"])
    assert (ROOT / "profiles" / "default" / "config.yaml").is_file()


def test_workflow_profile_does_not_override_the_cluster_profile():
    """profiles/default is Snakemake's workflow profile: it is applied on top of --profile
    profiles/slurm key by key, so any key both set must agree (else the cluster run silently gets
    the workstation's value, e.g. retries 0)."""
    default = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    slurm = slurm_profile_config()
    clashes = {
        k: (default[k], slurm[k]) for k in default.keys() & slurm.keys() if default[k] != slurm[k]
    }
    assert not clashes, clashes
