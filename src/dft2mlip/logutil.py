"""Logging for Snakemake script entry points: stderr and the logging module go to the rule's log."""

from __future__ import annotations

import logging
import sys


def log_to(path: str) -> logging.Logger:
    """Send stderr and ``logging`` (INFO) to ``path``; return the ``dft2mlip`` logger."""
    sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 (lives as long as the script)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    return logging.getLogger("dft2mlip")
