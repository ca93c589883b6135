"""Loss-weighting schemes for the energy/forces/stress terms (one small class per scheme).

Every scheme has the same interface: ``components`` (a subset of ``("energy", "forces",
"stress")``), ``weights`` (a dict of floats), ``update(component_losses) -> weights`` called once
per update interval (our trainer: once per epoch, with the epoch-mean training losses) and a
JSON-able ``state_dict()`` / ``load_state_dict()`` so a resumed run continues exactly.

What the optimiser minimises (``training.runs.<run>.normalise``)
-----------------------------------------------------------------
L_k are the raw MSEs of :mod:`dft2mlip.train.loss` (energy per atom (eV/atom)², forces (eV/Å)²,
stress (eV/Å³)²).

- ``normalise: initial`` — loss = Σ_k w_k · L_k / L_k^ref, where L_k^ref is component k's mean
  training loss over the first epoch's pass (the initial model evaluated on the whole training
  set before the first parameter update), frozen and saved in the checkpoint. The terms are
  dimensionless and start near 1, so weights that sum to 1 are comparable across E, F and S.
- ``normalise: none`` — loss = Σ_k w_k · L_k with raw MSEs. With MACE-like fixed weights
  E:F:S = 1:100:1 the stress term, in (eV/Å³)², barely counts (1 GPa = 0.0062 eV/Å³): that is
  the point of the fixed-weight comparison run.

The weighting scheme's ``update`` receives the same (normalised when enabled) epoch-mean
component losses the optimiser saw.

SoftAdapt (Heydari et al. 2019, normalised-slope variant, as in DESIGN.md)
-------------------------------------------------------------------------
At interval t: Δ_k = L_k(t) − L_k(t−1); d = Δ / max(‖Δ‖₂, 1e-8); w̃ = softmax(β d). The last
``window`` vectors w̃ are averaged and renormalised to sum 1. A term whose loss stops falling
(Δ_k ≥ 0) gains weight. Loss-weighted variant: the averaged vector is multiplied by the current
weights and renormalised (w_k ∝ w̃_k · c_k). Until two observations exist the weights are
uniform (1/n).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

ALL_COMPONENTS = ("energy", "forces", "stress")
SCHEMES = ("fixed", "softadapt")
NORMALISE_MODES = ("initial", "none")
#: floor applied in the loss-weighted SoftAdapt variant so compounded weights stay positive
_LOSS_WEIGHTED_FLOOR = 1e-12


def _ordered(components: Iterable[str], where: str) -> tuple[str, ...]:
    comps = tuple(components)
    unknown = [c for c in comps if c not in ALL_COMPONENTS]
    if unknown or not comps or len(set(comps)) != len(comps):
        raise ValueError(
            f"{where}: components must be distinct names from {ALL_COMPONENTS}, got {comps}"
        )
    return tuple(c for c in ALL_COMPONENTS if c in comps)


class WeightingScheme:
    """Interface shared by all schemes.

    Attributes
    ----------
    components : tuple[str, ...]
        Loss components the scheme weighs, in canonical order energy, forces, stress.
    """

    name = "base"
    components: tuple[str, ...] = ()

    @property
    def weights(self) -> dict[str, float]:
        """Current weight per component (dimensionless when losses are normalised)."""
        raise NotImplementedError

    def update(self, component_losses: Mapping[str, float]) -> dict[str, float]:
        """Observe one interval's component losses and return the new weights."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """JSON-able state; ``load_state_dict`` of it continues the scheme exactly."""
        raise NotImplementedError

    def load_state_dict(self, state: Mapping) -> None:
        """Restore a state produced by :meth:`state_dict` of the same scheme."""
        raise NotImplementedError

    def _losses_vector(self, component_losses: Mapping[str, float]) -> np.ndarray:
        missing = [c for c in self.components if c not in component_losses]
        if missing:
            raise ValueError(
                f"{self.name} weighting: update() needs losses for {list(self.components)}, "
                f"missing {missing}"
            )
        values = np.array([float(component_losses[c]) for c in self.components])
        if not np.all(np.isfinite(values)):
            raise ValueError(
                f"{self.name} weighting: non-finite component losses "
                f"{dict(zip(self.components, values.tolist(), strict=True))}"
            )
        return values

    def _check_state(self, state: Mapping) -> None:
        if state.get("scheme") != self.name:
            raise ValueError(
                f"cannot load a {state.get('scheme')!r} weighting state into a {self.name!r} scheme"
            )
        if tuple(state.get("components", ())) != self.components:
            raise ValueError(
                f"weighting state is for components {state.get('components')}, "
                f"this scheme has {list(self.components)}"
            )


class FixedWeighting(WeightingScheme):
    """Constant weights, e.g. MACE-like E:F:S = 1:100:1.

    Parameters
    ----------
    weights : dict[str, float]
        Weight per component; components left out get 0. Non-negative, finite, not all zero.
    run_name : str
        Used in error messages (``training.runs.<run_name>.weights.<component>``).
    """

    name = "fixed"

    def __init__(self, weights: Mapping[str, float], run_name: str = "<run>") -> None:
        where = f"training.runs.{run_name}.weights"
        if not isinstance(weights, Mapping) or not weights:
            raise ValueError(f"{where} must be a mapping like {{energy: 1, forces: 100}}")
        clean: dict[str, float] = {}
        for comp, value in weights.items():
            if comp not in ALL_COMPONENTS:
                raise ValueError(
                    f"{where}.{comp}: unknown loss component; use {list(ALL_COMPONENTS)}"
                )
            try:
                w = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{where}.{comp} = {value!r} is not a number") from None
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"{where}.{comp} = {value!r}; weights must be finite and >= 0")
            clean[comp] = w
        if not any(w > 0 for w in clean.values()):
            raise ValueError(f"{where}: all weights are zero; give at least one a positive value")
        self.components = tuple(c for c in ALL_COMPONENTS if c in clean)
        self._weights = {c: clean[c] for c in self.components}

    @property
    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    def update(self, component_losses: Mapping[str, float]) -> dict[str, float]:
        """Fixed weights ignore the losses (a zero-weight term may have none)."""
        return self.weights

    def state_dict(self) -> dict:
        return {"scheme": self.name, "components": list(self.components), "weights": self.weights}

    def load_state_dict(self, state: Mapping) -> None:
        self._check_state(state)
        self._weights = {c: float(state["weights"][c]) for c in self.components}


class SoftAdapt(WeightingScheme):
    """SoftAdapt on normalised loss changes with window averaging (see module docstring).

    Parameters
    ----------
    components : iterable of str
        Components to balance (at least two make sense; one gives weight 1).
    beta : float
        Softmax sharpness β > 0 (≈ 1.0–1.1).
    window : int
        Number of most recent softmax vectors averaged (≥ 1).
    loss_weighted : bool
        Multiply the averaged vector by the current weights before renormalising.
    """

    name = "softadapt"

    def __init__(
        self,
        components: Iterable[str],
        beta: float = 1.1,
        window: int = 5,
        loss_weighted: bool = False,
    ) -> None:
        self.components = _ordered(components, "softadapt")
        beta = float(beta)
        if not math.isfinite(beta) or beta <= 0:
            raise ValueError(f"softadapt beta must be a finite number > 0, got {beta}")
        if int(window) != window or window < 1:
            raise ValueError(f"softadapt window must be an integer >= 1, got {window}")
        self.beta = beta
        self.window = int(window)
        self.loss_weighted = bool(loss_weighted)
        n = len(self.components)
        self._weights = np.full(n, 1.0 / n)
        self._previous: np.ndarray | None = None
        self._recent: list[np.ndarray] = []

    @property
    def weights(self) -> dict[str, float]:
        return {c: float(w) for c, w in zip(self.components, self._weights, strict=True)}

    def update(self, component_losses: Mapping[str, float]) -> dict[str, float]:
        losses = self._losses_vector(component_losses)
        if self._previous is not None:
            delta = losses - self._previous
            d = delta / max(float(np.linalg.norm(delta)), 1e-8)
            z = self.beta * d
            softmax = np.exp(z - z.max())
            softmax /= softmax.sum()
            self._recent = (self._recent + [softmax])[-self.window :]
            averaged = np.mean(self._recent, axis=0)
            averaged /= averaged.sum()
            if self.loss_weighted:
                averaged = np.maximum(averaged * self._weights, _LOSS_WEIGHTED_FLOOR)
                averaged /= averaged.sum()
            self._weights = averaged
        self._previous = losses
        return self.weights

    def state_dict(self) -> dict:
        return {
            "scheme": self.name,
            "components": list(self.components),
            "beta": self.beta,
            "window": self.window,
            "loss_weighted": self.loss_weighted,
            "weights": self._weights.tolist(),
            "previous": None if self._previous is None else self._previous.tolist(),
            "recent": [v.tolist() for v in self._recent],
        }

    def load_state_dict(self, state: Mapping) -> None:
        self._check_state(state)
        self.beta = float(state["beta"])
        self.window = int(state["window"])
        self.loss_weighted = bool(state["loss_weighted"])
        self._weights = np.array(state["weights"], dtype=float)
        prev = state["previous"]
        self._previous = None if prev is None else np.array(prev, dtype=float)
        self._recent = [np.array(v, dtype=float) for v in state["recent"]]


def make_weighting(
    run_name: str, run_cfg: Mapping, components: Iterable[str] = ALL_COMPONENTS
) -> WeightingScheme:
    """Build the weighting scheme of ``training.runs.<run_name>``.

    Parameters
    ----------
    run_name : str
        Name of the run (for error messages).
    run_cfg : mapping
        ``scheme`` (fixed | softadapt); fixed: ``weights``; softadapt: ``beta``, ``window``,
        optional ``loss_weighted`` (default false) and ``components`` (default all three).
        ``normalise`` is read by the trainer, not here.
    components : iterable of str
        Components the training data provides labels for. A positive fixed weight or a
        softadapt component outside them is an error.
    """
    where = f"training.runs.{run_name}"
    comps = _ordered(components, where)
    scheme = run_cfg.get("scheme")
    if scheme == "fixed":
        if "weights" not in run_cfg:
            raise ValueError(f"{where}: scheme 'fixed' needs weights: {{energy, forces, stress}}")
        fixed = FixedWeighting(run_cfg["weights"], run_name=run_name)
        for comp, w in fixed.weights.items():
            if comp not in comps and w > 0:
                raise ValueError(
                    f"{where}.weights.{comp} = {w} but the data has no {comp} labels; "
                    f"set it to 0 or add {comp} labels"
                )
        return fixed
    if scheme == "softadapt":
        wanted = _ordered(run_cfg.get("components", ALL_COMPONENTS), f"{where}.components")
        lacking = [c for c in wanted if c not in comps]
        if lacking:
            raise ValueError(
                f"{where}: softadapt weighs {list(wanted)} but the data has no {lacking} labels; "
                f"add them or set {where}.components to a subset of {list(comps)}"
            )
        try:
            return SoftAdapt(
                wanted,
                beta=run_cfg.get("beta", 1.1),
                window=run_cfg.get("window", 5),
                loss_weighted=run_cfg.get("loss_weighted", False),
            )
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    raise ValueError(f"{where}.scheme = {scheme!r} is not known; use one of {list(SCHEMES)}")


def normalise_mode(run_name: str, run_cfg: Mapping) -> str:
    """``training.runs.<run>.normalise`` checked against ``initial`` | ``none`` (default none)."""
    mode = run_cfg.get("normalise", "none")
    if mode is None or mode is False:
        mode = "none"
    if mode not in NORMALISE_MODES:
        raise ValueError(
            f"training.runs.{run_name}.normalise = {mode!r}; use one of {list(NORMALISE_MODES)}"
        )
    return mode
