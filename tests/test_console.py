"""What a user sees on the console, and what a dry run needs (issue 15, items 4 and 5).

- A failed job's cause is one console line (``dft2mlip: <rule> (<wildcards>): Type: message
  (full traceback: <log>)``); the traceback stays in the job's log. A DFT label whose status is not
  ``ok`` (the job succeeds) is one warning line naming the label and its status message.
- ``snakemake -n`` works without the DFT program on PATH; the jobs that start it check it first
  thing and fail with one line naming the program, the config key and the fix.
- ``snakemake dft_inputs`` (``make inputs``) never runs DFT, also with the convergence study on.
- Under ``CI=true``, a test skipped because a real component is missing fails (tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from tiny_run import ROOT, TINY, make_workdir, planned_jobs, snakemake

from dft2mlip.checks import check_executable
from dft2mlip.config import check_config, validate_config
from dft2mlip.logutil import job_name, one_line, uncaught_line

MISSING = "pw-nowhere.x"
SID = "hydro-000"


def tiny_config(**dft_updates) -> dict:
    """The tiny test config with ``dft`` keys updated (one level deep)."""
    cfg = yaml.safe_load(TINY.read_text())
    for key, value in dft_updates.items():
        if isinstance(value, dict):
            cfg["dft"].setdefault(key, {}).update(value)
        else:
            cfg["dft"][key] = value
    return cfg


def workdir_with(tmp_path: Path, cfg: dict) -> Path:
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return make_workdir(tmp_path / "w", tmp_path / "cfg.yaml")


# ---- logutil: one console line per failure or warning, the traceback in the log


class FakeJob:
    rule = "dft_run"
    wildcards = {"group": "train", "sid": "x"}


def test_job_name_and_one_line():
    assert job_name(FakeJob()) == "dft_run (group=train, sid=x)"
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 5000)) == 600
    line = uncaught_line("dft_run (sid=x)", ValueError("bad\nvalue"), "logs/x.log")
    assert line == "dft2mlip: dft_run (sid=x): ValueError: bad value (full traceback: logs/x.log)"


def test_uncaught_exception_is_one_console_line_and_a_traceback_in_the_log(tmp_path):
    log = tmp_path / "job.log"
    script = textwrap.dedent(
        f"""
        from dft2mlip.logutil import log_to

        class Job:
            rule = "dft_run"
            wildcards = {{"group": "train", "sid": "x"}}

        log_to({str(tmp_path / "first.log")!r}, Job())
        log = log_to({str(log)!r}, Job())  # a second call adds no second console handler
        log.info("only in the log")
        log.warning("label x: status failed: SCF did not converge")

        def inner():
            raise RuntimeError("pw.x crashed\\nsecond line")

        inner()
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines == [
        "dft2mlip: dft_run (group=train, sid=x): label x: status failed: SCF did not converge",
        "dft2mlip: dft_run (group=train, sid=x): RuntimeError: pw.x crashed second line "
        f"(full traceback: {log})",
    ], proc.stderr
    text = log.read_text()
    assert "only in the log" in text and "Traceback (most recent call last)" in text
    assert "in inner" in text and "second line" in text


# ---- the DFT program: not at DAG time, first thing in the job


def test_config_check_does_not_need_the_dft_program(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for cfg in (
        tiny_config(qe={"executable": MISSING}),
        tiny_config(engine="vasp", vasp={"executable": "vasp_nowhere"}),
    ):
        validate_config(cfg)
        check_config(cfg)  # no error: the job checks it where it runs


@pytest.mark.parametrize(
    ("dft", "nprocs", "needles"),
    [
        (
            {"engine": "qe", "qe": {"executable": MISSING}, "mpi_launcher": ""},
            1,
            ["config key 'dft.qe.executable' = 'pw-nowhere.x'", "not found on PATH on",
             "where this job runs", "install Quantum ESPRESSO", "full path"],
        ),
        (
            {"engine": "vasp", "vasp": {"executable": "vasp_nowhere -x"}, "mpi_launcher": ""},
            1,
            ["config key 'dft.vasp.executable' = 'vasp_nowhere -x'", "'vasp_nowhere'",
             "load the VASP module", "full path"],
        ),
        (
            {"engine": "qe", "qe": {"executable": sys.executable},
             "mpi_launcher": "mpirun-nowhere -np {nprocs}"},
            2,
            ["config key 'dft.mpi_launcher' = 'mpirun-nowhere -np {nprocs}'", "'mpirun-nowhere'",
             "load its module", "set dft.mpi_launcher to '' to run serially"],
        ),
    ],
    ids=["pw-x", "vasp", "launcher"],
)  # fmt: skip
def test_missing_program_is_one_clear_line(dft, nprocs, needles):
    with pytest.raises(FileNotFoundError) as err:
        check_executable(dft, nprocs)
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_launcher_is_not_needed_for_a_serial_run():
    dft = {"engine": "qe", "qe": {"executable": sys.executable}, "mpi_launcher": "nowhere {nprocs}"}
    check_executable(dft, 1)


def test_the_scripts_that_start_dft_check_the_program_first():
    for name in ("run_dft", "convergence_point", "elastic_dft_relax", "relax_reference"):
        head = (ROOT / "scripts" / f"{name}.py").read_text().split("\nimport ")[0]
        assert 'check_executable(snakemake.config["dft"], snakemake.threads)' in head, name


@pytest.mark.workflow
def test_dry_run_without_the_dft_program(tmp_path):
    work = workdir_with(tmp_path, tiny_config(qe={"executable": MISSING}))
    proc = snakemake(work, "-n")
    assert planned_jobs(proc.stdout)["dft_run"] > 0, proc.stdout[-2000:]
    assert not (work / "results").exists()


@pytest.mark.workflow
@pytest.mark.parametrize("study", [False, True], ids=["no-study", "study-on"])
def test_dft_inputs_never_plans_dft(tmp_path, study):
    work = workdir_with(tmp_path, tiny_config(convergence={"enabled": study}))
    jobs = planned_jobs(snakemake(work, "-n", "dft_inputs").stdout)
    never = {"dft_run", "convergence_point", "convergence_select", "relax_reference"}
    assert not never & set(jobs), jobs
    if not study:  # the labels' cells come from the relaxation: only its input
        assert jobs == {"relax_input": 1, "dft_inputs": 1}
        cfg = tiny_config()
        cfg["material"]["relax"] = False  # then every label input is known
        (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
        jobs = planned_jobs(snakemake(work, "-n", "dft_inputs").stdout)
        assert jobs["dft_input"] == 21 and not never & set(jobs), jobs
        return
    assert jobs == {"convergence_inputs": 1, "dft_inputs": 1}
    # and for real (cheap: no DFT), with a DFT program that does not exist
    cfg = tiny_config(convergence={"enabled": True}, qe={"executable": MISSING})
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "dft_inputs", cores=1)
    inputs = work / "results" / "convergence" / "inputs"
    assert len(list(inputs.glob("c*_k*/[AB]/pw.in"))) == 2 * len(list(inputs.glob("c*_k*"))) > 0
    assert not list((work / "results").rglob("pw.out"))
    assert "dft2mlip: convergence_inputs: dft.convergence.enabled: wrote only the study's" in (
        proc.stdout + proc.stderr
    )


# ---- a real run: the cause of a failed job, and a failed label, on snakemake's console


@pytest.fixture
def si_pseudo_installed():
    from conftest import SI_PSEUDO, TINY_QE

    from dft2mlip.dft.settings import QESettings

    if not (QESettings.from_config(TINY_QE).pseudo_path / SI_PSEUDO).is_file():
        pytest.skip(f"{SI_PSEUDO} pseudopotential not installed (Debian quantum-espresso-data)")


@pytest.mark.slow
@pytest.mark.workflow
def test_console_shows_the_cause_of_a_failed_job_and_a_failed_label(tmp_path, si_pseudo_installed):
    target = f"results/dft/train/{SID}/label.extxyz"
    work = workdir_with(tmp_path, tiny_config(qe={"executable": MISSING}))
    # the first DFT job is the reference cell's relaxation (material.relax): it says the same
    proc = snakemake(work, target, cores=1, check=False)
    (line,) = [x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("dft2mlip: ")]
    relax = "dft2mlip: relax_reference: "
    assert line.startswith(f"{relax}FileNotFoundError: config key 'dft.qe.executable'"), line
    cfg = tiny_config(qe={"executable": MISSING})
    cfg["material"]["relax"] = False  # the label's own job from here on
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, target, cores=1, check=False)
    console = proc.stdout + proc.stderr
    assert proc.returncode != 0, console[-3000:]
    log = f"logs/dft_run/train/{SID}.log"
    expected = (
        f"dft2mlip: dft_run (group=train, sid={SID}): FileNotFoundError: config key "
        f"'dft.qe.executable' = '{MISSING}': the program '{MISSING}' is not found on PATH"
    )
    (line,) = [x for x in console.splitlines() if x.startswith("dft2mlip: ")]
    assert line.startswith(expected) and line.endswith(f"(full traceback: {log})"), console
    assert "Traceback (most recent call last)" in (work / log).read_text()

    # a program that runs but fails: the job succeeds, the label's status is one console line
    fake = tmp_path / "fake-pw.x"
    fake.write_text("#!/bin/sh\necho 'fake pw.x: crashed on purpose' >&2\nexit 1\n")
    fake.chmod(0o755)
    cfg = tiny_config(qe={"executable": str(fake)}, max_errors=1)
    cfg["material"]["relax"] = False
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, target, cores=1)
    console = proc.stdout + proc.stderr
    # (the library's own warnings, here custodian giving up, are console lines too)
    prefix = f"dft2mlip: dft_run (group=train, sid={SID}): label {SID}: status "
    (warned,) = [x for x in console.splitlines() if x.startswith(prefix)]
    assert warned.startswith(prefix + "failed: ") and "crashed on purpose" in warned, warned

    # a relaxation that fails: recorded with pw.x's cause, and the structures job refuses to
    # build on it, saying why on the console (never an unrelaxed cell in its place)
    cfg["material"]["relax"] = True
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "results/structures/train.extxyz", cores=1, check=False)
    lines = [x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("dft2mlip: ")]
    failed = [x for x in lines if x.startswith(f"{relax}reference relaxation failed: ")]
    assert proc.returncode != 0 and len(failed) == 1, lines
    assert "crashed on purpose" in failed[0], failed
    why = "dft2mlip: structures: RuntimeError: the DFT relaxation of the reference cell failed"
    refused = [x for x in lines if x.startswith(why)]
    assert len(refused) == 1 and "crashed on purpose" in refused[0], lines
    assert "material.relax: false" in refused[0], refused
    assert not (work / "results" / "structures" / "train.extxyz").exists()


# ---- CI: a missing real component fails the run instead of skipping


def run_pytest_on(tmp_path: Path, body: str, ci: bool) -> subprocess.CompletedProcess:
    """Run pytest on one test file with tests/conftest.py as a plugin and PATH without pw.x."""
    (tmp_path / "test_probe.py").write_text(textwrap.dedent(body))
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    paths = [str(ROOT / "tests"), str(ROOT / "src"), env.get("PYTHONPATH", "")]
    env.update(PATH=str(empty_bin), PYTHONPATH=os.pathsep.join(paths))
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p", "no:cacheprovider",
         str(tmp_path / "test_probe.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip


NEEDS_PW = """
def test_needs_pw(pw_x):
    pass
"""
OTHER_SKIP = """
import pytest

def test_needs_sys():
    pytest.skip("needs /sys")
"""


def test_missing_pw_x_skips_locally_with_the_reason(tmp_path):
    proc = run_pytest_on(tmp_path, NEEDS_PW, ci=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "SKIPPED" in proc.stdout and "pw.x not installed" in proc.stdout, proc.stdout


def test_missing_pw_x_fails_in_ci_with_the_reason(tmp_path):
    proc = run_pytest_on(tmp_path, NEEDS_PW, ci=True)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "1 error" in proc.stdout or "1 failed" in proc.stdout, proc.stdout
    assert "CI=true: this test needs a real component" in proc.stdout
    assert "pw.x not installed" in proc.stdout


def test_other_skips_stay_skips_in_ci(tmp_path):
    proc = run_pytest_on(tmp_path, OTHER_SKIP, ci=True)
    assert proc.returncode == 0 and "needs /sys" in proc.stdout, proc.stdout
