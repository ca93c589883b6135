"""custodian jobs and error handlers that never change the physics of a label.

What a handler may change (none of it enters the settings hash): the number of SCF steps
(pw.x ``electron_maxstep``, VASP ``NELM``), the mixing (pw.x ``mixing_beta``, VASP ``AMIX``/
``BMIX``), parallelisation tags, and it may restart a killed run. What it may NOT change:
cutoffs, k-points, smearing, functional, PREC, ALGO, POTCARs/pseudopotentials, the structure.
A label that would need such a change fails instead, with the reason recorded.

Quantum ESPRESSO (our own handlers, custodian has none for pw.x):

- :class:`PwScfHandler` -- "convergence NOT achieved": ``mixing_beta`` x ``beta_factor``
  (not below ``min_beta``) and ``electron_maxstep`` x 2 (not above ``max_steps``), rerun.
- :class:`PwCrashHandler` -- output without "JOB DONE" and without a pw.x error block
  (killed, node failure, out of memory): rerun unchanged.
- :class:`PwWalltimeHandler` -- monitor: stop the run ``buffer_s`` before ``walltime_s``;
  unrecoverable, the label fails with "walltime".

VASP (see :func:`vasp_handlers`):

- :class:`VaspScfHandler` -- NELM reached: ``NELM`` x 2, ``AMIX`` x 0.5; ALGO is untouched.
- :class:`VaspRestartHandler` -- OUTCAR without the timing block: rerun unchanged.
- :class:`PhysicsGuard` around custodian's ``VaspErrorHandler`` (checked after the run): its
  correction is applied only if it changes no physics tag of the INCAR (anything outside
  :data:`dft2mlip.dft.vasp.NON_PHYSICS_INCAR`) and no KPOINTS/POSCAR/POTCAR; otherwise the
  files are restored, the refusal is recorded ("refused: ...") and the run is not retried:
  the parser's verdict stands (a run that did not converge is not an ok label).
- custodian's ``WalltimeHandler`` when a walltime is configured.
- Validator: custodian's ``VasprunXMLValidator``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from custodian.custodian import ErrorHandler, Job

from dft2mlip.dft.run import pw_command, pw_environment

_NOT_CONVERGED = re.compile(r"convergence NOT achieved")
_ERROR_BLOCK = re.compile(r"%{20,}\s*\n\s*Error in routine")
WALLTIME_MARKER = ".dft2mlip_walltime"


def _keep_copy(directory: Path, name: str, tag: str) -> str | None:
    """Copy ``name`` to ``name.<tag>.<n>`` (first free n); return the copy's name.

    None when ``name`` does not exist: a run killed before it wrote that output leaves nothing
    to keep, and the correction records ``kept_output: None``.
    """
    source = directory / name
    if not source.is_file():
        return None
    n = 1
    while (directory / f"{name}.{tag}.{n}").exists():
        n += 1
    target = f"{name}.{tag}.{n}"
    shutil.copy2(source, directory / target)
    return target


def _kill_group(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    for sig, grace in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


# --------------------------------------------------------------------------- Quantum ESPRESSO


class PwJob(Job):
    """pw.x on one input, in the input's directory; stdout to ``output``, stderr beside it."""

    def __init__(
        self,
        input_name: str = "pw.in",
        output_name: str = "pw.out",
        executable: str = "pw.x",
        nprocs: int = 1,
        mpi_launcher: str | None = "mpirun -np {nprocs}",
    ) -> None:
        self.input_name = input_name
        self.output_name = output_name
        self.executable = executable
        self.nprocs = int(nprocs)
        self.mpi_launcher = mpi_launcher
        self._process: subprocess.Popen | None = None
        self.command = pw_command(
            input_name, executable=executable, nprocs=self.nprocs, mpi_launcher=mpi_launcher
        )

    @property
    def name(self) -> str:
        return "pw.x"

    def setup(self, directory: str = "./") -> None:
        """Back the original input up once (``<input>.orig``)."""
        original = Path(directory) / f"{self.input_name}.orig"
        if not original.exists():
            shutil.copy2(Path(directory) / self.input_name, original)

    def run(self, directory: str = "./") -> subprocess.Popen:
        """Start pw.x in its own process group (a terminate reaches every MPI rank)."""
        directory = Path(directory)
        with (
            open(directory / self.output_name, "w") as out,
            open(directory / f"{self.output_name}.stderr", "w") as err,
        ):
            self._process = subprocess.Popen(
                self.command,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=pw_environment(self.command),
                start_new_session=True,
            )
        return self._process

    def postprocess(self, directory: str = "./") -> None:
        """Nothing to do: the parser reads ``pw.out`` where it is."""

    def terminate(self, directory: str = "./") -> None:
        """SIGTERM, then SIGKILL, the whole process group."""
        if self._process is not None and self._process.poll() is None:
            _kill_group(self._process)


def _set_namelist_value(text: str, key: str, value: str) -> str:
    pattern = re.compile(rf"(?im)^(\s*{key}\s*=\s*)([^,\n]+)")
    if pattern.search(text):
        return pattern.sub(lambda m: m.group(1) + value, text, count=1)
    electrons = re.compile(r"(?im)^(\s*&ELECTRONS\s*\n)")
    if not electrons.search(text):
        raise ValueError(f"no &ELECTRONS namelist to put {key} in")
    return electrons.sub(lambda m: f"{m.group(1)}   {key} = {value}\n", text, count=1)


def _get_namelist_value(text: str, key: str) -> str | None:
    m = re.search(rf"(?im)^\s*{key}\s*=\s*([^,\n]+)", text)
    return m.group(1).strip() if m else None


class PwScfHandler(ErrorHandler):
    """SCF not converged: lower ``mixing_beta``, raise ``electron_maxstep``, rerun."""

    is_monitor = False

    def __init__(
        self,
        input_name: str = "pw.in",
        output_name: str = "pw.out",
        beta_factor: float = 0.5,
        min_beta: float = 0.05,
        max_steps: int = 1000,
    ) -> None:
        self.input_name = input_name
        self.output_name = output_name
        self.beta_factor = float(beta_factor)
        self.min_beta = float(min_beta)
        self.max_steps = int(max_steps)

    def check(self, directory: str = "./") -> bool:
        out = Path(directory) / self.output_name
        return out.is_file() and bool(_NOT_CONVERGED.search(out.read_text(errors="replace")))

    def correct(self, directory: str = "./") -> dict:
        directory = Path(directory)
        text = (directory / self.input_name).read_text()
        beta = float(_get_namelist_value(text, "mixing_beta") or 0.7)
        steps = int(float(_get_namelist_value(text, "electron_maxstep") or 100))
        new_beta = max(self.min_beta, round(beta * self.beta_factor, 6))
        new_steps = min(self.max_steps, 2 * steps)
        errors = ["scf_not_converged"]
        if new_beta >= beta and new_steps <= steps:
            return {"errors": errors, "actions": None}  # nothing left to try
        kept = _keep_copy(directory, self.output_name, "scf_not_converged")
        text = _set_namelist_value(text, "mixing_beta", f"{new_beta:g}")
        text = _set_namelist_value(text, "electron_maxstep", str(new_steps))
        (directory / self.input_name).write_text(text)
        return {
            "errors": errors,
            "actions": [
                {
                    "file": self.input_name,
                    "action": {"_set": {"mixing_beta": new_beta, "electron_maxstep": new_steps}},
                    "previous": {"mixing_beta": beta, "electron_maxstep": steps},
                    "kept_output": kept,
                }
            ],
        }


class PwCrashHandler(ErrorHandler):
    """pw.x stopped before "JOB DONE" without an error of its own (killed): rerun unchanged."""

    is_monitor = False

    def __init__(self, output_name: str = "pw.out") -> None:
        self.output_name = output_name

    def check(self, directory: str = "./") -> bool:
        directory = Path(directory)
        if (directory / WALLTIME_MARKER).exists():
            return False
        out = directory / self.output_name
        text = out.read_text(errors="replace") if out.is_file() else ""
        if "JOB DONE" in text or _ERROR_BLOCK.search(text) or _NOT_CONVERGED.search(text):
            return False
        return True

    def correct(self, directory: str = "./") -> dict:
        kept = _keep_copy(Path(directory), self.output_name, "killed")
        return {
            "errors": ["killed_or_crashed"],
            "actions": [{"restart": True, "kept_output": kept}],
        }


class PwWalltimeHandler(ErrorHandler):
    """Monitor: stop pw.x ``buffer_s`` before ``walltime_s`` (from the handler's creation)."""

    is_monitor = True
    is_terminating = True
    raises_runtime_error = False

    def __init__(self, walltime_s: float, buffer_s: float = 60.0) -> None:
        self.walltime_s = float(walltime_s)
        self.buffer_s = float(buffer_s)
        self.start = time.monotonic()

    def check(self, directory: str = "./") -> bool:
        return time.monotonic() - self.start > self.walltime_s - self.buffer_s

    def correct(self, directory: str = "./") -> dict:
        (Path(directory) / WALLTIME_MARKER).write_text(f"{self.walltime_s}\n")
        return {"errors": ["walltime"], "actions": None}


# --------------------------------------------------------------------------- VASP


def _incar(directory: Path) -> dict:
    from pymatgen.io.vasp import Incar

    return dict(Incar.from_file(str(directory / "INCAR")))


def _vasp_converged(directory: Path) -> bool | None:
    """Electronic convergence of a finished VASP run.

    None when there is no finished run to judge: no OUTCAR (VASP stopped before writing one)
    or one without VASP's closing timing block. That is the case :class:`VaspRestartHandler`
    restarts and :class:`VaspScfHandler` leaves alone.
    """
    outcar = directory / "OUTCAR"
    text = outcar.read_text(errors="replace") if outcar.is_file() else ""
    if "General timing and accounting" not in text:
        return None
    return "aborting loop because EDIFF is reached" in text


class VaspScfHandler(ErrorHandler):
    """NELM reached: double ``NELM``, halve ``AMIX`` (ALGO, smearing, cutoff untouched)."""

    is_monitor = False

    def __init__(self, max_nelm: int = 1000, min_amix: float = 0.02) -> None:
        self.max_nelm = int(max_nelm)
        self.min_amix = float(min_amix)

    def check(self, directory: str = "./") -> bool:
        return _vasp_converged(Path(directory)) is False

    def correct(self, directory: str = "./") -> dict:
        from pymatgen.io.vasp import Incar

        directory = Path(directory)
        incar = Incar.from_file(str(directory / "INCAR"))
        nelm = int(incar.get("NELM", 60))
        amix = float(incar.get("AMIX", 0.4))
        new = {"NELM": min(self.max_nelm, 2 * nelm), "AMIX": max(self.min_amix, amix / 2)}
        if new["NELM"] <= nelm and new["AMIX"] >= amix:
            return {"errors": ["scf_not_converged"], "actions": None}
        for name in ("OUTCAR", "vasprun.xml"):
            _keep_copy(directory, name, "scf_not_converged")
        incar.update(new)
        incar.write_file(str(directory / "INCAR"))
        return {
            "errors": ["scf_not_converged"],
            "actions": [
                {
                    "dict": "INCAR",
                    "action": {"_set": new},
                    "previous": {"NELM": nelm, "AMIX": amix},
                }
            ],
        }


class VaspRestartHandler(ErrorHandler):
    """OUTCAR without the timing block and no walltime stop (killed): rerun unchanged."""

    is_monitor = False

    def check(self, directory: str = "./") -> bool:
        directory = Path(directory)
        if (directory / "STOPCAR").exists() or (directory / WALLTIME_MARKER).exists():
            return False
        return _vasp_converged(directory) is None

    def correct(self, directory: str = "./") -> dict:
        directory = Path(directory)
        kept = _keep_copy(directory, "OUTCAR", "killed")
        return {
            "errors": ["killed_or_crashed"],
            "actions": [{"restart": True, "kept_output": kept}],
        }


def _physics_snapshot(directory: Path) -> dict:
    from dft2mlip.dft.vasp import NON_PHYSICS_INCAR

    snap: dict = {"files": {}}
    for name in ("INCAR", "KPOINTS", "POSCAR", "POTCAR", "POTCAR.spec"):
        path = directory / name
        snap["files"][name] = path.read_bytes() if path.is_file() else None
    try:
        incar = _incar(directory)
    except Exception:  # unreadable INCAR: compare the bytes only
        incar = {}
    snap["incar"] = {k: v for k, v in incar.items() if k not in NON_PHYSICS_INCAR}
    return snap


class PhysicsGuard(ErrorHandler):
    """Apply another handler's correction only if it leaves the physics unchanged.

    A correction that changes a physics INCAR tag (see :data:`dft2mlip.dft.vasp.NON_PHYSICS_INCAR`
    for what may change) or KPOINTS, POSCAR or POTCAR is undone and reported as unrecoverable:
    the label fails, naming what the handler wanted to change.
    """

    def __init__(self, handler: ErrorHandler) -> None:
        self.handler = handler
        # checked after the run, never while it runs: a warning VASP recovers from by itself
        # must not kill a run whose physics nobody may change anyway
        self.is_monitor = False
        self.is_terminating = False
        self.raises_runtime_error = False

    def check(self, directory: str = "./") -> bool:
        return self.handler.check(directory=directory)

    def correct(self, directory: str = "./") -> dict:
        directory_path = Path(directory)
        before = _physics_snapshot(directory_path)
        result = dict(self.handler.correct(directory=directory))
        after = _physics_snapshot(directory_path)
        changed = sorted(
            {k for k in set(before["incar"]) | set(after["incar"])
             if before["incar"].get(k) != after["incar"].get(k)}
        )  # fmt: skip
        changed += [
            name
            for name in ("KPOINTS", "POSCAR", "POTCAR", "POTCAR.spec")
            if before["files"][name] != after["files"][name]
        ]
        name = type(self.handler).__name__
        if not changed:
            result["guarded"] = name
            return result
        for file, content in before["files"].items():  # undo the correction
            path = directory_path / file
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
        errors = list(result.get("errors", []))
        errors.append(f"refused: {name} would change {', '.join(changed)} (label physics)")
        # "skipped": custodian neither reruns nor counts it; the output parser decides the
        # label (a run that did not converge stays scf_not_converged or failed)
        return {
            "errors": errors,
            "actions": None,
            "skipped": True,
            "refused_actions": result.get("actions"),
        }


def vasp_handlers(walltime_s: float | None = None) -> list:
    """The documented VASP handler list (see the module docstring); the walltime buffer is
    min(300 s, 10 % of the walltime)."""
    from custodian.vasp.handlers import VaspErrorHandler, WalltimeHandler

    handlers = [VaspRestartHandler(), VaspScfHandler(), PhysicsGuard(VaspErrorHandler())]
    if walltime_s:
        buffer_s = min(300.0, 0.1 * walltime_s)
        handlers.append(
            WalltimeHandler(wall_time=int(walltime_s), buffer_time=max(1, int(buffer_s)))
        )
    return handlers


def pw_handlers(walltime_s: float | None = None) -> list:
    """The documented pw.x handler list (see the module docstring); the walltime buffer is
    min(60 s, 10 % of the walltime)."""
    handlers: list = [PwScfHandler(), PwCrashHandler()]
    if walltime_s:
        handlers.append(PwWalltimeHandler(walltime_s, min(60.0, 0.1 * walltime_s)))
    return handlers
