"""Loss-weighting schemes: SoftAdapt behaviour and bookkeeping, fixed-weight validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dft2mlip.train.weighting import (
    FixedWeighting,
    SoftAdapt,
    make_weighting,
    normalise_mode,
)

COMPS = ("energy", "forces", "stress")


def softadapt_step(prev, curr, beta):
    """DESIGN.md formula written out independently: softmax(β Δ/max(‖Δ‖, 1e-8))."""
    delta = [c - p for c, p in zip(curr, prev, strict=True)]
    norm = max(math.sqrt(sum(d * d for d in delta)), 1e-8)
    exps = [math.exp(beta * d / norm) for d in delta]
    return [e / sum(exps) for e in exps]


def as_dict(values):
    return dict(zip(COMPS, values, strict=True))


def test_uniform_until_two_observations():
    sa = SoftAdapt(COMPS)
    assert sa.weights == pytest.approx(as_dict([1 / 3] * 3))
    assert sa.update(as_dict([5.0, 1.0, 0.1])) == pytest.approx(as_dict([1 / 3] * 3))
    assert sa.update(as_dict([4.0, 1.0, 0.1])) != pytest.approx(as_dict([1 / 3] * 3))


def test_single_step_matches_formula():
    sa = SoftAdapt(COMPS, beta=1.1, window=5)
    sa.update(as_dict([1.0, 2.0, 3.0]))
    weights = sa.update(as_dict([0.5, 1.9, 3.0]))
    expected = softadapt_step([1.0, 2.0, 3.0], [0.5, 1.9, 3.0], 1.1)
    assert [weights[c] for c in COMPS] == pytest.approx(expected, rel=1e-12)


def test_stalled_term_gains_weight_improving_terms_lose_it():
    sa = SoftAdapt(COMPS, beta=1.1, window=5)
    energy, forces, stress = 1.0, 1.0, 1.0
    for _ in range(10):
        energy -= 0.05
        forces -= 0.02
        weights = sa.update(as_dict([energy, forces, stress]))  # stress stops improving
    assert weights["stress"] > 1 / 3
    assert weights["energy"] < 1 / 3 and weights["forces"] < 1 / 3
    assert weights["stress"] > weights["forces"] > weights["energy"]  # slower fall, more weight


def test_growing_term_gains_most():
    sa = SoftAdapt(COMPS, beta=1.0, window=1)
    sa.update(as_dict([1.0, 1.0, 1.0]))
    weights = sa.update(as_dict([0.9, 1.0, 1.2]))
    assert weights["stress"] > weights["forces"] > weights["energy"]


def test_scale_of_losses_does_not_matter():
    """Δ is normalised by its norm: multiplying all losses by a constant changes nothing."""
    seq = [[1.0, 3.0, 0.2], [0.8, 2.0, 0.25], [0.7, 1.9, 0.1], [0.71, 1.5, 0.09]]
    a, b = SoftAdapt(COMPS), SoftAdapt(COMPS)
    for losses in seq:
        wa = a.update(as_dict(losses))
        wb = b.update(as_dict([1e-3 * x for x in losses]))
    assert wa == pytest.approx(wb, rel=1e-12)


@pytest.mark.parametrize("window", [1, 2, 3])
def test_window_averages_recent_softmax_vectors(window):
    rng = np.random.default_rng(window)
    losses = [list(rng.uniform(0.1, 2.0, 3)) for _ in range(7)]
    sa = SoftAdapt(COMPS, beta=1.1, window=window)
    for x in losses:
        weights = sa.update(as_dict(x))
    steps = [softadapt_step(losses[i - 1], losses[i], 1.1) for i in range(1, len(losses))]
    recent = np.mean(steps[-window:], axis=0)
    expected = recent / recent.sum()
    assert [weights[c] for c in COMPS] == pytest.approx(list(expected), rel=1e-12)


def test_loss_weighted_variant_multiplies_by_current_weights():
    losses = [[1.0, 2.0, 3.0], [0.5, 1.9, 3.0], [0.45, 1.0, 2.9], [0.44, 0.9, 2.9]]
    sa = SoftAdapt(COMPS, beta=1.1, window=2, loss_weighted=True)
    current = np.full(3, 1 / 3)
    steps = []
    for i, x in enumerate(losses):
        weights = sa.update(as_dict(x))
        if i == 0:
            continue
        steps.append(softadapt_step(losses[i - 1], x, 1.1))
        averaged = np.mean(steps[-2:], axis=0)
        averaged /= averaged.sum()
        current = averaged * current / np.sum(averaged * current)
        assert [weights[c] for c in COMPS] == pytest.approx(list(current), rel=1e-12)


@pytest.mark.parametrize("loss_weighted", [False, True])
def test_weights_positive_finite_normalised_over_random_sequences(loss_weighted):
    rng = np.random.default_rng(42)
    for _ in range(200):
        n_comp = int(rng.integers(2, 4))
        comps = COMPS[:n_comp]
        sa = SoftAdapt(
            comps,
            beta=float(rng.uniform(0.05, 20.0)),
            window=int(rng.integers(1, 9)),
            loss_weighted=loss_weighted,
        )
        scales = 10.0 ** rng.uniform(-8, 3, n_comp)
        for _ in range(int(rng.integers(1, 60))):
            if rng.random() < 0.1:  # repeated values: Δ = 0
                losses = {c: 1.0 for c in comps}
            else:
                losses = {
                    c: float(s * rng.lognormal(0, 1)) for c, s in zip(comps, scales, strict=True)
                }
            w = np.array(list(sa.update(losses).values()))
            assert np.all(np.isfinite(w)) and np.all(w > 0)
            assert w.sum() == pytest.approx(1.0, abs=1e-12)


def test_identical_losses_keep_weights_finite():
    sa = SoftAdapt(COMPS)
    for _ in range(5):
        weights = sa.update(as_dict([1.0, 1.0, 1.0]))
    assert weights == pytest.approx(as_dict([1 / 3] * 3))


@pytest.mark.parametrize("loss_weighted", [False, True])
def test_state_dict_round_trip_continues_identically(loss_weighted):
    rng = np.random.default_rng(0)
    seq = [as_dict(rng.uniform(0.1, 1.0, 3)) for _ in range(12)]
    a = SoftAdapt(COMPS, beta=1.1, window=3, loss_weighted=loss_weighted)
    for losses in seq[:5]:
        a.update(losses)
    state = json.loads(json.dumps(a.state_dict()))  # must be JSON-able
    b = SoftAdapt(COMPS, beta=9.0, window=1)  # constructor values are overwritten by the state
    b.load_state_dict(state)
    assert b.weights == a.weights
    for losses in seq[5:]:
        assert b.update(losses) == a.update(losses)


def test_state_of_other_scheme_is_rejected():
    sa = SoftAdapt(COMPS)
    with pytest.raises(ValueError, match="fixed"):
        sa.load_state_dict(FixedWeighting({"energy": 1.0}).state_dict())
    with pytest.raises(ValueError, match="components"):
        SoftAdapt(("energy", "forces")).load_state_dict(sa.state_dict())


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan")])
def test_softadapt_rejects_non_positive_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        SoftAdapt(COMPS, beta=beta)


def test_softadapt_rejects_bad_window_and_components():
    with pytest.raises(ValueError, match="window"):
        SoftAdapt(COMPS, window=0)
    with pytest.raises(ValueError, match="components"):
        SoftAdapt(("energy", "virials"))


def test_softadapt_rejects_missing_or_nan_losses():
    sa = SoftAdapt(COMPS)
    with pytest.raises(ValueError, match="stress"):
        sa.update({"energy": 1.0, "forces": 1.0})
    with pytest.raises(ValueError, match="non-finite"):
        sa.update({"energy": 1.0, "forces": float("nan"), "stress": 1.0})


def test_fixed_weights_are_constant():
    fixed = FixedWeighting({"energy": 1.0, "forces": 100.0, "stress": 1.0})
    assert fixed.components == COMPS
    assert fixed.update(as_dict([3.0, 2.0, 1.0])) == {"energy": 1.0, "forces": 100.0, "stress": 1.0}
    clone = FixedWeighting({"energy": 1.0})
    clone.load_state_dict(json.loads(json.dumps(FixedWeighting({"energy": 2.0}).state_dict())))
    assert clone.weights == {"energy": 2.0}


@pytest.mark.parametrize(
    "weights, match",
    [
        ({"energy": 1.0, "forces": -1.0}, r"training\.runs\.fixed\.weights\.forces"),
        ({"energy": 1.0, "stress": float("nan")}, r"training\.runs\.fixed\.weights\.stress"),
        ({"energy": float("inf")}, r"training\.runs\.fixed\.weights\.energy"),
        ({"energy": 0.0, "forces": 0.0, "stress": 0.0}, "all weights are zero"),
        ({"energy": 1.0, "virial": 1.0}, r"weights\.virial.*unknown"),
    ],
)
def test_fixed_rejects_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        FixedWeighting(weights, run_name="fixed")


def test_make_weighting_from_config_sections():
    fixed = make_weighting(
        "fixed", {"scheme": "fixed", "weights": {"energy": 1, "forces": 100, "stress": 1}}, COMPS
    )
    assert isinstance(fixed, FixedWeighting) and fixed.weights["forces"] == 100.0
    adaptive = make_weighting("adaptive", {"scheme": "softadapt", "beta": 1.1, "window": 5}, COMPS)
    assert isinstance(adaptive, SoftAdapt)
    assert (adaptive.beta, adaptive.window, adaptive.components) == (1.1, 5, COMPS)


def test_make_weighting_unknown_scheme_lists_known_ones():
    with pytest.raises(ValueError, match=r"training\.runs\.mine\.scheme.*fixed.*softadapt"):
        make_weighting("mine", {"scheme": "gradnorm"}, COMPS)


def test_make_weighting_beta_error_names_run():
    with pytest.raises(ValueError, match=r"training\.runs\.adaptive.*beta"):
        make_weighting("adaptive", {"scheme": "softadapt", "beta": 0}, COMPS)


def test_make_weighting_needs_labels_for_weighted_components():
    no_stress = ("energy", "forces")
    with pytest.raises(ValueError, match=r"training\.runs\.fixed\.weights\.stress"):
        make_weighting(
            "fixed", {"scheme": "fixed", "weights": {"energy": 1, "stress": 1}}, no_stress
        )
    with pytest.raises(ValueError, match=r"training\.runs\.adaptive.*stress"):
        make_weighting("adaptive", {"scheme": "softadapt"}, no_stress)
    zero = make_weighting(
        "no-stress", {"scheme": "fixed", "weights": {"energy": 1, "stress": 0}}, no_stress
    )
    assert zero.weights["stress"] == 0.0
    ef = make_weighting(
        "ef", {"scheme": "softadapt", "components": ["energy", "forces"]}, no_stress
    )
    assert ef.components == no_stress


def test_normalise_mode():
    assert normalise_mode("a", {"normalise": "initial"}) == "initial"
    assert normalise_mode("a", {}) == "none"
    with pytest.raises(ValueError, match=r"training\.runs\.a\.normalise"):
        normalise_mode("a", {"normalise": "running"})
