"""The first screen: can each run's stress be trusted where its MD goes?"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dft2mlip.report.format import as_float, fmt

#: the held-out stress error may be this many times the test-set error for a "yes"
TRUST_FACTOR = 2.0


def trust_table(models: Sequence[tuple[str, int]], metrics: Sequence, heldout: Sequence):
    """One row per model (run, seed): test-set stress MAE (``metrics.json``) and the held-out
    benchmark's stress MAE and frame count (``heldout.json``, NaN when it has no frame), GPa."""

    def read(path) -> dict:
        return json.loads(Path(path).read_text())

    rows = []
    for (run, seed), m, h in zip(models, metrics, heldout, strict=True):
        test, held = read(m), read(h)
        rows.append({"run": run, "seed": int(seed),
                     "test_stress_mae_GPa": as_float(test.get("stress_mae_GPa")),
                     "heldout_stress_mae_GPa": as_float(held.get("stress_mae_GPa")),
                     "heldout_n_ok": int(held.get("n_ok", 0))})  # fmt: skip
    return pd.DataFrame(rows)


def _trust_verdict(test: float, held: float) -> str:
    if not (math.isfinite(test) and math.isfinite(held)):
        return "unknown: no held-out error"
    ratio = held / test if test > 0 else math.inf
    if ratio <= TRUST_FACTOR:
        return f"yes: {ratio:.1f}× its test error (within {TRUST_FACTOR:g}×)"
    return f"no: {ratio:.1f}× its test error (more than {TRUST_FACTOR:g}×)"


def trust_section(trust: pd.DataFrame | None, blocks: list) -> None:
    """The first screen: can each run's stress be trusted where its MD goes? Held-out stress
    MAE at the validation conditions beside the test-set stress MAE, mean ± std over seeds."""
    blocks.append(("h", 2, "Can the stress be trusted where the MD goes?"))
    if trust is None or trust.empty or not trust["heldout_n_ok"].any():
        blocks.append(("p", "No held-out benchmark in this run (validation.heldout.paths empty or "
                       "no new DFT): only the test-set error below, which is measured on "
                       "structures like the training ones, not where the MD goes."))  # fmt: skip
        return
    n = int(trust["heldout_n_ok"].max())
    blocks.append(("p", f"Stress MAE on {n} held-out DFT frames at the deformation MD's "
                   "conditions (never trained on) beside the test-set stress MAE, mean ± std "
                   f"over seeds. Verdict: yes when the held-out error is at most {TRUST_FACTOR:g}× "
                   "the test-set error (means)."))  # fmt: skip
    rows = []
    for run, group in trust.groupby("run", sort=False):
        stats = {c: (group[c].mean(), group[c].std()) for c in
                 ("test_stress_mae_GPa", "heldout_stress_mae_GPa")}  # fmt: skip
        cells = [f"{fmt(m)} ± {fmt(sd, 2)}" if len(group) > 1 else fmt(m)
                 for m, sd in stats.values()]  # fmt: skip
        verdict = _trust_verdict(*(m for m, _ in stats.values()))
        rows.append([run, str(len(group)), *cells, verdict])
    header = ["run", "seeds", "test-set stress MAE (GPa)", "held-out MD stress MAE (GPa)",
              "trusted where its MD goes?"]  # fmt: skip
    blocks.append(("table", header, rows))
