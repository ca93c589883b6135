"""The first screen: can each run's stress be trusted where its MD goes?"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dft2mlip.report.format import as_float, fmt

#: the held-out stress error may be this many times the test-set error for a "yes"
TRUST_FACTOR = 2.0


def trust_table(models: Sequence[tuple[str, int]], metrics: Sequence, heldout: Sequence,
                stress_tol_GPa: float):  # fmt: skip
    """One row per model (run, seed): test-set stress MAE (``metrics.json``) and the held-out
    benchmark's stress MAE and frame count (``heldout.json``, NaN when it has no frame), GPa,
    with the absolute bound of a "yes" (``validation.heldout.stress_tol_GPa``)."""

    def read(path) -> dict:
        return json.loads(Path(path).read_text())

    rows = []
    for (run, seed), m, h in zip(models, metrics, heldout, strict=True):
        test, held = read(m), read(h)
        rows.append({"run": run, "seed": int(seed),
                     "test_stress_mae_GPa": as_float(test.get("stress_mae_GPa")),
                     "heldout_stress_mae_GPa": as_float(held.get("stress_mae_GPa")),
                     "heldout_n_ok": int(held.get("n_ok", 0)),
                     "stress_tol_GPa": float(stress_tol_GPa)})  # fmt: skip
    return pd.DataFrame(rows)


def _trust_verdict(test: float, held: float, tolerance: float) -> str:
    """Yes only when the held-out error is both small (at most ``tolerance`` GPa) and like the
    test error (at most ``TRUST_FACTOR`` times it); otherwise no, saying which failed."""
    if not (math.isfinite(test) and math.isfinite(held)):
        return "unknown: no held-out error"
    ratio = held / test if test > 0 else math.inf
    if held > tolerance:
        return f"no: {fmt(held)} GPa, above the {tolerance:g} GPa tolerance"
    if ratio > TRUST_FACTOR:
        return f"no: {ratio:.1f}× its test error (more than {TRUST_FACTOR:g}×)"
    within = f"within {TRUST_FACTOR:g}×"
    return f"yes: within {tolerance:g} GPa and {ratio:.1f}× its test error ({within})"


@dataclass
class TrustRun:
    """One run's stress MAE (GPa), mean and standard deviation over its seeds."""

    run: str
    seeds: int
    test_GPa: tuple[float, float]
    heldout_GPa: tuple[float, float]
    tolerance_GPa: float

    @property
    def verdict(self) -> str:
        return _trust_verdict(self.test_GPa[0], self.heldout_GPa[0], self.tolerance_GPa)

    @property
    def cells(self) -> list[str]:
        """The run's table row: mean ± std (mean alone for one seed) and the verdict."""
        values = [f"{fmt(m)} ± {fmt(sd, 2)}" if self.seeds > 1 else fmt(m)
                  for m, sd in (self.test_GPa, self.heldout_GPa)]  # fmt: skip
        return [self.run, str(self.seeds), *values, self.verdict]


@dataclass
class TrustData:
    """The first screen's data: held-out frames (0: no benchmark) and every run's errors."""

    n_frames: int
    runs: list[TrustRun] = field(default_factory=list)
    factor: float = TRUST_FACTOR
    tolerance_GPa: float = math.nan


def gather_trust(trust: pd.DataFrame | None) -> TrustData:
    """The first screen's data from :func:`trust_table` (None or no held-out frame: none)."""
    if trust is None or trust.empty or not trust["heldout_n_ok"].any():
        return TrustData(n_frames=0)
    runs = []
    for run, group in trust.groupby("run", sort=False):
        test, held = ((group[c].mean(), group[c].std()) for c in
                      ("test_stress_mae_GPa", "heldout_stress_mae_GPa"))  # fmt: skip
        tolerance = float(group["stress_tol_GPa"].iloc[0])
        runs.append(TrustRun(str(run), len(group), test, held, tolerance))
    return TrustData(n_frames=int(trust["heldout_n_ok"].max()), runs=runs,
                     tolerance_GPa=float(trust["stress_tol_GPa"].iloc[0]))  # fmt: skip


def trust_section(trust: pd.DataFrame | None, blocks: list) -> None:
    """The first screen: can each run's stress be trusted where its MD goes? Held-out stress
    MAE at the validation conditions beside the test-set stress MAE, mean ± std over seeds
    (worded by ``templates/sections/trust.j2``)."""
    blocks.append(("section", "trust", gather_trust(trust)))
