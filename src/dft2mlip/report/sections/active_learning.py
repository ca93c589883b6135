"""The active-learning section written by dft2mlip.active."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def active_learning_section(al_dir: Path | None, out_dir: Path, blocks: list, missing) -> None:
    """The active-learning section written by :func:`dft2mlip.active.write_summary` (blocks and
    figures), when active learning ran."""
    if al_dir is None:
        return
    record_path = missing.path("active-learning summary", al_dir / "summary.json")
    if record_path is None:
        blocks.append(("p", "Active learning ran but its summary is missing."))
        return
    for name in ("al_generations.png", "al_calibration.png"):
        if (al_dir / name).exists():
            shutil.copyfile(al_dir / name, out_dir / name)
    blocks.extend(tuple(b) for b in json.loads(record_path.read_text())["blocks"])
