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
#: the Voigt components of ``heldout.json``'s per-component stress MAE (``stress_mae_<c>_GPa``)
COMPONENTS = ("xx", "yy", "zz", "yz", "xz", "xy")


def _worst_component(held: dict) -> tuple[float, str]:
    """The largest per-component held-out stress MAE (GPa) and its component ("" without one):
    the mean over six components dilutes the one a path loads (σ_xx in tension)."""
    values = {c: as_float(held.get(f"stress_mae_{c}_GPa")) for c in COMPONENTS}
    values = {c: v for c, v in values.items() if math.isfinite(v)}
    if not values:
        return math.nan, ""
    component = max(values, key=values.get)
    return values[component], component


def trust_table(models: Sequence[tuple[str, int]], metrics: Sequence, heldout: Sequence,
                stress_tol_GPa: float):  # fmt: skip
    """One row per model (run, seed): test-set stress MAE (``metrics.json``), the held-out
    benchmark's stress MAE over all components, its worst component's MAE and name, and frame
    count (``heldout.json``, NaN when it has no frame), GPa, with the absolute bound of a "yes"
    (``validation.heldout.stress_tol_GPa``)."""

    def read(path) -> dict:
        return json.loads(Path(path).read_text())

    rows = []
    for (run, seed), m, h in zip(models, metrics, heldout, strict=True):
        test, held = read(m), read(h)
        worst, component = _worst_component(held)
        rows.append({"run": run, "seed": int(seed),
                     "test_stress_mae_GPa": as_float(test.get("stress_mae_GPa")),
                     "heldout_stress_mae_GPa": as_float(held.get("stress_mae_GPa")),
                     "heldout_worst_component_mae_GPa": worst,
                     "heldout_worst_component": component,
                     "heldout_n_ok": int(held.get("n_ok", 0)),
                     "stress_tol_GPa": float(stress_tol_GPa)})  # fmt: skip
    return pd.DataFrame(rows)


def _trust_verdict(run: TrustRun) -> str:
    """Yes only when every held-out stress component is small (its MAE at most the tolerance,
    GPa) and the held-out error is like the test error (at most ``TRUST_FACTOR`` times it);
    otherwise no, saying which failed."""
    test, held, worst = run.test_GPa[0], run.heldout_GPa[0], run.worst_GPa[0]
    if not (math.isfinite(test) and math.isfinite(held) and math.isfinite(worst)):
        return "unknown: no held-out error"
    ratio = held / test if test > 0 else math.inf
    if worst > run.tolerance_GPa:
        return (f"no: σ_{run.worst_component} {fmt(worst)} GPa, above the "
                f"{run.tolerance_GPa:g} GPa tolerance")  # fmt: skip
    if ratio > TRUST_FACTOR:
        return f"no: {ratio:.1f}× its test error (more than {TRUST_FACTOR:g}×)"
    within = f"within {TRUST_FACTOR:g}×"
    return f"yes: within {run.tolerance_GPa:g} GPa and {ratio:.1f}× its test error ({within})"


@dataclass
class TrustRun:
    """One run's stress MAE (GPa), mean and standard deviation over its seeds: test set,
    held-out over all components, held-out worst component (the one most seeds had worst)."""

    run: str
    seeds: int
    test_GPa: tuple[float, float]
    heldout_GPa: tuple[float, float]
    worst_GPa: tuple[float, float]
    worst_component: str
    tolerance_GPa: float

    @property
    def verdict(self) -> str:
        return _trust_verdict(self)

    @property
    def cells(self) -> list[str]:
        """The run's table row: mean ± std (mean alone for one seed) and the verdict."""
        values = [f"{fmt(m)} ± {fmt(sd, 2)}" if self.seeds > 1 else fmt(m)
                  for m, sd in (self.test_GPa, self.heldout_GPa, self.worst_GPa)]  # fmt: skip
        values[2] = f"σ_{self.worst_component}: {values[2]}"
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
        test, held, worst = ((group[c].mean(), group[c].std()) for c in
                             ("test_stress_mae_GPa", "heldout_stress_mae_GPa",
                              "heldout_worst_component_mae_GPa"))  # fmt: skip
        component = str(group["heldout_worst_component"].mode().iloc[0])
        tolerance = float(group["stress_tol_GPa"].iloc[0])
        runs.append(TrustRun(str(run), len(group), test, held, worst, component, tolerance))
    return TrustData(n_frames=int(trust["heldout_n_ok"].max()), runs=runs,
                     tolerance_GPa=float(trust["stress_tol_GPa"].iloc[0]))  # fmt: skip


def trust_section(trust: pd.DataFrame | None, blocks: list) -> None:
    """The first screen: can each run's stress be trusted where its MD goes? Held-out stress
    MAE at the validation conditions beside the test-set stress MAE, mean ± std over seeds
    (worded by ``templates/sections/trust.j2``)."""
    blocks.append(("section", "trust", gather_trust(trust)))
