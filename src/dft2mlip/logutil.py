"""Logging for Snakemake script entry points: the rule's log gets everything, the console one line.

A job's stderr and the ``logging`` module go to the rule's log (``snakemake.log[0]``), as before.
What a user must see on the console goes to the stderr the job started with (Snakemake shows it
for local runs; on SLURM it lands in the job's SLURM log), one line each, prefixed with
``dft2mlip: <rule> (<wildcards>):``

- an uncaught exception: ``ExceptionType: message (full traceback: <log>)``; the traceback itself
  is written to the log;
- a warning of a ``dft2mlip`` logger (e.g. a DFT label whose status is not ``ok``).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from types import TracebackType
from typing import Any, TextIO

#: every console line starts with this
PREFIX = "dft2mlip"
#: a console line is cut after this many characters of message
MAX_MESSAGE_CHARS = 600
_HANDLER_NAME = "dft2mlip-console"
#: the log file log_to opened and the stderr it replaced (a second call keeps that console)
_STREAMS: dict[str, TextIO] = {}


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` with every run of whitespace (newlines included) as one space, cut at ``limit``."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def job_name(job: Any) -> str:
    """``rule (name=value, ...)`` of a Snakemake ``snakemake`` script object, or ``rule``.

    Parameters
    ----------
    job
        The ``snakemake`` object of a ``script:`` (attributes ``rule`` and ``wildcards``).
    """
    rule = getattr(job, "rule", None) or "job"
    wildcards = getattr(job, "wildcards", None)
    items = list(wildcards.items()) if wildcards is not None else []
    if not items:
        return str(rule)
    return f"{rule} ({', '.join(f'{k}={v}' for k, v in items)})"


class OneLineFormatter(logging.Formatter):
    """``<prefix>: <where>: <message>`` on one line (whitespace runs collapsed)."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def format(self, record: logging.LogRecord) -> str:
        return f"{PREFIX}: {self.where}: {one_line(record.getMessage())}"


def uncaught_line(where: str, exc: BaseException, log_path: str | os.PathLike) -> str:
    """The console line of an uncaught exception (type, message, where the traceback is)."""
    message = one_line(str(exc))
    cause = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return f"{PREFIX}: {where}: {cause} (full traceback: {log_path})"


def install_excepthook(console: TextIO, where: str, log_path: str | os.PathLike) -> None:
    """Uncaught exceptions: full traceback to ``sys.stderr`` (the log), one line to ``console``."""

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        sys.stderr.flush()
        console.write(uncaught_line(where, exc, log_path) + "\n")
        console.flush()

    sys.excepthook = hook


def log_to(path: str | os.PathLike, job: Any = None) -> logging.Logger:
    """Send stderr and ``logging`` (INFO) to ``path``; warnings and the cause of a failure also to
    the console, one line each. Returns the ``dft2mlip`` logger.

    Parameters
    ----------
    path
        The rule's log file (``snakemake.log[0]``).
    job
        The script's ``snakemake`` object: names the job on the console (rule and wildcards).
        Without it, the log path does.
    """
    console = sys.stderr
    if _STREAMS and sys.stderr is _STREAMS["log"]:  # called again: the console stays the same
        console = _STREAMS["console"]
        sys.stderr.close()
    where = job_name(job) if job is not None else str(path)
    sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 (lives as long as the script)
    _STREAMS.update(log=sys.stderr, console=console)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logger = logging.getLogger("dft2mlip")
    for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(console)
    handler.set_name(_HANDLER_NAME)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(OneLineFormatter(where))
    logger.addHandler(handler)
    install_excepthook(console, where, path)
    return logger
