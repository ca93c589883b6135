"""Loss-weighting schemes for the energy/forces/stress terms (one small class per scheme).

Every scheme has the same interface: ``components`` (a subset of ``("energy", "forces",
"stress")``), ``weights`` (a dict of floats), ``update(component_losses) -> weights`` called once
per update interval (our trainer: once per epoch with the epoch-mean training losses, or every
``update_interval_batches`` batches with those batches' mean losses) and a JSON-able
``state_dict()`` / ``load_state_dict()`` so a resumed run continues exactly.

What the optimiser minimises (``training.runs.<run>.normalise``)
-----------------------------------------------------------------
L_k are the raw MSEs of :mod:`dft2mlip.train.loss` (energy per atom (eV/atom)², forces (eV/Å)²,
stress (eV/Å³)²).

- ``normalise: initial`` — loss = Σ_k w_k · L_k / L_k^ref, where L_k^ref is component k's mean
  training loss over the first epoch's pass (the initial model evaluated on the whole training
  set before the first parameter update), frozen and saved in the checkpoint. The terms are
  dimensionless and start near 1, so weights that sum to 1 are comparable across E, F and S.
- ``normalise: counts`` — as ``initial``, and each term further multiplied by m_k, the number
  of label components it has per training structure (energy 1, forces 3 N, stress 6) over the
  mean of these numbers across the weighted terms (:mod:`dft2mlip.train.normalisation`): a term
  counts as much as the information its labels hold, not one third each. The scheme's
  ``update`` still receives L_k / L_k^ref (without m_k).
- ``normalise: variance`` — loss = Σ_k w_k · L_k / Var_k with Var_k the mean square of the
  training labels (energy per atom minus the E0s, force components, stress components): each
  term is a relative error, 1 for a model that predicts zero, independent of the initial model.
- ``normalise: none`` — loss = Σ_k w_k · L_k with raw MSEs. With MACE-like fixed weights
  E:F:S = 1:100:1 the stress term, in (eV/Å³)², barely counts (1 GPa = 0.0062 eV/Å³): that is
  the point of the fixed-weight comparison run.

The weighting scheme's ``update`` receives the same (normalised when enabled) epoch-mean
component losses the optimiser saw.

SoftAdapt (Heydari et al. 2019, normalised-slope variant, as in DESIGN.md)
-------------------------------------------------------------------------
At interval t: Δ_k = L_k(t) − L_k(t−1); d = Δ / max(‖Δ‖₂, 1e-8); w̃ = softmax(β d). The last
``window`` vectors w̃ are averaged and renormalised to sum 1. A term whose loss stops falling
(Δ_k ≥ 0) gains weight. Loss-weighted variant (the paper's): the averaged vector is multiplied
by the current loss values the update received and renormalised, w_k ∝ w̃_k · f_k(t) — not by
the current weights, which would compound every softmax vector ``window`` times (see
:class:`SoftAdapt`). Until two observations exist the weights are uniform (1/n).
Anchored variant (``anchor: {energy: a_E, forces: a_F, stress: a_S}``; the idea of NequIP's
PR #515): w_k ∝ a_k w̃_k (before the loss weighting), so the weights start at the user's ratio
a / Σ a and oscillate around it instead of drifting to equal shares.

ReLoBRaLo (Bischof & Kraus 2021)
--------------------------------
bal(t, t') = softmax(L(t) / (τ L(t')));
w(t) = α [ρ w(t−1) + (1 − ρ) bal(t, 0)] + (1 − α) bal(t, t−1),
with ρ ~ Bernoulli(``lookback``) drawn from the scheme's own seeded RNG (saved in the state).
Weights sum to 1 (the paper's sum to n; multiply by n to compare).

DWA (Liu et al. 2019)
---------------------
w(t) = softmax(L(t−1) / (T L(t−2))), temperature T = 2; uniform until two observations exist.

Uncertainty (Kendall et al. 2018)
---------------------------------
loss = Σ_k ½ (exp(−s_k) L_k + s_k) with learnable log-variances s_k (initial 0) trained by the
model's optimiser (:meth:`WeightingScheme.parameters`); the logged weight is ½ exp(−s_k).

GradNorm (Chen et al. 2018)
---------------------------
Weights w_k (sum 1) are trained every batch so that the gradient norms G_k = w_k ‖∇_W L_k‖ on a
shared layer W approach Ḡ · r_k^α, r_k = (L_k / L_k(0)) / mean_j(L_j / L_j(0)); the gradient of
Σ_k |G_k − target_k| with respect to w_k (targets held constant) drives a small Adam step on
log w_k.
Cost: one extra backward pass per loss term per batch (autograd.grad of each L_k with respect to
W, through the force/stress double-backward graph). Measured with bench/bench_trainer.py (default
Si model, 8-atom cells, CPU): +33 to +44 % CPU time per epoch over ``fixed``; the other schemes'
own code costs < 0.1 % of an epoch.

Hooks used by the trainer
-------------------------
``combine(losses)`` forms the batch loss from tensors (Σ w_k L_k by default);
``parameters()`` lists learnable tensors the model's optimiser must train (uncertainty);
``batch_step(losses, shared_params)`` runs after each batch's loss is formed, before the
backward pass (GradNorm); ``per_batch`` says whether the weights change within an epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from dft2mlip.units import EV_PER_A3_TO_GPA

ALL_COMPONENTS = ("energy", "forces", "stress")
SCHEMES = ("fixed", "softadapt", "relobralo", "dwa", "uncertainty", "gradnorm", "target")
NORMALISE_MODES = ("initial", "counts", "variance", "none")
#: floor of the loss-weighted SoftAdapt weights (a term whose loss reached 0 keeps a share)
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
    #: True when the weights change within an epoch (trainer logs their epoch mean)
    per_batch = False
    #: True when :meth:`batch_step` needs the model's shared-layer parameters
    needs_shared_params = False

    @property
    def weights(self) -> dict[str, float]:
        """Current weight per component (dimensionless when losses are normalised)."""
        raise NotImplementedError

    def update(self, component_losses: Mapping[str, float]) -> dict[str, float]:
        """Observe one interval's component losses and return the new weights."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The scheme's run-config options (:data:`SCHEME_OPTIONS`) with the values in use."""
        return {}

    def state_dict(self) -> dict:
        """JSON-able state; ``load_state_dict`` of it continues the scheme exactly."""
        raise NotImplementedError

    def combine(self, losses: Mapping[str, Any]) -> Any:
        """Batch loss Σ_k w_k L_k over the components present in ``losses`` (tensors or floats)
        with a positive weight; a component without labels in the batch is left out."""
        weights = self.weights
        return sum(
            weights[k] * losses[k] for k in self.components if weights[k] > 0 and k in losses
        )

    def parameters(self) -> list:
        """Learnable tensors to train together with the model (none by default)."""
        return []

    def batch_step(self, losses: Mapping[str, Any], shared_params: Sequence[Any] = ()) -> None:
        """Per-batch hook, called before the backward pass (no-op by default)."""

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

    def options(self) -> dict[str, Any]:
        return {"weights": self.weights}

    def update(self, component_losses: Mapping[str, float]) -> dict[str, float]:
        """Fixed weights ignore the losses (a zero-weight term may have none)."""
        return self.weights

    def state_dict(self) -> dict:
        return {"scheme": self.name, "components": list(self.components), "weights": self.weights}

    def load_state_dict(self, state: Mapping) -> None:
        self._check_state(state)
        self._weights = {c: float(state["weights"][c]) for c in self.components}


class SoftAdapt(WeightingScheme):
    """SoftAdapt on normalised loss changes with window averaging (Heydari et al. 2019).

    At update t with losses L(t) (normalised by L^ref under ``normalise: initial``):
    Δ = L(t) − L(t−1), d = Δ / max(‖Δ‖₂, 1e-8), s(t) = softmax(β d), and w̃(t) is the mean of
    the last ``window`` vectors s, renormalised. The plain variant uses w = w̃.

    Loss-weighted variant: w_k = w̃_k f_k / Σ_j w̃_j f_j with f = L(t), the losses this very
    update received (floored at 1e-12 and renormalised). For window 1 this is the paper's
    loss-weighted SoftAdapt, w_k = f_k exp(β d_k) / Σ_j f_j exp(β d_j); DESIGN.md's
    "w_k ∝ w̃_k · c_k" is read with c = these current loss values. f is not the previous
    weights: multiplying by them (the earlier implementation) made every weight a product of
    all past softmax vectors, each counted ``window`` times, so one term took > 0.96 of the
    weight within 20 updates on smooth loss curves. Here the weights depend only on the last
    ``window`` loss changes and the current losses, so nothing compounds.

    Anchored variant: with an anchor a (the user's E:F:S ratio, normalised to sum 1) the
    averaged vector is multiplied by a and renormalised, w_k = a_k w̃_k / Σ_j a_j w̃_j, and the
    weights before the second observation are a. A uniform w̃ (all terms falling alike) gives
    exactly a, and w_k / a_k lies within a factor exp(√2 β) of w_j / a_j: the weights oscillate
    around the user's ratio instead of drifting to equal shares (NequIP PR #515's proposal).

    Bounds: ‖d‖₂ ≤ 1 gives max_k d_k − min_k d_k ≤ √2, so any s, and so w̃, has
    max/min ≤ exp(√2 β) (≤ exp(2β)). The loss-weighted w_k therefore lies below
    f_k R / (f_k R + Σ_{j≠k} f_j) with R = exp(√2 β): it is limited by how far the current
    losses are apart, not by the number of updates. Use it with ``normalise: initial``: with
    raw MSEs (``normalise: none``) f differs by orders of magnitude between E, F and S.

    Parameters
    ----------
    components : iterable of str
        Components to balance (at least two make sense; one gives weight 1).
    beta : float
        Softmax sharpness β > 0 (≈ 1.0–1.1).
    window : int
        Number of most recent softmax vectors averaged (≥ 1).
    loss_weighted : bool
        Multiply the averaged vector by the current losses before renormalising.
    anchor : mapping or None
        The user's ratio per component (> 0, any scale; every component needs one), or None
        for the plain scheme (equivalent to equal anchors).
    """

    name = "softadapt"

    def __init__(
        self,
        components: Iterable[str],
        beta: float = 1.1,
        window: int = 5,
        loss_weighted: bool = False,
        anchor: Mapping[str, float] | None = None,
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
        self.anchor = None if anchor is None else _anchor(anchor, self.components)
        n = len(self.components)
        self._weights = np.full(n, 1.0 / n) if anchor is None else self._anchor_vector()
        self._previous: np.ndarray | None = None
        self._recent: list[np.ndarray] = []

    def _anchor_vector(self) -> np.ndarray:
        """The anchor as a vector summing to 1 (uniform without an anchor)."""
        if self.anchor is None:
            return np.full(len(self.components), 1.0 / len(self.components))
        a = np.array([self.anchor[c] for c in self.components])
        return a / a.sum()

    @property
    def weights(self) -> dict[str, float]:
        return {c: float(w) for c, w in zip(self.components, self._weights, strict=True)}

    def options(self) -> dict[str, Any]:
        return {"beta": self.beta, "window": self.window, "loss_weighted": self.loss_weighted,
                "anchor": None if self.anchor is None else dict(self.anchor)}  # fmt: skip

    def update(self, component_losses: Mapping[str, float]) -> dict[str, float]:
        losses = self._losses_vector(component_losses)
        if self._previous is not None:
            delta = losses - self._previous
            d = delta / max(float(np.linalg.norm(delta)), 1e-8)
            z = self.beta * d
            softmax = np.exp(z - z.max())
            softmax /= softmax.sum()
            self._recent = (self._recent + [softmax])[-self.window :]
            averaged = np.mean(self._recent, axis=0) * self._anchor_vector()
            averaged /= averaged.sum()
            if self.loss_weighted:
                f = np.maximum(losses, 0.0)
                f /= max(float(f.sum()), 1e-300)
                averaged = np.maximum(averaged * f, _LOSS_WEIGHTED_FLOOR)
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
            "anchor": None if self.anchor is None else dict(self.anchor),
            "weights": self._weights.tolist(),
            "previous": None if self._previous is None else self._previous.tolist(),
            "recent": [v.tolist() for v in self._recent],
        }

    def load_state_dict(self, state: Mapping) -> None:
        self._check_state(state)
        self.beta = float(state["beta"])
        self.window = int(state["window"])
        self.loss_weighted = bool(state["loss_weighted"])
        anchor = state.get("anchor")
        self.anchor = None if anchor is None else {c: float(anchor[c]) for c in self.components}
        self._weights = np.array(state["weights"], dtype=float)
        prev = state["previous"]
        self._previous = None if prev is None else np.array(prev, dtype=float)
        self._recent = [np.array(v, dtype=float) for v in state["recent"]]


def _anchor(anchor: Mapping[str, float], components: tuple[str, ...]) -> dict[str, float]:
    """SoftAdapt's anchor checked: a positive finite number for exactly the weighed components."""
    if not isinstance(anchor, Mapping):
        raise ValueError(f"softadapt anchor must be a mapping like {{energy: 1, forces: 4}}, "
                         f"got {anchor!r}")  # fmt: skip
    extra = sorted(set(anchor) - set(components))
    missing = [c for c in components if c not in anchor]
    if extra or missing:
        raise ValueError(f"softadapt anchor needs a value for each of {list(components)} and "
                         f"no other (missing {missing}, extra {extra})")  # fmt: skip
    out = {}
    for c in components:
        if isinstance(anchor[c], bool) or not isinstance(anchor[c], int | float):
            raise ValueError(f"softadapt anchor.{c} = {anchor[c]!r} is not a number")
        out[c] = _check_positive(anchor[c], f"softadapt anchor.{c}")
    return out


#: smallest weight of the ratio-based schemes (a softmax of huge ratios would underflow to 0)
_WEIGHT_FLOOR = 1e-12


def _softmax(z: np.ndarray) -> np.ndarray:
    """Softmax with every entry floored at 1e-12 and renormalised (weights stay positive)."""
    z = np.minimum(np.asarray(z, dtype=float), 1e300)
    e = np.exp(z - z.max())
    e = np.maximum(e / e.sum(), _WEIGHT_FLOOR)
    return e / e.sum()


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with the denominator floored at 1e-300 (losses are >= 0)."""
    return num / np.maximum(den, 1e-300)


def _check_positive(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a finite number > 0, got {value}")
    return value


def _check_unit_interval(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must lie in [0, 1], got {value}")
    return value


class _VectorScheme(WeightingScheme):
    """Shared bookkeeping of the schemes whose state is a weight vector over components."""

    def __init__(self, components: Iterable[str]) -> None:
        self.components = _ordered(components, self.name)
        n = len(self.components)
        self._weights = np.full(n, 1.0 / n)

    @property
    def weights(self) -> dict[str, float]:
        return {c: float(w) for c, w in zip(self.components, self._weights, strict=True)}


class ReLoBRaLo(_VectorScheme):
    """Relative loss balancing with random lookback (Bischof & Kraus 2021).

    Parameters
    ----------
    components : iterable of str
        Components to balance.
    alpha : float
        Weight of the history term, in [0, 1] (paper: 0.999 per batch; default 0.9 per epoch).
    temperature : float
        Softmax temperature τ > 0 (paper: 0.1).
    lookback : float
        Probability E[ρ] in [0, 1] of keeping the history rather than looking back to the
        initial losses (paper: 0.999 per batch; default 0.99 per epoch).
    seed : int
        Seed of the scheme's own random generator (its state is saved).
    """

    name = "relobralo"

    def __init__(
        self,
        components: Iterable[str],
        alpha: float = 0.9,
        temperature: float = 0.1,
        lookback: float = 0.99,
        seed: int = 0,
    ) -> None:
        super().__init__(components)
        self.alpha = _check_unit_interval(alpha, "relobralo alpha")
        self.temperature = _check_positive(temperature, "relobralo temperature")
        self.lookback = _check_unit_interval(lookback, "relobralo lookback")
        self._rng = np.random.default_rng(int(seed))
        self._initial: np.ndarray | None = None
        self._previous: np.ndarray | None = None

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "temperature": self.temperature, "lookback": self.lookback}

    def update(self, component_losses: Mapping[str, float]) -> dict[str, float]:
        losses = self._losses_vector(component_losses)
        if self._initial is None:
            self._initial = losses
        else:
            bal_prev = _softmax(_ratio(losses, self._previous) / self.temperature)
            bal_init = _softmax(_ratio(losses, self._initial) / self.temperature)
            rho = float(self._rng.random() < self.lookback)
            w = self.alpha * (rho * self._weights + (1.0 - rho) * bal_init)
            w = w + (1.0 - self.alpha) * bal_prev
            self._weights = w / w.sum()
        self._previous = losses
        return self.weights

    def state_dict(self) -> dict:
        rng = self._rng.bit_generator.state
        return {
            "scheme": self.name,
            "components": list(self.components),
            "alpha": self.alpha,
            "temperature": self.temperature,
            "lookback": self.lookback,
            "weights": self._weights.tolist(),
            "initial": None if self._initial is None else self._initial.tolist(),
            "previous": None if self._previous is None else self._previous.tolist(),
            # 128-bit integers as strings so any serialiser keeps them exactly
            "rng": {
                "state": str(rng["state"]["state"]),
                "inc": str(rng["state"]["inc"]),
                "has_uint32": int(rng["has_uint32"]),
                "uinteger": int(rng["uinteger"]),
            },
        }

    def load_state_dict(self, state: Mapping) -> None:
        self._check_state(state)
        self.alpha = float(state["alpha"])
        self.temperature = float(state["temperature"])
        self.lookback = float(state["lookback"])
        self._weights = np.array(state["weights"], dtype=float)
        self._initial = None if state["initial"] is None else np.array(state["initial"], float)
        self._previous = None if state["previous"] is None else np.array(state["previous"], float)
        rng = state["rng"]
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int(rng["state"]), "inc": int(rng["inc"])},
            "has_uint32": int(rng["has_uint32"]),
            "uinteger": int(rng["uinteger"]),
        }


class DWA(_VectorScheme):
    """Dynamic weight average (Liu et al. 2019): softmax of loss ratios over temperature T.

    Parameters
    ----------
    components : iterable of str
        Components to balance.
    temperature : float
        T > 0 (paper: 2); larger is closer to uniform.
    """

    name = "dwa"

    def __init__(self, components: Iterable[str], temperature: float = 2.0) -> None:
        super().__init__(components)
        self.temperature = _check_positive(temperature, "dwa temperature")
        self._previous: np.ndarray | None = None

    def options(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def update(self, component_losses: Mapping[str, float]) -> dict[str, float]:
        losses = self._losses_vector(component_losses)
        if self._previous is not None:
            self._weights = _softmax(_ratio(losses, self._previous) / self.temperature)
        self._previous = losses
        return self.weights

    def state_dict(self) -> dict:
        return {
            "scheme": self.name,
            "components": list(self.components),
            "temperature": self.temperature,
            "weights": self._weights.tolist(),
            "previous": None if self._previous is None else self._previous.tolist(),
        }

    def load_state_dict(self, state: Mapping) -> None:
        self._check_state(state)
        self.temperature = float(state["temperature"])
        self._weights = np.array(state["weights"], dtype=float)
        prev = state["previous"]
        self._previous = None if prev is None else np.array(prev, dtype=float)


#: factors from the config's target units (meV/atom, meV/Å, GPa) to the losses' (eV/atom, eV/Å,
#: eV/Å³)
TARGET_UNITS = {"energy": 1e-3, "forces": 1e-3, "stress": 1.0 / EV_PER_A3_TO_GPA}


class TargetWeighting(_VectorScheme):
    """Distance-to-target weighting (dft2mlip's own): each term is weighed by how far its training
    RMSE is from a per-term target error.

    With raw MSEs L_k (``normalise: none``; required), r_k = sqrt(L_k) / t_k is the training RMSE
    in units of its target t_k. The emphasis u = r^β / Σ_j r_j^β (sums to 1) goes to the term
    furthest from its target, and the loss is Σ_k u_k r_k² = Σ_k (u_k / t_k²) L_k: the weights
    (what multiplies each raw MSE) are c_k = u_k / t_k². They carry the units that make each term
    dimensionless and do not sum to 1. Before the first update u is uniform; β = 0 gives the fixed
    weights 1/(n t_k²), each term divided by its squared target. A term already below its target
    (r_k < 1) keeps a share that shrinks as r_k^β.

    Parameters
    ----------
    components : iterable of str
        Components to balance.
    targets : mapping
        Target RMSE per component in meV/atom (energy), meV/Å (forces), GPa (stress), > 0; e.g.
        the DFT labels' own convergence tolerances (a model need not beat its labels' precision).
    beta : float
        Emphasis exponent β ≥ 0 (default 1).
    """

    name = "target"

    def __init__(
        self, components: Iterable[str], targets: Mapping[str, float], beta: float = 1.0
    ) -> None:
        super().__init__(components)
        missing = [c for c in self.components if c not in (targets or {})]
        if missing:
            raise ValueError(f"targets needs a value for {missing} (meV/atom, meV/Å, GPa)")
        self.targets = {c: _check_positive(targets[c], f"target of {c}") for c in self.components}
        self.beta = float(beta)
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"target weighting beta = {beta}; use a finite value >= 0")
        self._t = np.array([self.targets[c] * TARGET_UNITS[c] for c in self.components])

    def options(self) -> dict[str, Any]:
        return {"targets": dict(self.targets), "beta": self.beta}

    @property
    def weights(self) -> dict[str, float]:
        coeff = self._weights / self._t**2
        return {c: float(w) for c, w in zip(self.components, coeff, strict=True)}

    def emphasis(self) -> dict[str, float]:
        """u_k: the share of the loss each term gets (sums to 1)."""
        return {c: float(w) for c, w in zip(self.components, self._weights, strict=True)}

    def update(self, component_losses: Mapping[str, float]) -> dict[str, float]:
        r = np.sqrt(np.maximum(self._losses_vector(component_losses), 0.0)) / self._t
        if np.any(r > 0):
            powered = np.maximum(r, 1e-12) ** self.beta
            self._weights = powered / powered.sum()
        return self.weights

    def state_dict(self) -> dict:
        return {"scheme": self.name, "components": list(self.components),
                "targets": dict(self.targets), "beta": self.beta,
                "emphasis": self._weights.tolist()}  # fmt: skip

    def load_state_dict(self, state: Mapping) -> None:
        self._check_state(state)
        self._weights = np.array(state["emphasis"], dtype=float)


class UncertaintyWeighting(WeightingScheme):
    """Homoscedastic-uncertainty weighting (Kendall et al. 2018) with learnable log-variances.

    loss = Σ_k ½ (exp(−s_k) L_k + s_k); the s_k are torch parameters that the trainer adds to
    the model's optimiser (:meth:`parameters`). Logged weights are ½ exp(−s_k) (not normalised).
    A component absent from a batch's ``losses`` contributes nothing (its s_k gets no push).
    """

    name = "uncertainty"
    per_batch = True

    def __init__(self, components: Iterable[str]) -> None:
        import torch

        self.components = _ordered(components, self.name)
        self.log_variances = torch.nn.Parameter(
            torch.zeros(len(self.components), dtype=torch.float64)
        )

    def to(self, device: Any = None, dtype: Any = None) -> UncertaintyWeighting:
        """Move the log-variances (before the optimiser is built)."""
        self.log_variances.data = self.log_variances.data.to(device=device, dtype=dtype)
        return self

    @property
    def weights(self) -> dict[str, float]:
        s = self.log_variances.detach().cpu().tolist()
        return {c: 0.5 * math.exp(-v) for c, v in zip(self.components, s, strict=True)}

    def combine(self, losses: Mapping[str, Any]) -> Any:
        s = self.log_variances
        return sum(
            0.5 * (torch_exp(-s[i]) * losses[k] + s[i])
            for i, k in enumerate(self.components)
            if k in losses
        )

    def parameters(self) -> list:
        return [self.log_variances]

    def update(self, component_losses: Mapping[str, float]) -> dict[str, float]:
        """The log-variances learn by gradient descent; nothing to do per interval."""
        return self.weights

    def state_dict(self) -> dict:
        return {
            "scheme": self.name,
            "components": list(self.components),
            "log_variances": self.log_variances.detach().cpu().tolist(),
        }

    def load_state_dict(self, state: Mapping) -> None:
        import torch

        self._check_state(state)
        values = torch.tensor(state["log_variances"], dtype=self.log_variances.dtype)
        with torch.no_grad():
            self.log_variances.copy_(values.to(self.log_variances.device))


def torch_exp(x: Any) -> Any:
    """``torch.exp`` imported on first use (the config checks import this module without torch)."""
    import torch

    return torch.exp(x)


class GradNorm(_VectorScheme):
    """GradNorm (Chen et al. 2018): weights trained to balance per-term gradient norms.

    Every batch, :meth:`batch_step` takes ‖∇_W L_k‖ on the shared parameters W (one extra
    backward per term), forms G_k = w_k ‖∇_W L_k‖ and targets Ḡ r_k^α with
    r_k = (L_k / L_k(0)) / mean_j(L_j / L_j(0)), and moves w by one Adam step on
    Σ_k |G_k − target_k| (gradient sign(G_k − target_k) ‖∇_W L_k‖, targets held constant).
    The step is taken on log w_k (a multiplicative update; the paper steps on w_k) because the
    raw E/F/S gradient norms, and so the balancing weights, differ by orders of magnitude.
    Weights stay ≥ 1e-6 and sum to 1. L_k(0) is each term's first observed batch loss.

    Parameters
    ----------
    components : iterable of str
        Components to balance.
    alpha : float
        Restoring-force asymmetry α ≥ 0 (paper: 0.12–3; default 1.5).
    lr : float
        Adam learning rate of log w (> 0; default 0.025: at most ~2.5 % change per batch).
    """

    name = "gradnorm"
    per_batch = True
    needs_shared_params = True
    _FLOOR = 1e-6

    def __init__(self, components: Iterable[str], alpha: float = 1.5, lr: float = 0.025) -> None:
        super().__init__(components)
        alpha = float(alpha)
        if not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"gradnorm alpha must be a finite number >= 0, got {alpha}")
        self.alpha = alpha
        self.lr = _check_positive(lr, "gradnorm weights_lr")
        n = len(self.components)
        self._initial: list[float | None] = [None] * n
        self._m = np.zeros(n)
        self._v = np.zeros(n)
        self._t = 0

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "weights_lr": self.lr}

    def update(self, component_losses: Mapping[str, float]) -> dict[str, float]:
        """Weights learn per batch in :meth:`batch_step`; nothing to do per interval."""
        return self.weights

    def step_from_norms(self, losses: Mapping[str, float], grad_norms: Mapping[str, float]) -> None:
        """One GradNorm update from loss values and ‖∇_W L_k‖ (the part without torch)."""
        present = [
            i
            for i, k in enumerate(self.components)
            if k in losses and k in grad_norms and grad_norms[k] > 0
        ]
        for i in present:
            if self._initial[i] is None:
                self._initial[i] = max(float(losses[self.components[i]]), 1e-300)
        if len(present) < 2:
            return
        idx = np.array(present)
        comps = [self.components[i] for i in present]
        loss = np.array([float(losses[k]) for k in comps])
        g = np.array([float(grad_norms[k]) for k in comps])
        if not (np.all(np.isfinite(loss)) and np.all(np.isfinite(g))):
            return  # the trainer reports the non-finite loss itself
        w = self._weights[idx]
        big_g = w * g
        ratio = loss / np.array([self._initial[i] for i in present])
        r = ratio / max(ratio.mean(), 1e-300)
        target = big_g.mean() * r**self.alpha
        # gradient with respect to log w: multiplicative steps, since the raw E/F/S gradient
        # norms differ by orders of magnitude and so must the weights
        grad = np.sign(big_g - target) * g * w
        self._t += 1
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        self._m[idx] = beta1 * self._m[idx] + (1 - beta1) * grad
        self._v[idx] = beta2 * self._v[idx] + (1 - beta2) * grad**2
        m_hat = self._m[idx] / (1 - beta1**self._t)
        v_hat = self._v[idx] / (1 - beta2**self._t)
        total = w.sum()
        w_new = np.maximum(w * np.exp(-self.lr * m_hat / (np.sqrt(v_hat) + eps)), self._FLOOR)
        self._weights[idx] = w_new * total / w_new.sum()  # absent terms keep their share

    def batch_step(self, losses: Mapping[str, Any], shared_params: Sequence[Any] = ()) -> None:
        import torch

        params = [p for p in shared_params if p.requires_grad]
        if not params:
            raise ValueError("gradnorm needs the model's shared-layer parameters")
        values, norms = {}, {}
        for k in self.components:
            loss = losses.get(k)
            if loss is None or not loss.requires_grad:
                continue
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            sq = sum(float((gr.detach() ** 2).sum()) for gr in grads if gr is not None)
            values[k] = float(loss.detach())
            norms[k] = math.sqrt(sq)
        self.step_from_norms(values, norms)

    def state_dict(self) -> dict:
        return {
            "scheme": self.name,
            "components": list(self.components),
            "alpha": self.alpha,
            "lr": self.lr,
            "weights": self._weights.tolist(),
            "initial": list(self._initial),
            "adam": {"m": self._m.tolist(), "v": self._v.tolist(), "t": self._t},
        }

    def load_state_dict(self, state: Mapping) -> None:
        self._check_state(state)
        self.alpha = float(state["alpha"])
        self.lr = float(state["lr"])
        self._weights = np.array(state["weights"], dtype=float)
        self._initial = [None if v is None else float(v) for v in state["initial"]]
        self._m = np.array(state["adam"]["m"], dtype=float)
        self._v = np.array(state["adam"]["v"], dtype=float)
        self._t = int(state["adam"]["t"])


#: run-config keys each scheme reads (besides scheme, components, normalise, interval)
SCHEME_OPTIONS = {
    "fixed": ("weights",),
    "softadapt": ("beta", "window", "loss_weighted", "anchor"),
    "relobralo": ("alpha", "temperature", "lookback"),
    "dwa": ("temperature",),
    "uncertainty": (),
    "gradnorm": ("alpha", "weights_lr"),
    "target": ("targets", "beta"),
}


#: format tag of the loss record stored with every trained model (:func:`loss_record`)
LOSS_RECORD_FORMAT = "dft2mlip-loss-record-v1"
#: units of the raw component losses L_k (MSEs of :mod:`dft2mlip.train.loss`)
LOSS_UNITS = {"energy": "(eV/atom)^2", "forces": "(eV/A)^2", "stress": "(eV/A^3)^2"}


def loss_record(
    scheme: WeightingScheme,
    *,
    normalise: str,
    refs: Mapping[str, float],
    update_interval_batches: int,
    history: Sequence[Mapping[str, Any]],
    model_epoch: int | None,
    factors: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The loss a model was trained with, as plain JSON types (stored in ``model.pt``,
    ``model.loss.json`` and as the ``dft2mlip_loss`` attribute of ``model.model``).

    Parameters
    ----------
    scheme : WeightingScheme
        The run's scheme after the last update.
    normalise : str
        ``initial`` or ``none`` (:func:`normalise_mode`).
    refs : mapping
        L_k^ref per weighted component (raw MSE units, :data:`LOSS_UNITS`); ignored for
        ``none``.
    update_interval_batches : int
        0 = weights updated once per epoch (:func:`update_interval`).
    history : sequence of mapping
        history.csv rows so far: ``epoch`` and ``weight_<component>`` (the mean over the
        epoch's batches of the weights the loss used).
    model_epoch : int or None
        Epoch of the stored model (the best validation score).
    factors : mapping or None
        m_k of ``normalise: counts`` (:func:`dft2mlip.train.normalisation.count_factors`).

    Returns
    -------
    dict
        ``format``, ``scheme``, ``options`` (:meth:`WeightingScheme.options`), ``components``,
        ``normalise``, ``reference_losses`` (None for ``none``), ``term_factors`` (m_k of
        ``counts``, else None), ``reference_units``,
        ``update_interval_batches``, ``model_epoch``, ``final_weights`` (after the last update)
        and ``weight_trajectory`` = ``{"epoch": [...], "energy": [...], "forces": [...],
        "stress": [...]}``, one entry per epoch, equal to history.csv's weight columns.
    """
    initial = normalise != "none"
    return {
        "format": LOSS_RECORD_FORMAT,
        "scheme": scheme.name,
        "options": dict(scheme.options()),
        "components": list(scheme.components),
        "normalise": normalise,
        "reference_losses": (
            {k: float(refs[k]) for k in scheme.components if k in refs} if initial else None
        ),
        "term_factors": (
            {k: float(v) for k, v in (factors or {}).items()} if normalise == "counts" else None
        ),
        "reference_units": dict(LOSS_UNITS),
        "update_interval_batches": int(update_interval_batches),
        "model_epoch": None if model_epoch is None else int(model_epoch),
        "final_weights": {k: float(v) for k, v in scheme.weights.items()},
        "weight_trajectory": {
            "epoch": [int(row["epoch"]) for row in history],
            **{k: [float(row[f"weight_{k}"]) for row in history] for k in ALL_COMPONENTS},
        },
    }


def make_weighting(
    run_name: str,
    run_cfg: Mapping,
    components: Iterable[str] = ALL_COMPONENTS,
    *,
    seed: int = 0,
) -> WeightingScheme:
    """Build the weighting scheme of ``training.runs.<run_name>``.

    Parameters
    ----------
    run_name : str
        Name of the run (for error messages).
    run_cfg : mapping
        ``scheme`` (one of :data:`SCHEMES`) and its options: fixed: ``weights``; softadapt:
        ``beta``, ``window``, ``loss_weighted``, ``anchor``; relobralo: ``alpha``, ``temperature``,
        ``lookback``; dwa: ``temperature``; gradnorm: ``alpha``, ``weights_lr``. Adaptive
        schemes take ``components`` (default all three). ``normalise`` and
        ``update_interval_batches`` are read by the trainer, not here.
    components : iterable of str
        Components the training data provides labels for. A positive fixed weight or an
        adaptive component outside them is an error.
    seed : int
        Seed of schemes with randomness (ReLoBRaLo's lookback).
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
    if scheme not in SCHEMES:
        raise ValueError(f"{where}.scheme = {scheme!r} is not known; use one of {list(SCHEMES)}")
    wanted = _ordered(run_cfg.get("components", ALL_COMPONENTS), f"{where}.components")
    lacking = [c for c in wanted if c not in comps]
    if lacking:
        raise ValueError(
            f"{where}: {scheme} weighs {list(wanted)} but the data has no {lacking} labels; "
            f"add them or set {where}.components to a subset of {list(comps)}"
        )
    try:
        if scheme == "softadapt":
            return SoftAdapt(
                wanted,
                beta=run_cfg.get("beta", 1.1),
                window=run_cfg.get("window", 5),
                loss_weighted=run_cfg.get("loss_weighted", False),
                anchor=run_cfg.get("anchor"),
            )
        if scheme == "relobralo":
            return ReLoBRaLo(
                wanted,
                alpha=run_cfg.get("alpha", 0.9),
                temperature=run_cfg.get("temperature", 0.1),
                lookback=run_cfg.get("lookback", 0.99),
                seed=seed,
            )
        if scheme == "dwa":
            return DWA(wanted, temperature=run_cfg.get("temperature", 2.0))
        if scheme == "uncertainty":
            return UncertaintyWeighting(wanted)
        if scheme == "target":
            if run_cfg.get("normalise", "none") != "none":
                raise ValueError("the target scheme divides by the targets itself; set "
                                 "normalise: none")  # fmt: skip
            return TargetWeighting(wanted, run_cfg.get("targets"), beta=run_cfg.get("beta", 1.0))
        return GradNorm(
            wanted, alpha=run_cfg.get("alpha", 1.5), lr=run_cfg.get("weights_lr", 0.025)
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def update_interval(run_name: str, run_cfg: Mapping) -> int:
    """``training.runs.<run>.update_interval_batches``: 0 = update the weights once per epoch.

    A positive n calls ``update`` every n batches with the mean losses of those batches (for
    the interval schemes softadapt, relobralo, dwa; fixed ignores it; the per-batch schemes
    uncertainty and gradnorm update every batch anyway).
    """
    value = run_cfg.get("update_interval_batches", 0) or 0
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(
            f"training.runs.{run_name}.update_interval_batches = {value!r}; use an integer >= 0 "
            "(0 = once per epoch)"
        )
    return int(value)


def normalise_mode(run_name: str, run_cfg: Mapping) -> str:
    """``training.runs.<run>.normalise`` checked against :data:`NORMALISE_MODES` (default none)."""
    mode = run_cfg.get("normalise", "none")
    if mode is None or mode is False:
        mode = "none"
    if mode not in NORMALISE_MODES:
        raise ValueError(
            f"training.runs.{run_name}.normalise = {mode!r}; use one of {list(NORMALISE_MODES)}"
        )
    return mode
