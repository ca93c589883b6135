"""Error recovery under custodian: SCF not converged, killed runs, walltime, and the guard that
refuses any correction that would change the physics of a label.

QE tests run real pw.x (2-atom Si, cheap settings); VASP tests use the stand-in executable
(tests/vasp_standin/vasp_std: NOT VASP, EMT values in VASP's formats; VASP is licensed).
"""

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from conftest import TINY_QE, fixture_structure
from custodian.custodian import ErrorHandler
from pymatgen.io.vasp import Incar

from dft2mlip.dft.execute import run_pw_custodian, run_vasp_custodian
from dft2mlip.dft.handlers import PhysicsGuard, PwCrashHandler, PwScfHandler, VaspScfHandler
from dft2mlip.dft.labels import STANDIN_ENV, parse_run, run_input, write_input
from dft2mlip.dft.qe import parse_pw_output, write_pw_input
from dft2mlip.dft.settings import QESettings
from dft2mlip.dft.vasp import VaspSettings, parse_vasp_output, write_vasp_input
from dft2mlip.units import EV_PER_A3_TO_GPA

STANDIN = Path(__file__).parent / "vasp_standin" / "vasp_std"
STANDIN_CMD = f"{sys.executable} {STANDIN}"
TINY_VASP = {"executable": STANDIN_CMD, "encut_eV": 400.0, "kspacing_per_A": 0.3}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    from pymatgen.core import SETTINGS

    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.delitem(SETTINGS, "PMG_VASP_PSP_DIR", raising=False)
    for key in ("VASP_STANDIN_SCF_STEPS", "VASP_STANDIN_CRASH_ONCE"):
        monkeypatch.delenv(key, raising=False)


def executable_script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def al_cell():
    from ase.build import bulk

    atoms = bulk("Al", "fcc", a=3.95).repeat((2, 1, 1))
    atoms.positions[1] += [0.04, 0.0, -0.02]
    atoms.info.update(structure_id="al", config_type="test")
    return atoms


# --------------------------------------------------------------------------- QE: handlers


def test_pw_scf_handler_changes_only_mixing_and_steps(tmp_path, tiny_qe_settings):
    settings = QESettings.from_config({**TINY_QE, "electron_maxstep": 7, "mixing_beta": 0.4})
    write_pw_input(fixture_structure(), settings, tmp_path / "pw.in")
    before = (tmp_path / "pw.in").read_text().splitlines()
    (tmp_path / "pw.out").write_text(
        "     convergence NOT achieved after   7 iterations: stopping\n"
    )
    handler = PwScfHandler()
    assert handler.check(str(tmp_path))
    result = handler.correct(str(tmp_path))
    assert result["actions"][0]["action"]["_set"] == {"mixing_beta": 0.2, "electron_maxstep": 14}
    after = (tmp_path / "pw.in").read_text().splitlines()
    changed = {a.split("=")[0].strip() for a, b in zip(after, before, strict=True) if a != b}
    assert changed == {"mixing_beta", "electron_maxstep"}
    # the settings hash ignores exactly these two: recovery cannot change it
    assert (
        QESettings.from_config({**TINY_QE, "electron_maxstep": 14, "mixing_beta": 0.2})
        .settings_hash() == settings.settings_hash()
    )  # fmt: skip
    assert (tmp_path / "pw.out.scf_not_converged.1").is_file()


def test_pw_scf_handler_gives_up_at_its_limits(tmp_path, tiny_qe_settings):
    settings = QESettings.from_config({**TINY_QE, "electron_maxstep": 1000, "mixing_beta": 0.05})
    write_pw_input(fixture_structure(), settings, tmp_path / "pw.in")
    (tmp_path / "pw.out").write_text("convergence NOT achieved after 1000 iterations\n")
    assert PwScfHandler().correct(str(tmp_path))["actions"] is None


def test_pw_crash_handler_only_fires_on_incomplete_output(tmp_path):
    handler = PwCrashHandler()
    (tmp_path / "pw.out").write_text("     Program PWSCF v.6.7 starts\n     iteration #  3\n")
    assert handler.check(str(tmp_path))
    (tmp_path / "pw.out").write_text("...\n   JOB DONE.\n")
    assert not handler.check(str(tmp_path))
    (tmp_path / "pw.out").write_text(
        " %%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n"
        "     Error in routine readpp (1):\n     file not found\n"
        " %%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n"
    )
    assert not handler.check(str(tmp_path))  # a pw.x error is not fixed by a restart


# --------------------------------------------------------------------------- QE: real pw.x


@pytest.mark.slow
def test_unconverged_pw_scf_recovers_and_correction_is_in_provenance(
    tmp_path, pw_x, tiny_qe_settings
):
    qe = {**TINY_QE, "electron_maxstep": 3}
    atoms = fixture_structure()
    record = write_input("qe", qe, atoms, tmp_path, tmp_path / "settings.json")
    run = run_input("qe", tmp_path, executable="pw.x", mpi_launcher="", max_errors=4)
    assert run["custodian_error"] is None and run["n_corrections"] >= 1
    first = run["corrections"][0]
    assert first["handler"] == "PwScfHandler" and first["errors"] == ["scf_not_converged"]
    assert first["actions"][0]["action"]["_set"]["electron_maxstep"] == 6
    label = parse_run("qe", qe, tmp_path, atoms, tmp_path / "settings.json", run)
    assert label.status == "ok", label.message
    assert label.settings_hash == record["settings_hash"]  # recovery did not change the physics
    assert label.provenance["corrections"][0]["handler"] == "PwScfHandler"
    # the recovered label equals a run that converged without help (same physics)
    reference = QESettings.from_config(TINY_QE)
    write_pw_input(atoms, reference, tmp_path / "ref" / "pw.in")
    run_pw_custodian(tmp_path / "ref" / "pw.in", mpi_launcher="")
    ref = parse_pw_output(tmp_path / "ref" / "pw.out", atoms, "h", settings=reference)
    # equal within what conv_thr 1e-8 Ry allows, far below the 0.1 GPa stress tolerance
    assert label.energy == pytest.approx(ref.energy, abs=1e-5)
    assert abs(label.stress - ref.stress).max() * EV_PER_A3_TO_GPA < 0.005


@pytest.mark.slow
def test_unrecoverable_scf_keeps_status_and_records_corrections(tmp_path, pw_x, tiny_qe_settings):
    qe = {**TINY_QE, "electron_maxstep": 1}
    atoms = fixture_structure()
    write_input("qe", qe, atoms, tmp_path, tmp_path / "settings.json")
    run = run_input("qe", tmp_path, executable="pw.x", mpi_launcher="", max_errors=1)
    assert run["custodian_error"] and "Max errors" in run["custodian_error"]
    assert run["n_corrections"] == 1
    label = parse_run("qe", qe, tmp_path, atoms, tmp_path / "settings.json", run)
    assert label.status == "scf_not_converged"
    assert label.provenance["corrections"][0]["errors"] == ["scf_not_converged"]


@pytest.mark.slow
def test_killed_pw_x_is_restarted(tmp_path, pw_x, tiny_qe_settings):
    marker = tmp_path / "killed-once"
    wrapper = executable_script(
        tmp_path / "pw-killed-once.sh",
        "#!/bin/bash\n"
        f'if [ ! -e "{marker}" ]; then\n'
        f'  touch "{marker}"; "{pw_x}" "$@" & pid=$!\n'
        "  sleep 0.3; kill -9 $pid; wait $pid; exit 137\n"
        "fi\n"
        f'exec "{pw_x}" "$@"\n',
    )
    atoms = fixture_structure()
    write_input("qe", TINY_QE, atoms, tmp_path / "run", tmp_path / "settings.json")
    run = run_input("qe", tmp_path / "run", executable=wrapper, mpi_launcher="", max_errors=2)
    assert marker.exists()
    assert [c["handler"] for c in run["corrections"]] == ["PwCrashHandler"]
    assert run["corrections"][0]["errors"] == ["killed_or_crashed"]
    killed = (tmp_path / "run" / run["corrections"][0]["actions"][0]["kept_output"]).read_text()
    assert "JOB DONE" not in killed
    label = parse_run("qe", TINY_QE, tmp_path / "run", atoms, tmp_path / "settings.json", run)
    assert label.status == "ok"


def test_walltime_stops_the_run_and_the_label_fails(tmp_path, tiny_qe_settings):
    slow = executable_script(
        tmp_path / "slow-pw.sh", "#!/bin/bash\necho '     Program PWSCF v.6.7 starts'\nsleep 60\n"
    )
    atoms = fixture_structure()
    write_input("qe", TINY_QE, atoms, tmp_path / "run", tmp_path / "settings.json")
    run = run_pw_custodian(
        tmp_path / "run" / "pw.in", executable=slow, mpi_launcher="", walltime_s=1.0,
        polling_s=0.1, monitor_s=0.2,
    )  # fmt: skip
    assert run["walltime_reached"] and run["wall_time_s"] < 20
    assert [c["handler"] for c in run["corrections"]] == ["PwWalltimeHandler"]
    label = parse_run("qe", TINY_QE, tmp_path / "run", atoms, tmp_path / "settings.json", run)
    assert label.status == "failed" and "walltime" in label.message


# --------------------------------------------------------------------------- VASP (stand-in)


def test_vasp_unconverged_scf_recovers_without_touching_algo(tmp_path, monkeypatch):
    monkeypatch.setenv("VASP_STANDIN_SCF_STEPS", "12")
    monkeypatch.setenv(STANDIN_ENV, "1")
    cfg = {**TINY_VASP, "nelm": 8}
    atoms = al_cell()
    record = write_input("vasp", cfg, atoms, tmp_path, tmp_path / "settings.json")
    algo = Incar.from_file(tmp_path / "INCAR")["ALGO"]
    run = run_input("vasp", tmp_path, executable=STANDIN_CMD, mpi_launcher="", max_errors=3)
    assert [c["handler"] for c in run["corrections"]] == ["VaspScfHandler"]
    incar = Incar.from_file(tmp_path / "INCAR")
    assert incar["NELM"] == 16 and incar["AMIX"] == pytest.approx(0.2)
    assert incar["ALGO"] == algo and incar["ISMEAR"] == 0 and incar["ENCUT"] == 400
    label = parse_run("vasp", cfg, tmp_path, atoms, tmp_path / "settings.json", run)
    assert label.status == "ok" and label.settings_hash == record["settings_hash"]
    assert label.provenance["corrections"][0]["actions"][0]["action"]["_set"]["NELM"] == 16


def test_vasp_unrecoverable_scf_is_kept_as_not_converged(tmp_path, monkeypatch):
    monkeypatch.setenv("VASP_STANDIN_SCF_STEPS", "100")
    atoms = al_cell()
    settings = VaspSettings.from_config({**TINY_VASP, "nelm": 5})
    write_vasp_input(atoms, settings, tmp_path)
    run = run_vasp_custodian(tmp_path, executable=STANDIN_CMD, mpi_launcher="", max_errors=2,
                             allow_potcar_spec=True, polling_s=0.1)  # fmt: skip
    assert run["n_corrections"] == 2 and run["custodian_error"]
    label = parse_vasp_output(tmp_path, atoms, "h")
    assert label.status == "scf_not_converged"


def test_killed_vasp_is_restarted(tmp_path, monkeypatch):
    monkeypatch.setenv("VASP_STANDIN_CRASH_ONCE", str(tmp_path / "marker"))
    atoms = al_cell()
    write_vasp_input(atoms, VaspSettings.from_config(TINY_VASP), tmp_path / "run")
    run = run_vasp_custodian(tmp_path / "run", executable=STANDIN_CMD, mpi_launcher="",
                             allow_potcar_spec=True, polling_s=0.1)  # fmt: skip
    assert [c["handler"] for c in run["corrections"]] == ["VaspRestartHandler"]
    assert parse_vasp_output(tmp_path / "run", atoms, "h").status == "ok"


class _Rewrites(ErrorHandler):
    """A handler that 'fixes' a run by rewriting INCAR tags (like many custodian handlers)."""

    is_monitor = False

    def __init__(self, changes):
        self.changes = changes

    def check(self, directory="./"):
        return True

    def correct(self, directory="./"):
        incar = Incar.from_file(os.path.join(directory, "INCAR"))
        incar.update(self.changes)
        incar.write_file(os.path.join(directory, "INCAR"))
        return {
            "errors": ["something"],
            "actions": [{"dict": "INCAR", "action": {"_set": self.changes}}],
        }


@pytest.mark.parametrize(
    "changes", [{"ALGO": "All"}, {"ISMEAR": -5}, {"ENCUT": 600}, {"PREC": "Normal"}]
)
def test_guard_refuses_physics_changes_and_restores_the_input(tmp_path, changes):
    write_vasp_input(al_cell(), VaspSettings.from_config(TINY_VASP), tmp_path)
    before = (tmp_path / "INCAR").read_text()
    result = PhysicsGuard(_Rewrites(changes)).correct(str(tmp_path))
    assert result["actions"] is None and result["skipped"]  # not applied, not retried
    assert any("refused" in e and next(iter(changes)) in e for e in result["errors"])
    assert (tmp_path / "INCAR").read_text() == before


def test_guard_lets_scf_and_parallelisation_changes_through(tmp_path):
    write_vasp_input(al_cell(), VaspSettings.from_config(TINY_VASP), tmp_path)
    result = PhysicsGuard(_Rewrites({"NCORE": 4, "AMIX": 0.1, "NELM": 300})).correct(str(tmp_path))
    assert result["actions"] and result["guarded"] == "_Rewrites"
    assert Incar.from_file(tmp_path / "INCAR")["NCORE"] == 4


def test_vasp_scf_handler_changes_only_non_physics_tags(tmp_path):
    from dft2mlip.dft.vasp import NON_PHYSICS_INCAR

    write_vasp_input(al_cell(), VaspSettings.from_config({**TINY_VASP, "nelm": 10}), tmp_path)
    before = Incar.from_file(tmp_path / "INCAR")
    (tmp_path / "OUTCAR").write_text("General timing and accounting informations\n")
    handler = VaspScfHandler()
    assert handler.check(str(tmp_path))
    handler.correct(str(tmp_path))
    after = Incar.from_file(tmp_path / "INCAR")
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed == {"NELM", "AMIX"} and changed <= NON_PHYSICS_INCAR
    assert json.loads(json.dumps(after.as_dict()))["NELM"] == 20


def test_refused_correction_is_recorded_and_the_parser_decides(tmp_path, monkeypatch):
    """A custodian handler that wants ALGO changed on a converged run: refused, recorded,
    not retried; the label is still ok because the run converged with the given physics."""
    from custodian import Custodian
    from custodian.vasp.jobs import VaspJob

    from dft2mlip.dft.execute import _corrections

    atoms = al_cell()
    write_vasp_input(atoms, VaspSettings.from_config(TINY_VASP), tmp_path)
    job = VaspJob(STANDIN_CMD.split(), auto_npar=False, auto_gamma=False)
    custodian = Custodian([PhysicsGuard(_Rewrites({"ALGO": "All"}))], [job], max_errors=1,
                          polling_time_step=0.1, directory=str(tmp_path))  # fmt: skip
    custodian.run()
    record = _corrections(custodian.run_log)
    assert len(record) == 1 and record[0]["skipped"] and record[0]["actions"] is None
    assert "refused" in record[0]["errors"][-1] and record[0]["refused_actions"]
    assert Incar.from_file(tmp_path / "INCAR")["ALGO"] == "Normal"
    assert parse_vasp_output(tmp_path, atoms, "h").status == "ok"
