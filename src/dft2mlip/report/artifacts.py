"""Reading the pipeline's artifacts for the report: a missing or broken one is named, not fatal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dft2mlip.validate.elastic import cubic_constants, read_elastic_json


@dataclass
class RunArtifacts:
    """Paths of one training run's outputs (any may be None or missing on disk)."""

    metrics_json: str | Path | None = None
    history_csv: str | Path | None = None
    elastic_json: str | Path | None = None
    elastic_relaxed_json: str | Path | None = None
    md_csv: str | Path | None = None
    stress_validation_csv: str | Path | None = None
    parity_png: str | Path | None = None
    loss_json: str | Path | None = None


class Missing:
    """Collects artifacts that could not be read, for the report's 'Missing artifacts' list."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def path(self, what: str, path: str | Path | None) -> Path | None:
        if path is None:
            self.items.append(f"{what}: not provided")
            return None
        p = Path(path)
        if not p.is_file():
            self.items.append(f"{what}: missing (`{p}`)")
            return None
        return p

    def failed(self, what: str, path: Path, err: Exception) -> None:
        self.items.append(f"{what}: unreadable (`{path}`: {type(err).__name__}: {err})")


def load(what: str, path, loader, missing: Missing):
    """``loader(path)``, or None with the reason in ``missing``."""
    p = missing.path(what, path)
    if p is None:
        return None
    try:
        return loader(p)
    except Exception as err:  # noqa: BLE001 - a broken artifact is reported, not fatal
        missing.failed(what, p, err)
        return None


def read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def read_metrics(path: Path) -> dict:
    data = json.loads(path.read_text())
    if "energy_mae_meV_per_atom" not in data and isinstance(data.get("test"), dict):
        data = data["test"]
    return data


def read_elastic(path: Path) -> dict:
    c, record = read_elastic_json(path)
    out = cubic_constants(c)
    for key in ("strain_magnitude", "relax_fmax_eV_per_A", "protocol"):
        if key in record:
            out[key] = record[key]
    return out
