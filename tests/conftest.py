"""Shared fixtures (the Si material, cheap-but-real pw.x settings, a pw.x availability guard) and
the rule that a test needing a real component may skip locally but never in CI.

Locally, a test that needs pw.x, the Si pseudopotential or a one-node SLURM skips when the component
is missing, and the reason is printed (``-rs`` is always on). Under ``CI=true`` such a skip is a
failure naming the reason: CI must not go green without the real components. Other skips (e.g. a
host without /sys) stay skips.
"""

import os
import re
import shutil

import numpy as np
import pytest

from dft2mlip.dft.settings import QESettings
from dft2mlip.structures import apply_voigt_strain, primitive_cell

SI_MATERIAL = {
    "name": "Si",
    "prototype": "diamond",
    "elements": ["Si"],
    "lattice_constant_A": 5.431,
}
SI_PSEUDO = "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"
#: skip reasons that mean a real component is missing (pw.x, the Si pseudopotential, SLURM): the
#: guards below, tests/test_faults.py, tests/test_elastic_dft.py and tests/test_slurm.py
REAL_COMPONENT_SKIP = re.compile(r"pw\.x|pseudopotential|slurm", re.IGNORECASE)
#: cheap pw.x settings for tests: 20 Ry, 8x density cutoff, 4x4x4 k for the 2-atom cell
TINY_QE = {
    "pseudopotentials": {"Si": SI_PSEUDO},
    "ecutwfc_Ry": 20.0,
    "ecutrho_Ry": 160.0,
    "kspacing_per_A": 0.6,
    "occupations": "smearing",
    "smearing": "mv",
    "degauss_Ry": 0.01,
    "conv_thr_Ry": 1e-8,
    "electron_maxstep": 100,
    "mixing_beta": 0.7,
}


def fixture_structure():
    """Strained (with shear), displaced 2-atom Si of the committed pw.x fixtures (tests/data/qe):
    nonzero forces and off-diagonal stress."""
    voigt = np.array([0.01, -0.005, 0.002, 0.004, -0.003, 0.006])
    atoms = apply_voigt_strain(primitive_cell(SI_MATERIAL), voigt)
    atoms.positions[1] += [0.03, -0.02, 0.01]
    atoms.info.update(structure_id="fixture-si2", config_type="strained", voigt_strain=voigt)
    return atoms


@pytest.fixture
def si_material() -> dict:
    """``config["material"]`` of diamond Si."""
    return dict(SI_MATERIAL)


@pytest.fixture
def tiny_qe_settings() -> QESettings:
    """Cheap QE settings; skips when the Si pseudopotential is not installed."""
    settings = QESettings.from_config(TINY_QE)
    if not (settings.pseudo_path / SI_PSEUDO).is_file():
        pytest.skip(f"{SI_PSEUDO} not in {settings.pseudo_path} (Debian quantum-espresso-data)")
    return settings


@pytest.fixture
def pw_x() -> str:
    """Path of pw.x; skips the test when Quantum ESPRESSO is not installed."""
    path = shutil.which("pw.x")
    if path is None:
        pytest.skip("pw.x not installed (Debian quantum-espresso, conda-forge qe)")
    return path


@pytest.fixture(scope="session")
def completed_tiny_run(tmp_path_factory):
    """One complete run of tests/workflow/config_tiny.yaml, shared by test_slurm.py and
    test_reproducibility.py: through a real one-node SLURM (profiles/slurm, one DFT job cancelled
    with scancel on the way) where one can be started, else locally. See tests/tiny_run.py."""
    if shutil.which("pw.x") is None:
        pytest.skip("pw.x not installed (Debian quantum-espresso, conda-forge qe)")
    from tiny_run import complete_tiny_run

    return complete_tiny_run(tmp_path_factory.mktemp("tiny_run"))


def in_ci(environ=None) -> bool:
    """Whether the tests run in CI (``CI=true``, as GitHub Actions, GitLab CI and .ci/run set)."""
    return (os.environ if environ is None else environ).get("CI", "").lower() in ("true", "1")


def skip_reason(report: pytest.TestReport) -> str:
    """The reason of a skipped test's report (``longrepr`` is ``(path, line, "Skipped: why")``)."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_configure(config: pytest.Config) -> None:
    """Always report the reason of every skip (as ``-rs``), so a missing component is visible."""
    chars = config.option.reportchars or ""
    if "N" not in chars and "s" not in chars and "a" not in chars and "A" not in chars:
        config.option.reportchars = chars + "s"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under CI=true, a skip because a real component is missing becomes a failure."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and in_ci():
        reason = skip_reason(report)
        if REAL_COMPONENT_SKIP.search(reason):
            report.outcome = "failed"
            report.longrepr = (
                f"CI=true: this test needs a real component and would have been skipped: "
                f"{reason}. Install it (make test runs tools/ensure_pw.sh and "
                "tools/ensure_slurm.sh) or run without CI=true to skip locally."
            )
    return report
